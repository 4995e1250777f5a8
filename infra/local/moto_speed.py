"""Three of moto's costs that grow with a study, taken out without changing what moto answers.

A week of a 50-participant study is some thousand turns on the local stack, and each turn is a dozen requests
into moto. Three things moto does per request grow with the table, or are just slow, and together made such
a week several times slower than it need be:

- A DynamoDB transaction deep-copies every table it names before it starts, to put the copy back if it fails
  (about 130 ms per TransactWriteItems once the table holds a study). Here the backup is of the items the
  transaction names, and a failed transaction puts back only those: what DynamoDB itself promises (all or
  none of the transaction's items), and no longer a whole-table restore that would undo any other write.
- A query on the table's own key sorts every item of the table, then keeps the partition's. Here it looks
  at the partition's items only: the same items, in the same order. A query on an index still looks at every
  item (moto keeps no index), but no longer sorts the whole table first: it sorts what it keeps anyway.
- Every request lists moto's package folder on disk to recognise a service by its name. Here the list is
  read once (the installed moto does not change while the process runs).

`install()` patches moto once per process; the local stack calls it when moto's server starts, and the test
suite for its own moto (tests/conftest.py). tests/integration/test_moto_speed.py holds moto's answers to
the same: a failed transaction, a partition's query, an index's.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import moto.backends
import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Patch moto (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _transactions_back_up_their_items()
        _queries_read_their_partition()
        _module_list_read_once()
        _installed = True


# -- transactions ----------------------------------------------------------------------------------------------


class _CopyButTables:
    """`copy` as moto's DynamoDB backend sees it: a table is "copied" as itself, so the whole-table backup
    costs nothing and putting it back changes nothing; everything else is copied as before."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_Backup = list[tuple[str, dict[str, Any], dict[str, Any] | None]]  # (table, key, attributes or None)


def _transactions_back_up_their_items() -> None:
    backend = dynamodb_models.DynamoDBBackend
    original: Callable[..., None] = backend.transact_write_items
    dynamodb_models.copy = _CopyButTables  # type: ignore[attr-defined,assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backup = _backup(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore(self, backup)
            raise

    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _backup(backend: Any, transact_items: list[dict[str, Any]]) -> _Backup:
    """Each named item as it is before the transaction (None: not there). Items moto will refuse anyway (an
    unknown table, a malformed operation) are skipped: moto raises before changing anything for them."""
    saved: _Backup = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.get_table(op["TableName"])
            if op_type == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            current = backend.get_item(op["TableName"], key)
        except Exception:  # noqa: S112 - moto answers this operation's fault itself
            continue
        attributes = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
        saved.append((op["TableName"], key, attributes))
    return saved


def _restore(backend: Any, backup: _Backup) -> None:
    for table_name, key, attributes in reversed(backup):
        if attributes is None:
            if backend.get_item(table_name, key) is not None:
                backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, attributes)


# -- queries ---------------------------------------------------------------------------------------------------

_query = threading.local()  # what the running query reads: ("partition", its key) or ("index",)


def _queries_read_their_partition() -> None:
    query: Callable[..., Any] = Table.query
    all_items: Callable[[Table], list[Any]] = Table.all_items

    def partition_query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is None:
            _query.reads = ("partition", hash_key) if self.range_key_attr else None
        else:
            _query.reads = ("index", _string_equalities(kwargs.get("hash_key_conditions")))
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _query.reads = None

    def query_items(self: Table) -> list[Any]:
        reads = getattr(_query, "reads", None)
        if reads is None:  # a scan, an export, anything but a query: as moto does it
            return all_items(self)
        if reads[0] == "partition":
            return sorted(self.items.get(reads[1], {}).values(), key=lambda item: item.range_key)
        # An index's query filters every item and sorts what it keeps by the index's keys: the table's
        # order of the items it starts from (a sort of the whole table) is never seen. Its string keys
        # are compared here first, as moto compares strings (same type, same value), only cheaper.
        items: list[Any] = (
            [item for partition in self.items.values() for item in partition.values()]
            if self.range_key_attr
            else list(self.items.values())
        )
        for name, value in reads[1]:
            items = [item for item in items if _is_string(item.attrs.get(name), value)]
        return items

    Table.query = partition_query  # type: ignore[method-assign]
    Table.all_items = query_items  # type: ignore[method-assign]


def _string_equalities(conditions: list[tuple[str, Any]] | None) -> list[tuple[str, str]]:
    """The index query's key conditions on strings, as (attribute, value); moto checks the rest itself."""
    return [(name, typed.value) for name, typed in conditions or [] if typed.type == "S"]


def _is_string(typed: Any, value: str) -> bool:
    return typed is not None and typed.type == "S" and typed.value == value


# -- the module list -------------------------------------------------------------------------------------------


def _module_list_read_once() -> None:
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules
