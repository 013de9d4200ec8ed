"""Input discovery: a config's input globs expanded into the sorted file list a run plans.

Each file gets its ``source``, the path relative to the input root (``input.root``, or
the fixed directory part of the first glob), which ids and the ``dataset`` mapping use.
Directories a glob matched are returned separately (a run counts them as errors).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.config import InputBase


def glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for p in parts:
        if any(ch in p for ch in "*?["):
            break
        fixed.append(p)
    else:  # a plain file path
        fixed = fixed[:-1]
    return str(Path(*fixed)) if fixed else "."


def resolve_inputs(inp: InputBase, skipped: list[tuple[Path, str]] | None = None
                   ) -> list[tuple[Path, str]]:
    root = Path(inp.root or glob_root(inp.paths[0])).resolve()
    seen: dict[Path, str] = {}
    dirs: dict[Path, str] = {}
    for i, pattern in enumerate(inp.paths):
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        files = [Path(m).resolve() for m in matches if os.path.isfile(m)]
        dirs.update((d, _relative(d, root)) for d in
                    (Path(m).resolve() for m in matches if not os.path.isfile(m)))
        if not files:
            what = "only directories" if matches else "no files"
            raise ConfigError(f"glob {pattern!r} matched {what} "
                              f"(relative to {os.getcwd()}); expected at least one input file",
                              path=f"input.paths[{i}]")
        for f in files:
            seen.setdefault(f, _relative(f, root))
    if skipped is not None:
        skipped.extend(sorted(dirs.items(), key=lambda kv: (kv[1], str(kv[0]))))
    return sorted(seen.items(), key=lambda kv: (kv[1], str(kv[0])))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
