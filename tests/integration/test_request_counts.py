"""A turn costs the same AWS requests whatever the length of the transcript (counted, not timed)."""

from __future__ import annotations

from tests.bench.support import turn_requests


def test_requests_per_turn_do_not_grow_with_the_transcript() -> None:
    short, long = turn_requests(0), turn_requests(150)

    assert short == long
    assert not any(operation.endswith(("Scan", "BatchGetItem")) for operation in long)
    assert sum(long.values()) <= 20
