"""Export tables: the columns of a pydantic model (nested models flattened as `field.sub`), the data dictionary
generated from them (type, unit, meaning, when a column may be empty), and CSV cells both ways.

The dictionary and the rows come from the same model, so they cannot disagree. A field says more through
`json_schema_extra`: `unit` (e.g. "minutes"), `filled_when` (a condition over the row's other columns under
which, and only under which, the column has a value, e.g. "treated" or "coach=llm") or `optional` (may be
empty for a reason the row does not show). Without either the column is always filled.

Cells: an empty cell is a missing value; booleans are `true`/`false`; times are ISO 8601 in UTC; a list is its
items joined with `;`; a mapping is JSON.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

LIST_SEPARATOR = ";"

ColumnType = Literal["string", "integer", "number", "boolean", "datetime", "date", "list", "json"]


@dataclass(frozen=True)
class Column:
    """One column of an export table, as its data dictionary describes it."""

    name: str
    type: ColumnType
    meaning: str
    unit: str | None = None
    values: tuple[str, ...] = ()  # the allowed values of a coded string column
    filled_when: str | None = None  # None and not optional: always filled
    optional: bool = False
    nullable: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "column": self.name,
            "type": self.type,
            "unit": self.unit or "",
            "meaning": self.meaning,
            "values": LIST_SEPARATOR.join(self.values),
            "filled": "optional" if self.optional else (self.filled_when or "always"),
        }


def columns_of(model: type[BaseModel], *, exclude: frozenset[str] = frozenset(), prefix: str = "") -> list[Column]:
    """The columns of `model` in field order; a field that is itself a model becomes its fields' columns."""
    columns: list[Column] = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        base, nullable = _unwrap(info.annotation)
        if isinstance(base, type) and issubclass(base, BaseModel):
            columns += columns_of(base, prefix=f"{prefix}{name}.")
            continue
        columns.append(_column(f"{prefix}{name}", base, nullable, info, model))
    return columns


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(get_args(annotation))
    return annotation, False


def _column(name: str, base: Any, nullable: bool, info: FieldInfo, model: type[BaseModel]) -> Column:
    if not info.description:
        raise ValueError(f"{model.__name__}.{name.rsplit('.', 1)[-1]} has no description for the data dictionary")
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    kind, values = _type_of(base)
    return Column(
        name=name,
        type=kind,
        meaning=info.description,
        unit=str(extra["unit"]) if "unit" in extra else ("UTC, ISO 8601" if kind == "datetime" else None),
        values=values,
        filled_when=str(extra["filled_when"]) if "filled_when" in extra else None,
        optional=bool(extra.get("optional", False)),
        nullable=nullable,
    )


def _type_of(base: Any) -> tuple[ColumnType, tuple[str, ...]]:
    origin = get_origin(base)
    if origin is Literal:
        return "string", tuple(str(v) for v in get_args(base))
    if origin in (list, tuple, set, frozenset):
        return "list", ()
    if origin is dict or base is dict:
        return "json", ()
    if isinstance(base, type):
        if issubclass(base, bool):
            return "boolean", ()
        if issubclass(base, Enum):
            return "string", tuple(str(m.value) for m in base)
        if issubclass(base, int):
            return "integer", ()
        if issubclass(base, float):
            return "number", ()
        if issubclass(base, datetime):
            return "datetime", ()
        if issubclass(base, date):
            return "date", ()
    return "string", ()


# -- cells ---------------------------------------------------------------------------------------------------


def flat_record(record: BaseModel, columns: list[Column]) -> dict[str, Any]:
    """The record's JSON-ready values by column name (nested models flattened)."""
    return flat_values(record.model_dump(mode="json"), columns)


def flat_values(dumped: dict[str, Any], columns: list[Column]) -> dict[str, Any]:
    """flat_record of a record dumped already (`model_dump(mode="json")`)."""
    return {c.name: _lookup(dumped, c.name) for c in columns}


def _lookup(values: dict[str, Any], name: str) -> Any:
    value: Any = values
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def to_cell(value: Any) -> str:
    """A JSON-ready value as a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def from_cell(cell: str, column: Column) -> Any:
    """A CSV cell back as the JSON-ready value it was written from, read by the column's dictionary type."""
    if cell == "":
        if column.type == "list":
            return []
        if column.type == "json":
            return {}
        return "" if column.type == "string" and not column.nullable else None
    match column.type:
        case "boolean":
            if cell not in ("true", "false"):
                raise ValueError(f"{column.name}: {cell!r} is not true or false")
            return cell == "true"
        case "integer":
            return int(cell)
        case "number":
            return float(cell)
        case "list":
            return cell.split(LIST_SEPARATOR)
        case "json":
            return json.loads(cell)
        case _:
            return cell


def nested(cells: dict[str, Any]) -> dict[str, Any]:
    """Flattened `a.b` names back into nested mappings (what model_validate takes)."""
    out: dict[str, Any] = {}
    for name, value in cells.items():
        *parents, leaf = name.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


# -- filled_when ---------------------------------------------------------------------------------------------


def condition_holds(condition: str, row: dict[str, str]) -> bool:
    """Whether a dictionary condition holds for a row of CSV cells.

    `a or b`, `a and b` (and binds tighter), `not x`; an atom is a boolean column (`treated`) or a column's
    value (`coach=llm`, `delivery_status=failed|undelivered`)."""
    return any(all(_atom(atom, row) for atom in term.split(" and ")) for term in condition.split(" or "))


def _atom(atom: str, row: dict[str, str]) -> bool:
    atom = atom.strip()
    if atom.startswith("not "):
        return not _atom(atom[4:], row)
    name, _, wanted = atom.partition("=")
    if name not in row:
        raise KeyError(f"the condition names {name!r}, which is not a column")
    if wanted:
        return row[name] in wanted.split("|")
    return row[name] == "true"
