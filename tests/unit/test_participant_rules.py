"""Phone numbers, timezones and log masking: the participant rules."""

from __future__ import annotations

import pytest

from coach.domain.errors import InvalidField
from coach.domain.participant import canonical_phone_number, mask_phone, sender_phone_number, valid_timezone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (206) 555-0100", "US", "+12065550100"),
        ("206-555-0100", "US", "+12065550100"),
        ("(206) 555 0100", "US", "+12065550100"),
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("020 7946 0018", "GB", "+442079460018"),
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str, expected: str) -> None:
    assert canonical_phone_number(raw, region) == expected


@pytest.mark.parametrize("raw", ["12345", "", "phone", "+1 206 555", "+999 1234567", "1" * 40])
def test_invalid_phone_numbers_name_the_field(raw: str) -> None:
    with pytest.raises(InvalidField) as caught:
        canonical_phone_number(raw, "US", field="phone_number")

    assert caught.value.field == "phone_number"


@pytest.mark.parametrize("name", ["America/New_York", "Asia/Kolkata", "Europe/London", "Europe/Amsterdam"])
def test_canonical_iana_timezones_are_accepted(name: str) -> None:
    assert valid_timezone(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "EST5EDT ",
        "EST",
        "PST8PDT",
        "UTC",
        "Etc/GMT+5",
        "US/Eastern",
        "Mars/Base",
        "../../etc/passwd",
        "",
        "america/new_york",
    ],
)
def test_unknown_fixed_and_alias_timezones_are_refused(name: str) -> None:
    with pytest.raises(InvalidField) as caught:
        valid_timezone(name)

    assert caught.value.field == "timezone"


def test_logs_see_only_the_last_four_digits() -> None:
    assert mask_phone("+12065550100") == "***0100"
    assert mask_phone("+1") == "***"


@pytest.mark.parametrize("number", ["+12065550100", "+442071838750", "+61491570156", "+390612345678"])
def test_a_number_twilio_reports_in_e164_is_its_own_canonical_form(number: str) -> None:
    # The webhook looks such numbers up as they are: that must be what enrollment stored for the same number.
    assert sender_phone_number(number, "US", "From") == canonical_phone_number(number, "US") == number


@pytest.mark.parametrize("sender", ["12345", "CARRIER", "+1 (206) 555-0100"])
def test_any_other_sender_goes_through_the_full_parser(sender: str) -> None:
    try:
        expected: str | None = canonical_phone_number(sender, "US", "From")
    except InvalidField:
        expected = None
    if expected is None:
        with pytest.raises(InvalidField):
            sender_phone_number(sender, "US", "From")
    else:
        assert sender_phone_number(sender, "US", "From") == expected == "+12065550100"
