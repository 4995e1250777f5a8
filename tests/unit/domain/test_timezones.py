"""Participant timezones: canonical IANA zones of a region only; every other name is refused with what to give."""

from __future__ import annotations

import re
from importlib.resources import files
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.domain.errors import InvalidField
from coach.domain.participant import valid_timezone
from coach.domain.timezones import region_zones
from infra.zones import ZONE_TAB_ONLY, render, table_zones

CITY_HINT = "give the participant's city zone, e.g. America/New_York"
NOT_LOCAL = "is a fixed or abbreviated zone that does not follow the participant's local daylight-saving rules"
FIXED = "is a fixed UTC offset, which does not follow daylight saving"
ZONE_NAME = re.compile(r"[A-Z][A-Za-z_-]*(?:/[A-Za-z_-]+)+")


def refusal(name: object, field: str = "timezone") -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        valid_timezone(name, field)  # type: ignore[arg-type]  # the API may hand over any JSON value
    return caught.value


def zones_file_lines() -> list[str]:
    return files("coach.domain").joinpath("zones.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    "name",
    [
        "Europe/Amsterdam",
        "Europe/Oslo",
        "Asia/Kolkata",
        "America/New_York",
        "America/Los_Angeles",
        "Australia/Sydney",
        "Asia/Tokyo",
        "Europe/London",
        "Africa/Lagos",
        "America/Sao_Paulo",
        "Pacific/Auckland",
        "Asia/Shanghai",
        "America/Phoenix",
        "America/Argentina/Buenos_Aires",
        "Europe/Kyiv",
    ],
)
def test_a_canonical_zone_of_a_region_is_accepted_as_it_is(name: str) -> None:
    assert valid_timezone(name) == name


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("america/los_angeles", "America/Los_Angeles"),
        ("AMERICA/NEW_YORK", "America/New_York"),
        (" America/New_York", "America/New_York"),
        ("Europe/London\n", "Europe/London"),
        ("America/New York", "America/New_York"),
        ("asia/kolkata ", "Asia/Kolkata"),
    ],
)
def test_a_zone_in_the_wrong_case_or_with_spaces_is_refused_with_how_iana_writes_it(name: str, meant: str) -> None:
    refused = refusal(name)

    assert refused.field == "timezone"
    assert refused.message == f"{name!r} is not how IANA writes it; did you mean {meant}?"


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("EST", "America/New_York"),
        ("EDT", "America/New_York"),
        ("EST5EDT", "America/New_York"),
        ("est", "America/New_York"),
        ("EST5EDT ", "America/New_York"),
        ("CST", "America/Chicago"),
        ("CDT", "America/Chicago"),
        ("CST6CDT", "America/Chicago"),
        ("PST", "America/Los_Angeles"),
        ("PDT", "America/Los_Angeles"),
        ("PST8PDT", "America/Los_Angeles"),
        ("HST", "Pacific/Honolulu"),
        ("AKST", "America/Anchorage"),
        ("AKDT", "America/Anchorage"),
    ],
)
def test_a_fixed_abbreviation_is_refused_with_the_city_zone_it_means(name: str, meant: str) -> None:
    refused = refusal(name)

    assert refused.field == "timezone"
    assert refused.message == f"{name!r} {NOT_LOCAL}; did you mean {meant}?"


@pytest.mark.parametrize("name", ["MST", "MDT", "MST7MDT"])
def test_mountain_time_is_refused_with_denver_and_phoenix_for_arizona(name: str) -> None:
    refused = refusal(name)

    assert refused.message == (
        f"{name!r} {NOT_LOCAL}; did you mean America/Denver, or America/Phoenix for Arizona (no daylight saving)?"
    )


@pytest.mark.parametrize(("name", "examples"), [("CET", "Europe/Paris or Europe/Berlin"), ("EET", "Europe/Athens")])
def test_a_european_abbreviation_is_refused_with_city_zones_of_its_region(name: str, examples: str) -> None:
    refused = refusal(name)

    assert refused.message.startswith(f"{name!r} {NOT_LOCAL}; give the participant's city zone, e.g. {examples}")


@pytest.mark.parametrize(
    "name",
    [
        "Etc/GMT+5",
        "Etc/GMT-14",
        "GMT-3",
        "UTC",
        "utc",
        "Etc/UTC",
        "GMT",
        "GMT0",
        "Z",
        "UTC+2",
        "UTC+05:30",
        "+05:30",
        "Zulu",
    ],
)
def test_a_fixed_offset_is_refused_with_a_request_for_the_city_zone(name: str) -> None:
    refused = refusal(name)

    assert refused.field == "timezone"
    assert refused.message == f"{name!r} {FIXED}; {CITY_HINT}"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("US/Eastern", "America/New_York"),
        ("us/eastern", "America/New_York"),
        ("US/Pacific", "America/Los_Angeles"),
        ("US/Arizona", "America/Phoenix"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Europe/Kiev", "Europe/Kyiv"),
        ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("GB", "Europe/London"),
        ("Europe/Belfast", "Europe/London"),
        ("Japan", "Asia/Tokyo"),
        ("Canada/Eastern", "America/Toronto"),
        ("Pacific/Ponape", "Pacific/Pohnpei"),
    ],
)
def test_an_old_alias_is_refused_with_the_canonical_zone(name: str, canonical: str) -> None:
    refused = refusal(name)

    assert refused.field == "timezone"
    assert refused.message == f"{name!r} is an old name kept for backward compatibility; did you mean {canonical}?"


