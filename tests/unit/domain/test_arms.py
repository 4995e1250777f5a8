"""Study arms: the STUDY_ARMS configuration, allocation by seeded permuted blocks, and what an arm changes."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coach.domain.arms import (
    DEFAULT_ARM,
    Allocation,
    Arm,
    StudyArms,
    allocate,
    allocation,
    parse_study_arms,
)
from coach.domain.errors import InvalidField


def study(*ratios: int, block_multiple: int = 1) -> StudyArms:
    return StudyArms(
        arms=tuple(Arm(name=f"arm{i}", ratio=ratio) for i, ratio in enumerate(ratios)), block_multiple=block_multiple
    )


TWO_ARMS = StudyArms(arms=(Arm(name="control"), Arm(name="treatment")))


# --- the configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   \n"])
def test_no_configuration_is_one_default_arm_that_changes_nothing(text: str | None) -> None:
    arms = parse_study_arms(text)

    assert arms.names() == (DEFAULT_ARM,)
    assert arms.block_size == 1
    only = arms.arm("default")
    assert (only.ratio, only.nudge_probability, only.reminders, only.intensity_check, only.coach) == (
        1,
        None,
        None,
        None,
        None,
    )
    assert allocate(arms, "any-seed", 7) == "default"


@pytest.mark.parametrize(
    ("text", "names", "ratios", "block_multiple", "block_size"),
    [
        ('[{"name": "control"}, {"name": "treatment"}]', ("control", "treatment"), (1, 1), 1, 2),
        ('{"arms": [{"name": "control"}, {"name": "treatment"}]}', ("control", "treatment"), (1, 1), 1, 2),
        ('[{"name": "a", "ratio": 2}, {"name": "b"}]', ("a", "b"), (2, 1), 1, 3),
        ('{"arms": [{"name": "a", "ratio": 2}, {"name": "b"}], "block_multiple": 2}', ("a", "b"), (2, 1), 2, 6),
        ('[{"name": "only-1_arm"}]', ("only-1_arm",), (1,), 1, 1),
        (json.dumps([{"name": f"arm{i}", "ratio": 10} for i in range(20)]), None, (10,) * 20, 1, 200),
    ],
)
def test_valid_configurations(
    text: str, names: tuple[str, ...] | None, ratios: tuple[int, ...], block_multiple: int, block_size: int
) -> None:
    arms = parse_study_arms(text)

    if names is not None:
        assert arms.names() == names
    assert tuple(arm.ratio for arm in arms.arms) == ratios
    assert arms.block_multiple == block_multiple
    assert arms.block_size == block_size


def test_an_arm_carries_what_it_changes() -> None:
    arms = parse_study_arms(
        '[{"name": "control", "description": "the deployment as it is"},'
        ' {"name": "lean", "nudge_probability": 0.5, "reminders": false, "intensity_check": true,'
        ' "coach": "offline", "ratio": 3}]'
    )

    lean = arms.arm("lean")
    assert (lean.ratio, lean.nudge_probability, lean.reminders, lean.intensity_check, lean.coach) == (
        3,
        0.5,
        False,
        True,
        "offline",
    )
    assert arms.arm("control").description == "the deployment as it is"


def test_an_integer_probability_is_a_probability() -> None:
    assert parse_study_arms('[{"name": "a", "nudge_probability": 1}]').arm("a").nudge_probability == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # not JSON, or JSON of the wrong shape
        ("control,treatment", ["not valid JSON", "line 1, column 1", "a JSON list of arms"]),
        ('[{"name": "a"}', ["not valid JSON", "line 1, column 15"]),
        ('[{"name": "a", "nudge_probability": NaN}]', ["not valid JSON", "NaN"]),
        ('[{"name": "a", "name": "b"}]', ["repeats the key(s) 'name'"]),
        ("3", ["must be a JSON list of arms", "got a number"]),
        ('"control"', ["must be a JSON list of arms", "got a string"]),
        ("null", ["must be a JSON list of arms", "got null"]),
        ('{"arms": "control"}', ["arms: must be a list of arms (got a string)"]),
        ("[3]", ['arms[0]: must be an object such as {"name": "control", "ratio": 1}']),
        # how many arms
        ("[]", ["give at least one arm"]),
        ('{"arms": []}', ["give at least one arm"]),
        ("{}", ["arms: is required"]),
        (json.dumps([{"name": f"a{i}"} for i in range(21)]), ["at most 20 arms (got 21)"]),
        # an arm's fields
        ('[{"ratio": 2}]', ["arms[0] name: is required"]),
        ('[{"name": "Control"}]', ['arms[0] "Control" name: must be 1 to 40 of a-z', '(got "Control")']),
        ('[{"name": "-a"}]', ['arms[0] "-a" name: must be 1 to 40']),
        (json.dumps([{"name": "a" * 41}]), ["name: must be 1 to 40"]),
        ('[{"name": 5}]', ["arms[0] name: should be a valid string (got 5)"]),
        ('[{"name": "a"}, {"name": "b"}, {"name": "a"}]', ["arm names must be unique; repeated: a"]),
        ('[{"name": "a", "ratio": 0}]', ['arms[0] "a" ratio: should be greater than or equal to 1 (got 0)']),
        ('[{"name": "a", "ratio": 101}]', ['arms[0] "a" ratio: should be less than or equal to 100']),
        ('[{"name": "a", "ratio": "2"}]', ['arms[0] "a" ratio: should be a valid integer (got "2")']),
        ('[{"name": "a", "ratio": 1.5}]', ['arms[0] "a" ratio: should be a valid integer']),
        ('[{"name": "a", "ratio": true}]', ['arms[0] "a" ratio: should be a valid integer (got true)']),
        (
            '[{"name": "a"}, {"name": "b", "nudge_probability": 1.5}]',
            ['arms[1] "b" nudge_probability: should be less than or equal to 1 (got 1.5)'],
        ),
        ('[{"name": "a", "nudge_probability": -0.1}]', ["nudge_probability: should be greater than or equal to 0"]),
        ('[{"name": "a", "reminders": "no"}]', ['arms[0] "a" reminders: should be a valid boolean (got "no")']),
        ('[{"name": "a", "intensity_check": 1}]', ['arms[0] "a" intensity_check: should be a valid boolean']),
        ('[{"name": "a", "coach": "gpt"}]', ["arms[0] \"a\" coach: should be 'llm' or 'offline' (got \"gpt\")"]),
        (json.dumps([{"name": "a", "description": "x" * 201}]), ["description: String should have at most 200"]),
        (
            '[{"name": "a", "probability": 0.5}]',
            ["arms[0] \"a\": unknown field 'probability' (did you mean 'nudge_probability'?)", "the fields are: name"],
        ),
        ('{"arm": [{"name": "a"}]}', ["unknown field 'arm' (did you mean 'arms'?)", "arms: is required"]),
        # the allocation block
        ('{"arms": [{"name": "a"}], "block_multiple": 0}', ["block_multiple: should be greater than or equal to 1"]),
        ('{"arms": [{"name": "a"}], "block_multiple": "2"}', ["block_multiple: should be a valid integer"]),
        (
            '{"arms": [{"name": "a", "ratio": 60}, {"name": "b", "ratio": 41}], "block_multiple": 2}',
            ["block is too large: sum of ratios 101 x block_multiple 2 = 202, at most 200"],
        ),
    ],
)
def test_every_invalid_configuration_says_what_to_fix(text: str, expected: list[str]) -> None:
    with pytest.raises(InvalidField) as raised:
        parse_study_arms(text)

    assert raised.value.field == "STUDY_ARMS"
    for part in expected:
        assert part in raised.value.message
    assert "pydantic" not in raised.value.message
    assert "Value error" not in raised.value.message


def test_an_arm_with_a_bad_field_is_not_also_reported_as_no_arms() -> None:
    with pytest.raises(InvalidField) as raised:
        parse_study_arms('[{"name": "a", "ratio": 0}]')

    assert "at least one arm" not in raised.value.message


def test_many_problems_are_reported_up_to_a_limit() -> None:
    with pytest.raises(InvalidField) as raised:
        parse_study_arms(json.dumps([{"name": f"a{i}", "ratio": 0} for i in range(8)]))

    assert raised.value.message.count("ratio: should be") == 5
    assert raised.value.message.endswith("and 3 more")


def test_a_long_wrong_value_is_quoted_back_shortened() -> None:
    with pytest.raises(InvalidField) as raised:
        parse_study_arms(json.dumps([{"name": "a", "coach": "x" * 500}]))

    assert len(raised.value.message) < 200
    assert raised.value.message.endswith("...)")


def test_an_arm_is_found_by_name_or_the_error_names_the_known_arms() -> None:
    assert TWO_ARMS.arm("treatment").name == "treatment"

    with pytest.raises(InvalidField) as raised:
        TWO_ARMS.arm("placebo")

    assert raised.value.field == "arm"
    assert raised.value.message == "no arm 'placebo' in this study; its arms are: control, treatment"


def test_the_configuration_is_frozen() -> None:
    arm = Arm(name="a")
    with pytest.raises(ValueError, match="frozen"):
        arm.ratio = 2  # type: ignore[misc]


# --- allocation ----------------------------------------------------------------------------------------------

# What seed "study-a" gives. If this changes, every running study's allocation changes: don't, unless the
# study has not started.
REGRESSION_1_TO_1 = [
    "control", "treatment", "treatment", "control", "control", "treatment", "control", "treatment",
    "control", "treatment", "control", "treatment", "control", "treatment", "treatment", "control",
]  # fmt: skip
REGRESSION_2_TO_1 = [
    "treatment", "control", "control", "control", "control", "treatment",
    "control", "treatment", "control", "control", "treatment", "control",
]  # fmt: skip


def test_the_allocation_algorithm_has_not_changed() -> None:
    two_to_one = StudyArms(arms=(Arm(name="control", ratio=2), Arm(name="treatment")))

    assert [allocate(TWO_ARMS, "study-a", n) for n in range(16)] == REGRESSION_1_TO_1
    assert [allocate(two_to_one, "study-a", n) for n in range(12)] == REGRESSION_2_TO_1


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        (0, Allocation(arm="control", block=0, position_in_block=0, sequence=0)),
        (1, Allocation(arm="treatment", block=0, position_in_block=1, sequence=1)),
        (2, Allocation(arm="treatment", block=1, position_in_block=0, sequence=2)),
        (15, Allocation(arm="control", block=7, position_in_block=1, sequence=15)),
    ],
)
def test_an_allocation_says_where_in_the_sequence_it_is(sequence: int, expected: Allocation) -> None:
    got = allocation(TWO_ARMS, "study-a", sequence)

    assert got == expected
    assert got.arm == allocate(TWO_ARMS, "study-a", sequence)
    assert got.as_event_data() == {
        "arm": expected.arm,
        "block": expected.block,
        "position_in_block": expected.position_in_block,
        "sequence": sequence,
    }


def test_a_negative_sequence_is_refused() -> None:
    with pytest.raises(ValueError, match="sequence must be 0 or more"):
        allocate(TWO_ARMS, "study-a", -1)


ratios_st = st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=5)


@given(
    ratios=ratios_st,
    block_multiple=st.integers(min_value=1, max_value=3),
    seed=st.text(max_size=20),
    blocks=st.integers(min_value=1, max_value=5),
    extra=st.integers(min_value=0, max_value=89),
)
def test_allocation_is_balanced(ratios: list[int], block_multiple: int, seed: str, blocks: int, extra: int) -> None:
    arms = study(*ratios, block_multiple=block_multiple)
    size = arms.block_size
    sequence = [allocate(arms, seed, n) for n in range(blocks * size + extra % size)]

    for b in range(blocks):
        counts = Counter(sequence[b * size : (b + 1) * size])
        assert counts == {arm.name: arm.ratio * block_multiple for arm in arms.arms}
    counts = Counter()
    for n, name in enumerate(sequence, start=1):
        counts[name] += 1
        for arm in arms.arms:
            per_block = arm.ratio * block_multiple
            assert abs(counts[arm.name] - n * per_block / size) <= per_block


@given(ratios=ratios_st, seed=st.text(max_size=20), sequence=st.integers(min_value=0, max_value=10_000))
def test_the_same_seed_gives_the_same_arm(ratios: list[int], seed: str, sequence: int) -> None:
    arms = study(*ratios)

    assert allocate(arms, seed, sequence) == allocate(study(*ratios), seed, sequence)
    assert allocate(arms, seed, sequence) in arms.names()


@pytest.mark.parametrize(("seed", "other"), [("study-a", "study-b"), ("study-a", "study-a "), ("", "0")])
def test_another_seed_gives_another_sequence(seed: str, other: str) -> None:
    first = [allocate(TWO_ARMS, seed, n) for n in range(40)]
    second = [allocate(TWO_ARMS, other, n) for n in range(40)]

    assert first != second
    assert first == [allocate(TWO_ARMS, seed, n) for n in range(40)]


# --- what an arm changes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nudge_probability", "default", "expected"), [(None, 0.6, 0.6), (0.25, 0.6, 0.25), (0.0, 1.0, 0.0)]
)
def test_the_nudge_probability(nudge_probability: float | None, default: float, expected: float) -> None:
    assert Arm(name="a", nudge_probability=nudge_probability).resolved_probability(default) == expected


@pytest.mark.parametrize(
    ("reminders", "default_delay", "expected"),
    [(None, 300, 300), (True, 300, 300), (False, 300, 0), (None, 0, 0), (True, 0, 0), (False, 0, 0)],
)
def test_the_reminder_delay(reminders: bool | None, default_delay: int, expected: int) -> None:
    assert Arm(name="a", reminders=reminders).reminder_delay(default_delay) == expected


@pytest.mark.parametrize(
    ("intensity_check", "default", "expected"),
    [(None, False, False), (None, True, True), (True, False, True), (False, True, False)],
)
def test_the_intensity_check(intensity_check: bool | None, default: bool, expected: bool) -> None:
    assert Arm(name="a", intensity_check=intensity_check).intensity_check_on(default) is expected


@pytest.mark.parametrize(
    ("coach", "llm_configured", "expected"),
    [
        (None, True, True),
        (None, False, False),
        ("llm", True, True),
        ("llm", False, False),  # no LLM to talk to: offline, as for everyone in that deployment
        ("offline", True, False),
        ("offline", False, False),
    ],
)
def test_the_coach(coach: str | None, llm_configured: bool, expected: bool) -> None:
    assert Arm.model_validate({"name": "a", "coach": coach}).coach_is_llm(llm_configured) is expected
