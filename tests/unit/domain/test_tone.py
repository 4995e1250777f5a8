"""Tone tags: a whitelist, explicit requests at once, implicit signals slowly and at most every 3 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coach.domain.tone import ALPHA, TONE_TAGS, Tone, requested_tone_tags, without_tone_requests

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _observed(tone: Tone, tag: str, value: float, times: int, start: datetime = T0) -> Tone:
    for i in range(times):
        tone = tone.with_implicit({tag: value}, start + timedelta(minutes=3 * i))
    return tone


def test_only_whitelisted_tags_are_kept() -> None:
    tone = Tone().with_explicit(["concise", "pirate_speak"]).with_implicit({"shouty": 1.0}, T0)
    assert tone.active == ["concise"]
    assert set(tone.scores) <= set(TONE_TAGS)
    assert tone.last_implicit_update_at is None  # nothing known was observed


def test_an_explicit_request_applies_at_once_and_drops_its_pair() -> None:
    tone = Tone().with_explicit(["detailed", "casual"]).with_explicit(["concise"])
    assert tone.active == ["concise", "casual"]
    assert tone.scores["detailed"] == 0.0


def test_no_emojis_beats_emojis_ok() -> None:
    assert Tone().with_explicit(["emojis_ok", "no_emojis"]).active == ["no_emojis"]
    assert not Tone().with_explicit(["emojis_ok", "no_emojis"]).emojis_allowed
    assert Tone().with_explicit(["emojis_ok"]).emojis_allowed
    assert not Tone().emojis_allowed  # no emojis until someone welcomes them


def test_an_implicit_signal_moves_the_average_by_alpha() -> None:
    tone = Tone().with_implicit({"concise": 1.0}, T0)
    assert tone.scores["concise"] == ALPHA
    assert tone.active == []


def test_implicit_signals_turn_a_tag_on_at_0_7() -> None:
    # 1 - 0.85^n >= 0.7 first at n = 8
    assert "concise" not in _observed(Tone(), "concise", 1.0, 7).active
    tone = _observed(Tone(), "concise", 1.0, 8)
    assert tone.scores["concise"] >= 0.7
    assert "concise" in tone.active


def test_hysteresis_keeps_a_tag_on_until_0_4() -> None:
    tone = Tone(active=["concise"], scores={"concise": 0.72})
    later = T0
    kept = []
    while tone.scores["concise"] > 0.4:
        tone = tone.with_implicit({"concise": 0.0}, later)
        kept.append("concise" in tone.active)
        later += timedelta(minutes=3)
    assert all(kept[:-1]), "on while between 0.4 and 0.7"
    assert kept[-1] is False


def test_between_the_thresholds_an_off_tag_stays_off() -> None:
    tone = Tone(scores={"casual": 0.6}).with_implicit({"casual": 1.0}, T0)
    assert 0.4 < tone.scores["casual"] < 0.7
    assert tone.active == []


def test_at_most_one_implicit_update_per_three_minutes() -> None:
    once = Tone().with_implicit({"concise": 1.0}, T0)
    too_soon = once.with_implicit({"concise": 1.0}, T0 + timedelta(minutes=2, seconds=59))
    assert too_soon == once
    later = once.with_implicit({"concise": 1.0}, T0 + timedelta(minutes=3))
    assert later.scores["concise"] > once.scores["concise"]


def test_explicit_requests_ignore_the_three_minute_limit() -> None:
    tone = Tone().with_implicit({"concise": 1.0}, T0).with_explicit(["formal"])
    assert tone.active == ["formal"]


def test_paired_tags_never_both_on_from_implicit_signals() -> None:
    tone = Tone(scores={"formal": 0.69, "casual": 0.69})
    tone = tone.with_implicit({"formal": 1.0, "casual": 1.0}, T0)
    assert tone.active == ["formal"]  # a tie goes to the first of the pair
    emoji = Tone(scores={"no_emojis": 0.69, "emojis_ok": 0.69}).with_implicit({"no_emojis": 1, "emojis_ok": 1}, T0)
    assert emoji.active == ["no_emojis"]


def test_requests_are_read_from_plain_words() -> None:
    assert requested_tone_tags("No emojis please, and keep it short") == ["no_emojis", "concise"]
    assert requested_tone_tags("did it") == []
    assert without_tone_requests("no emojis please") == ""


def test_tone_survives_json() -> None:
    tone = _observed(Tone().with_explicit(["gentle_coach"]), "concise", 1.0, 2)
    assert Tone.model_validate_json(tone.model_dump_json()) == tone
