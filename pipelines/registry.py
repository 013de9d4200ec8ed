"""Stage registry: short YAML names -> stage classes, imported lazily.

Built-in stages are listed in ``stages.REGISTRY`` (one line per stage); other
packages add theirs through the ``thresher.stages`` entry point group. The
engine reaches concrete stages only through here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache

from pipelines.errors import UserError
from pipelines.stage import Stage

ENTRY_POINT_GROUP = "thresher.stages"


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    """Built-in stages and those of installed packages (built-in names win)."""
    from importlib.metadata import entry_points

    table = dict(_builtin())
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, ep.value)
    return table


def _builtin() -> dict[str, str]:
    from stages import REGISTRY  # the built-in library

    return REGISTRY


def _target(name: str) -> str | None:
    """What ``name`` is registered as. Built-in names win over entry points, so until
    ``register`` has built the table, they need no scan of every installed package's
    entry points."""
    if _table.cache_info().currsize == 0 and name in _builtin():
        return _builtin()[name]
    return _table().get(name)


def names() -> list[str]:
    return sorted(_table())


def get(name: str) -> type[Stage]:
    """The stage class registered as ``name`` (or at import path ``module:Class``).

    A UserError lists the known names.
    """
    target = _target(name)
    if target is None and ":" in name:
        target = name  # an unregistered stage by import path, e.g. "mypkg.filters:MyFilter"
    if target is None:
        raise UserError(f"unknown stage {name!r}; expected one of: {', '.join(names())} "
                        "(or an import path module:Class)")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UserError(f"stage {name!r}: cannot import {target}: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise UserError(f"stage {name!r} -> {target} is not a Stage subclass")
    return cls


def command(name: str, part: str) -> Callable:
    """``part`` ("arguments" or "run") of a ``thresher`` subcommand the stage library
    provides (``stages.COMMANDS``), imported now: the CLI reaches library code only here."""
    from stages import COMMANDS

    return _library(COMMANDS[name][part])


def segmenter_table() -> list[tuple[str, str, str]]:
    """The language -> word segmenter table of ``tokenizer: auto`` (``stages.SEGMENTER_TABLE``)."""
    from stages import SEGMENTER_TABLE

    return _library(SEGMENTER_TABLE)()


def _library(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def register(name: str, target: str) -> None:
    """Register a stage at run time (tests, notebooks): ``register("x", "pkg.mod:Cls")``."""
    _table()[name] = target
