"""The layer holds only what runs on AWS: no fake, no virtual clock, nothing of the local stack or the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from coach.adapters.clock import SystemClock, install_clock, installed_clock
from coach.bootstrap import default_clock

LAYER = Path(__file__).resolve().parents[2] / "layers" / "coach" / "coach"


def _modules() -> list[Path]:
    return sorted(LAYER.rglob("*.py"))


def test_the_layer_defines_no_fake_and_no_virtual_clock() -> None:
    defined = {
        node.name: path.relative_to(LAYER).as_posix()
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }

    stand_ins = {name: path for name, path in defined.items() if name.startswith(("InMemory", "Fake", "Virtual"))}
    assert stand_ins == {}
    assert not any(path.name.startswith("memory") for path in _modules())


def test_the_layer_imports_nothing_of_the_local_stack_or_the_tests() -> None:
    imported: list[str] = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            outside = [name for name in names if name.split(".")[0] in ("infra", "tests")]
            imported += [f"{path.relative_to(LAYER)}: {name}" for name in outside]

    assert imported == []


def test_a_virtual_clock_is_read_only_where_one_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import coach.adapters.clock as clock_module

    monkeypatch.setattr(clock_module, "_installed", None)
    assert isinstance(default_clock(False), SystemClock)
    with pytest.raises(RuntimeError, match="no virtual clock is installed"):
        default_clock(True)

    mine = SystemClock()
    install_clock(mine)
    assert installed_clock() is mine
    assert default_clock(True) is mine