def test_a_zone_of_no_region_is_refused_with_a_request_for_the_city_zone() -> None:
    assert refusal("Factory").message == f"'Factory' is not the zone of a region; {CITY_HINT}"


def test_every_other_name_zoneinfo_knows_is_refused_with_a_zone_that_is_accepted() -> None:
    known = files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()

    for name in sorted(set(known) - region_zones()):
        message = refusal(name).message
        suggested = ZONE_NAME.findall(message.rpartition("; ")[2])
        assert suggested, message
        assert set(suggested) <= region_zones(), message


@pytest.mark.parametrize(
    ("name", "echoed"),
    [
        ("Mars/Base", "'Mars/Base'"),
        ("../../etc/passwd", "'../../etc/passwd'"),
        ("Mars\x00\x1b[31m", "'Mars\\x00\\x1b[31m'"),
        ("Mars\udc80", "'Mars\\udc80'"),
    ],
)
def test_an_unknown_name_is_refused_and_echoed_without_control_characters(name: str, echoed: str) -> None:
    refused = refusal(name)

    assert refused.message == f"unknown IANA timezone {echoed}; {CITY_HINT}"
    assert refused.message.isprintable()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", f"is empty; {CITY_HINT}"),
        ("  \t", f"is empty; {CITY_HINT}"),
        ("America/" + "x" * 57, f"is too long (65 characters); {CITY_HINT}"),
        (None, "must be text: an IANA timezone such as America/New_York"),
        (5, "must be text: an IANA timezone such as America/New_York"),
        (b"America/New_York", "must be text: an IANA timezone such as America/New_York"),
    ],
)
def test_an_empty_overlong_or_non_text_name_is_refused_without_echoing_it(name: object, message: str) -> None:
    assert refusal(name).message == message


def test_the_refusal_names_the_field_it_was_asked_about() -> None:
    assert refusal("EST", "DEFAULT_TIMEZONE").field == "DEFAULT_TIMEZONE"


def test_the_zone_list_is_sorted_unique_and_says_where_it_came_from() -> None:
    header, *lines = zones_file_lines()
    zones = [line.partition("#")[0].strip() for line in lines]

    assert header.startswith("# IANA zone1970.tab and zone.tab")
    assert "tzdata 20" in header
    assert zones == sorted(set(zones))
    assert all(zone and " " not in zone for zone in zones)
    assert frozenset(zones) == region_zones()


def test_every_listed_zone_loads_from_the_pinned_tzdata_package() -> None:
    root = files("tzdata").joinpath("zoneinfo")

    for zone in sorted(region_zones()):
        with root.joinpath(*zone.split("/")).open("rb") as tzif:
            assert ZoneInfo.from_file(tzif, key=zone).key == zone
        assert ZoneInfo(zone).key == zone


def test_the_zone_list_is_both_iana_tables_with_the_zone_tab_only_zones_marked() -> None:
    zone1970 = (
        "#codes\tcoordinates\tTZ\tcomments\n"
        "BE,LU,NL\t+5050+00420\tEurope/Brussels\n"
        "GB\t+513030-0000731\tEurope/London\n"
    )
    zone_tab = "# comment\nNL\t+5222+00454\tEurope/Amsterdam\nBE\t+5050+00420\tEurope/Brussels\n\n"

    lines = render(table_zones(zone1970), table_zones(zone_tab), "2025b").splitlines()

    assert lines[0].startswith("# IANA zone1970.tab and zone.tab (union) of tzdata 2025b")
    assert lines[1:] == [f"Europe/Amsterdam  {ZONE_TAB_ONLY}", "Europe/Brussels", "Europe/London"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(st.characters(exclude_categories=())),
        st.text(st.characters(exclude_categories=()), min_size=60, max_size=2000),
        st.sampled_from(sorted(region_zones())).map(str.swapcase),
        st.sampled_from(sorted(region_zones())),
        st.text(st.sampled_from("EST5DTUCGM+-/:0 \x00\t\udc80")),
    )
)
def test_any_text_is_a_listed_zone_or_an_invalid_field_with_a_printable_message(name: str) -> None:
    if name in region_zones():
        assert valid_timezone(name) == name
    else:
        refused = refusal(name)
        assert refused.field == "timezone"
        assert refused.message.isprintable()
        assert refused.message.encode("utf-8")
