"""botocore's service models read once per test process, not once per test.

moto gives every test a new boto3 default session, and each session's loader reads and parses the JSON models
of every service it makes a client for (DynamoDB's alone is some megabytes): 60 to 80 ms of each test that
sets up the template's resources, and a large share of the integration tests' time. The files do not change
while the process runs, so their parsed contents are shared between loaders, as one session already shares
them between its own clients (botocore's `instance_cache`). A loader with other search paths (AWS_DATA_PATH)
has its own entries.

Tests only: a Lambda container or the local stack builds each client once and gains nothing from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader

_shared: dict[Hashable, Any] = {}
_lock = threading.Lock()
_installed = False


def install() -> None:
    """Share what every Loader reads (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        Loader.load_data_with_path = _shared_by_search_paths(Loader.load_data_with_path)  # type: ignore[method-assign]
        Loader.list_available_services = _shared_by_search_paths(  # type: ignore[method-assign]
            Loader.list_available_services
        )
        _installed = True


class _Missing:
    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs


def _shared_by_search_paths(read: Callable[..., Any]) -> Callable[..., Any]:
    def shared(self: Loader, *args: Any, **kwargs: Any) -> Any:
        key = (read.__name__, tuple(self.search_paths), args, tuple(sorted(kwargs.items())))
        with _lock:
            known = _shared.get(key, _shared)
        if known is _shared:
            try:
                known = read(self, *args, **kwargs)
            except DataNotFoundError as missing:  # looked for on every client (a service's sdk-extras)
                known = _Missing(missing.kwargs)
            with _lock:
                known = _shared.setdefault(key, known)
        if isinstance(known, _Missing):
            raise DataNotFoundError(**known.kwargs)  # a new one each time: a raised error keeps its traceback
        return known

    shared.__name__ = read.__name__
    shared.__doc__ = read.__doc__
    return shared
