"""Export tables (coach.domain.tables): columns and the dictionary from a model, cells both ways, and the
dictionary's `filled` conditions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from coach.domain.tables import Column, columns_of, condition_holds, flat_record, from_cell, nested, to_cell


class Inner(BaseModel):
    count: int = Field(0, description="How many", json_schema_extra={"unit": "times"})


class Row(BaseModel):
    name: str = Field(description="A name")
    kind: Literal["a", "b"] = Field(description="Which kind")
    at: datetime = Field(description="When")
    sent: bool = Field(False, description="Sent?")
    note: str | None = Field(None, description="A note", json_schema_extra={"filled_when": "sent"})
    tags: list[str] = Field(default_factory=list, description="Tags")
    data: dict[str, object] = Field(default_factory=dict, description="Data")
    inner: Inner = Field(default_factory=Inner, description="Nested")


def test_a_models_columns_flatten_nested_models_and_carry_type_unit_and_rule() -> None:
    columns = {c.name: c for c in columns_of(Row)}

    assert list(columns) == ["name", "kind", "at", "sent", "note", "tags", "data", "inner.count"]
    assert (columns["kind"].type, columns["kind"].values) == ("string", ("a", "b"))
    assert (columns["at"].type, columns["at"].unit) == ("datetime", "UTC, ISO 8601")
    assert (columns["note"].filled_when, columns["note"].nullable) == ("sent", True)
    assert (columns["inner.count"].type, columns["inner.count"].unit) == ("integer", "times")
    assert columns["name"].describe()["filled"] == "always"


def test_a_field_without_a_description_cannot_reach_the_dictionary() -> None:
    class Undescribed(BaseModel):
        secret: str

    with pytest.raises(ValueError, match=r"Undescribed\.secret has no description"):
        columns_of(Undescribed)


def test_a_record_goes_to_cells_and_back() -> None:
    row = Row(
        name="x",
        kind="b",
        at=datetime.fromisoformat("2026-12-01T09:00:00+00:00"),
        sent=True,
        note="hi",
        tags=["p", "q"],
        data={"k": [1, 2]},
        inner=Inner(count=3),
    )
    columns = columns_of(Row)
    cells = {name: to_cell(value) for name, value in flat_record(row, columns).items()}

    assert cells["sent"] == "true"
    assert cells["tags"] == "p;q"
    assert cells["data"] == '{"k":[1,2]}'
    back = nested({c.name: from_cell(cells[c.name], c) for c in columns})
    assert Row.model_validate(back) == row


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_scalar_cells_round_trip(value: object) -> None:
    kind = {bool: "boolean", int: "integer", float: "number", type(None): "integer"}[type(value)]
    column = Column(name="c", type=kind, meaning="m", nullable=True)  # type: ignore[arg-type]
    assert from_cell(to_cell(value), column) == value


def test_a_cell_that_is_not_its_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not true or false"):
        from_cell("yes", Column(name="c", type="boolean", meaning="m"))


@pytest.mark.parametrize(
    ("condition", "row", "holds"),
    [
        ("treated", {"treated": "true"}, True),
        ("treated", {"treated": "false"}, False),
        ("not missed", {"missed": "false"}, True),
        ("coach=llm", {"coach": "offline"}, False),
        ("delivery_status=failed|undelivered", {"delivery_status": "undelivered"}, True),
        ("decision=nudge and not treated", {"decision": "nudge", "treated": "false"}, True),
        ("decision=nudge and not treated", {"decision": "nudge", "treated": "true"}, False),
        ("treated or cancelled_reason=send_failed", {"treated": "false", "cancelled_reason": "send_failed"}, True),
    ],
)
def test_filled_conditions_read_the_rows_cells(condition: str, row: dict[str, str], holds: bool) -> None:
    assert condition_holds(condition, row) is holds


def test_a_condition_naming_no_column_is_an_error_not_false() -> None:
    with pytest.raises(KeyError, match="treatd"):
        condition_holds("treatd", {"treated": "true"})
