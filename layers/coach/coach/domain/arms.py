"""Study arms: what each arm of a study changes, and which arm an enrollment gets.

The study lists its arms as one JSON text (STUDY_ARMS). Allocation is by permuted blocks seeded from the
study's seed, so the sequence of arms reproduces from the seed and stays balanced however many enroll.
"""

from __future__ import annotations

import difflib
import json
import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from coach.domain.errors import InvalidField

SETTING = "STUDY_ARMS"
DEFAULT_ARM = "default"
MAX_ARMS = 20
MAX_BLOCK_SIZE = 200
MAX_PROBLEMS_REPORTED = 5
MAX_SHOWN = 60  # characters of a wrong value quoted back
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_FORMAT = 'a JSON list of arms, or an object {"arms": [...], "block_multiple": N}'


class Arm(BaseModel):
    """One arm of the study. A change left unset (None) keeps the deployment's setting."""

    # strict: a research configuration should say 2, not "2" or 2.0, and true, not "yes"
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN, strict=True)
    ratio: int = Field(1, ge=1, le=100, strict=True, description="The arm's share of every allocation block")
    nudge_probability: float | None = Field(None, ge=0, le=1, strict=True, allow_inf_nan=False)
    reminders: bool | None = Field(None, strict=True)
    intensity_check: bool | None = Field(None, strict=True)
    coach: Literal["llm", "offline"] | None = None
    description: str = Field("", max_length=200, strict=True)

    def resolved_probability(self, default: float) -> float:
        """The chance of a nudge at an available decision point in this arm."""
        return default if self.nudge_probability is None else self.nudge_probability

    def reminder_delay(self, default_delay_minutes: int) -> int:
        """Minutes from an unanswered nudge to its reminder; 0 = no reminder. An arm can switch reminders
        off, but not invent a delay the deployment does not have."""
        return 0 if self.reminders is False else default_delay_minutes

    def intensity_check_on(self, default: bool) -> bool:
        return default if self.intensity_check is None else self.intensity_check

    def coach_is_llm(self, llm_configured: bool) -> bool:
        """Whether this arm's participants talk to the LLM coach. "llm" needs a configured LLM; without one
        the arm gets the offline coach, as every participant of that deployment does."""
        return llm_configured and self.coach != "offline"


class StudyArms(BaseModel):
    """The study's arms and how allocation blocks are made of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arms: tuple[Arm, ...] = Field(min_length=1, max_length=MAX_ARMS)
    block_multiple: int = Field(1, ge=1, le=MAX_BLOCK_SIZE, strict=True)

    @model_validator(mode="after")
    def _consistent(self) -> StudyArms:
        names = [arm.name for arm in self.arms]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(repeated)}")
        if self.block_size > MAX_BLOCK_SIZE:
            ratios = sum(arm.ratio for arm in self.arms)
            raise ValueError(
                f"the allocation block is too large: sum of ratios {ratios} x block_multiple {self.block_multiple}"
                f" = {self.block_size}, at most {MAX_BLOCK_SIZE}; lower the ratios or block_multiple"
            )
        return self

    @property
    def block_size(self) -> int:
        return sum(arm.ratio for arm in self.arms) * self.block_multiple

    def names(self) -> tuple[str, ...]:
        return tuple(arm.name for arm in self.arms)

    def arm(self, name: str) -> Arm:
        """The arm called `name`; InvalidField("arm", ...) naming the study's arms when there is none."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise InvalidField("arm", f"no arm {name!r} in this study; its arms are: {', '.join(self.names())}")


def default_study_arms() -> StudyArms:
    """A deployment without arms: one arm that changes nothing."""
    return StudyArms(arms=(Arm(name=DEFAULT_ARM),))


def parse_study_arms(text: str | None) -> StudyArms:
    """The study's arms from their JSON text; unset or blank = one `default` arm.

    Every problem raises InvalidField("STUDY_ARMS", ...) saying what to fix.
    """
    if text is None or not text.strip():
        return default_study_arms()
    try:
        parsed = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidField(
            SETTING, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; give {_FORMAT}"
        ) from exc
    except _NotJson as exc:
        raise InvalidField(SETTING, f"not valid JSON: {exc}") from exc
    if isinstance(parsed, list):
        parsed = {"arms": parsed}
    elif not isinstance(parsed, dict):
        raise InvalidField(SETTING, f"must be {_FORMAT}; got {_json_type(parsed)}")
    try:
        return StudyArms.model_validate(parsed)
    except ValidationError as exc:
        problems = [_problem(error, parsed) for error in exc.errors() if not _follows_from_others(error)]
        if len(problems) > MAX_PROBLEMS_REPORTED:
            more = len(problems) - MAX_PROBLEMS_REPORTED
            problems = [*problems[:MAX_PROBLEMS_REPORTED], f"and {more} more"]
        raise InvalidField(SETTING, "; ".join(problems)) from exc


