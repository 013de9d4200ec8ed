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
import sys
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module ``name``; the first attribute read imports it (thread-safe: the
    import system locks per module) and puts the module itself in place of this stand-in
    in the globals of the module that made it, so that module's later reads cost what a
    plain import costs (through a stand-in, about 0.5 us each: measured)."""

    __slots__ = ("_name", "_module", "_owner")

    def __init__(self, name: str, owner: dict[str, Any] | None = None):
        self._name = name
        self._module: ModuleType | None = None
        self._owner = owner

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
            owner, self._owner = self._owner, None
            for key, value in list((owner or {}).items()):
                if value is self:
                    owner[key] = module
        return getattr(module, attr)

    def __reduce__(self):  # pickled by name, like the module it stands for
        return (LazyModule, (self._name,))

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (imported)' if self._module else ''}>"


def lazy_module(name: str) -> Any:
    """``name``, imported at the first attribute read (typed Any: it behaves as the module).
    Call it at module level: the caller's globals get the module itself at that read."""
    return LazyModule(name, sys._getframe(1).f_globals)
