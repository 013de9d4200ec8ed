"""Heavy libraries (pyarrow, numpy) bound at module level but imported on first use.

``thresher validate`` imports every stage module a config names, for its parameters and
declared columns, and never touches a table; importing pyarrow and numpy there cost more
than everything else it does (issue #20). A module that writes
``pa = lazy_module("pyarrow")`` keeps using ``pa.table(...)`` in its functions, and the
import happens at the first attribute read. Constants built from these libraries must not
be made at import time (put them behind a ``functools.cache`` function).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module ``name``; the first attribute read imports it (thread-safe: the
    import system locks per module) and every read after that goes to it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __reduce__(self):  # pickled by name, like the module it stands for
        return (LazyModule, (self._name,))

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (imported)' if self._module else ''}>"


def lazy_module(name: str) -> Any:
    """``name``, imported at the first attribute read (typed Any: it behaves as the module)."""
    return LazyModule(name)