@dataclass(frozen=True)
class Allocation:
    """Which arm an enrollment got and where in the allocation sequence, for the research record."""

    arm: str
    block: int
    position_in_block: int
    sequence: int

    def as_event_data(self) -> dict[str, object]:
        return {
            "arm": self.arm,
            "block": self.block,
            "position_in_block": self.position_in_block,
            "sequence": self.sequence,
        }


def allocation(arms: StudyArms, seed: str, sequence: int) -> Allocation:
    """The arm of the `sequence`-th enrollment (0-based), by permuted blocks: each block holds every arm
    ratio x block_multiple times, shuffled by a generator seeded with (seed, block number), so any
    enrollment's arm can be recomputed from the seed alone."""
    if sequence < 0:
        raise ValueError(f"sequence must be 0 or more, got {sequence}")
    block, position = divmod(sequence, arms.block_size)
    order = [arm.name for arm in arms.arms for _ in range(arm.ratio * arms.block_multiple)]
    random.Random(f"{seed}|block|{block}").shuffle(order)
    return Allocation(arm=order[position], block=block, position_in_block=position, sequence=sequence)


def allocate(arms: StudyArms, seed: str, sequence: int) -> str:
    return allocation(arms, seed, sequence).arm


class _NotJson(ValueError):
    """What the standard parser accepts but JSON does not (NaN), or a typo JSON allows (a repeated key)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise _NotJson(f"an object repeats the key(s) {', '.join(map(repr, repeated))}; give each once")
    return dict(pairs)


def _no_constant(name: str) -> object:
    raise _NotJson(f"{name} is not a JSON number")


def _json_type(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"


def _follows_from_others(error: ErrorDetails) -> bool:
    """A tuple's length is counted after its items validate: arms with errors also read as "too few arms"."""
    given = error["input"]
    return error["type"] == "too_short" and error["loc"] == ("arms",) and isinstance(given, list) and bool(given)


def _problem(error: ErrorDetails, data: dict[str, object]) -> str:
    """One validation error as what to fix, located by the arm's index and name."""
    loc = error["loc"]
    kind = error["type"]
    where = _where(loc, data)
    if kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        return f"{where}: {cause}" if where else str(cause)
    if kind == "extra_forbidden":
        known = list((Arm if len(loc) > 1 else StudyArms).model_fields)
        field = str(loc[-1])
        close = difflib.get_close_matches(field, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        owner = where.rsplit(" ", 1)[0] if len(loc) > 1 else "the object"
        return f"{owner}: unknown field {field!r}{hint}; the fields are: {', '.join(known)}"
    if kind == "missing":
        return f"{where}: is required"
    if kind == "model_type":
        return f'{where}: must be an object such as {{"name": "control", "ratio": 1}}'
    if loc == ("arms",):
        return f"arms: {_arms_problem(kind, error['input'])}"
    if kind == "string_pattern_mismatch":
        message = "must be 1 to 40 of a-z, 0-9, _ and -, starting with a letter or digit"
    else:
        message = error["msg"].removeprefix("Input ")
    return f"{where}: {message} (got {_shown(error['input'])})"


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}..."


def _arms_problem(kind: str, value: object) -> str:
    if kind == "too_short":
        return 'give at least one arm, e.g. [{"name": "control"}]'
    if kind == "too_long":
        count = len(value) if isinstance(value, list | tuple) else "more"
        return f"at most {MAX_ARMS} arms (got {count})"
    return f"must be a list of arms (got {_json_type(value)})"


def _where(loc: tuple[int | str, ...], data: dict[str, object]) -> str:
    """'arms[1] "treatment" ratio' for a field of an arm, 'block_multiple' for the study's own."""
    if len(loc) < 2 or loc[0] != "arms" or not isinstance(loc[1], int):
        return ".".join(map(str, loc))
    label = f"arms[{loc[1]}]"
    arms = data.get("arms")
    if isinstance(arms, list) and loc[1] < len(arms) and isinstance(arms[loc[1]], dict):
        name = arms[loc[1]].get("name")
        if isinstance(name, str):
            label += f" {json.dumps(name)}"
    return " ".join([label, *map(str, loc[2:])])


def arm_of(arms: StudyArms, name: str | None) -> Arm | None:
    """The participant's arm of the design, or None (no arm, or one the design no longer has: the
    deployment's settings then apply as they are)."""
    if name is None:
        return arms.arms[0] if len(arms.arms) == 1 else None
    return next((arm for arm in arms.arms if arm.name == name), None)
