"""Tone tags: a whitelist, explicit requests at once, implicit signals slowly and at most every 3 minutes,
unobserved tags fading, and the loser of a pair demoted."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from coach.domain.tone import (
    ALPHA,
    DEMOTED_SCORE,
    IMPLICIT_INTERVAL,
    OFF_AT,
    ON_AT,
    TONE_TAGS,
    Tone,
    requested_tone_tags,
    without_tone_requests,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _observed(tone: Tone, tag: str, value: float, times: int, start: datetime = T0) -> Tone:
    for i in range(times):
        tone = tone.with_implicit({tag: value}, start + timedelta(minutes=3 * i))
    return tone


def _steps_to_reach(start: float, target: float) -> int:
    """Steps of (1 - ALPHA) needed for `start` to shrink to `target` or below."""
    return math.ceil(math.log(target / start) / math.log(1 - ALPHA))


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


def test_a_tag_no_longer_observed_fades_and_turns_off() -> None:
    # Given casual learnt from steady signals until it turned on
    to_turn_on = _steps_to_reach(1.0, 1 - ON_AT)
    learnt = _observed(Tone(), "casual", 1.0, to_turn_on)
    learnt_score = 1 - (1 - ALPHA) ** to_turn_on
    assert "casual" in learnt.active
    assert math.isclose(learnt.scores["casual"], learnt_score, abs_tol=1e-5)
    # When later updates observe only something else
    fades_out_after = _steps_to_reach(learnt_score, OFF_AT)
    start = T0 + IMPLICIT_INTERVAL * to_turn_on
    almost = _observed(learnt, "concise", 1.0, fades_out_after - 1, start)
    gone = _observed(learnt, "concise", 1.0, fades_out_after, start)
    # Then casual is still on one update before, and off (at or below OFF_AT) after exactly that many
    assert "casual" in almost.active
    assert almost.scores["casual"] > OFF_AT
    assert "casual" not in gone.active
    assert gone.scores["casual"] <= OFF_AT


def test_updates_inside_the_three_minute_window_do_not_fade() -> None:
    # Given casual on, and an implicit update that counted at T0
    tone = Tone(active=["casual"], scores={"casual": 0.72}, last_implicit_update_at=T0)
    # When another message comes just inside the window
    too_soon = tone.with_implicit({"concise": 1.0}, T0 + IMPLICIT_INTERVAL - timedelta(seconds=1))
    # Then nothing fades; once the window is over it does, by one step
    assert too_soon == tone
    later = tone.with_implicit({"concise": 1.0}, T0 + IMPLICIT_INTERVAL)
    assert later.scores["casual"] == round((1 - ALPHA) * 0.72, 6)


def test_an_explicit_request_does_not_fade() -> None:
    # Given the person asked to be coached gently
    tone = Tone().with_explicit(["gentle_coach"])
    assert tone.requested == ["gentle_coach"]
    # When many more updates than it takes to fade observe only other tags
    tone = _observed(tone, "concise", 1.0, 10 * _steps_to_reach(1.0, OFF_AT))
    # Then the request still holds
    assert "gentle_coach" in tone.active
    assert tone.scores["gentle_coach"] == 1.0
    assert tone.requested == ["gentle_coach"]


def test_an_explicit_request_holds_until_the_person_asks_for_its_partner() -> None:
    # Given gentle coaching asked for
    tone = Tone().with_explicit(["gentle_coach"])
    # When they ask for the opposite
    tone = tone.with_explicit(["direct_coach"])
    # Then the old request is gone and only the new one is kept
    assert tone.requested == ["direct_coach"]
    assert "gentle_coach" not in tone.active
    assert tone.scores["gentle_coach"] == 0.0


def test_the_loser_of_a_pair_is_demoted_when_its_partner_turns_on_implicitly() -> None:
    # Given detailed on (held by hysteresis) and concise just under the threshold
    tone = Tone(active=["detailed"], scores={"detailed": 0.65, "concise": 0.69})
    # When a short reply turns concise on
    tone = tone.with_implicit({"concise": 1.0}, T0)
    # Then detailed goes off and drops below OFF_AT, instead of keeping its score
    assert tone.active == ["concise"]
    assert tone.scores["detailed"] == DEMOTED_SCORE
    assert DEMOTED_SCORE < OFF_AT


def test_a_partner_already_low_is_not_raised_by_demotion() -> None:
    # Given detailed barely seen and concise just under the threshold
    tone = Tone(scores={"detailed": 0.1, "concise": 0.69})
    # When concise turns on
    tone = tone.with_implicit({"concise": 1.0}, T0)
    # Then detailed keeps its (faded) lower score
    assert tone.active == ["concise"]
    assert tone.scores["detailed"] == round((1 - ALPHA) * 0.1, 6)


def test_when_both_of_a_pair_cross_at_once_the_loser_is_demoted() -> None:
    # Given formal and casual both just under the threshold
    tone = Tone(scores={"formal": 0.69, "casual": 0.69})
    # When both are observed at once
    tone = tone.with_implicit({"formal": 1.0, "casual": 1.0}, T0)
    # Then the first of the pair wins and the other drops to DEMOTED_SCORE
    assert tone.active == ["formal"]
    assert tone.scores["casual"] == DEMOTED_SCORE


def test_the_loser_of_a_pair_is_demoted_when_its_partner_is_asked_for() -> None:
    # Given casual learnt from behaviour
    tone = Tone(active=["casual"], scores={"casual": 0.8})
    # When the person asks for formal
    tone = tone.with_explicit(["formal"])
    # Then casual is off and below OFF_AT at once
    assert tone.active == ["formal"]
    assert tone.scores["casual"] < OFF_AT


def test_asked_for_no_emojis_beats_any_number_of_emojis_of_their_own() -> None:
    # Given the person asked for no emojis
    tone = Tone().with_explicit(["no_emojis"])
    # When they keep sending emojis themselves, long enough to turn emojis_ok on
    tone = _observed(tone, "emojis_ok", 1.0, 3 * _steps_to_reach(1.0, 1 - ON_AT))
    # Then their words win: no emojis from the coach, and emojis_ok is held down
    assert tone.active == ["no_emojis"]
    assert not tone.emojis_allowed
    assert tone.scores["emojis_ok"] < ON_AT


def test_tone_stored_before_requests_were_kept_still_loads() -> None:
    # Given tone as an older version stored it: no `requested`, 1.0 read back from DynamoDB as 1
    stored = {"active": ["concise", "gentle_coach"], "scores": {"concise": 0.72, "gentle_coach": 1, "casual": 0.2}}
    # When it is loaded, from a DynamoDB item or from JSON
    tone = Tone.model_validate(stored)
    # Then it loads as it was, the request (score 1.0) is recognised and does not fade, the rest does
    assert tone == Tone.model_validate_json(json.dumps({**stored, "last_implicit_update_at": None}))
    assert tone.active == ["concise", "gentle_coach"]
    assert tone.requested == ["gentle_coach"]
    later = tone.with_implicit({"emojis_ok": 0.0}, T0)
    assert later.scores["gentle_coach"] == 1.0
    assert later.scores["concise"] == round((1 - ALPHA) * 0.72, 6)
    assert Tone.model_validate({}) == Tone()
