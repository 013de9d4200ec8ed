"""The engine's shape, checked: no import cycles, executors see only the task module,
the engine reaches stages only through the registry, every package says what it holds.

Imports are read from the source (``ast``), all of them: module level and inside
functions (a lazy import is still a dependency), except ``if TYPE_CHECKING:`` blocks.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "stages")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(mod: str) -> set[str]:
    """Modules of ours that ``mod`` imports (``from pkg import name`` counts as
    ``pkg.name`` when that is a module, else as ``pkg``)."""
    path = MODULES[mod]
    here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = here[:len(here) - node.level + 1]
                base = ".".join(prefix + ([base] if base else []))
            if base.split(".")[0] in PACKAGES:
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.add(sub if sub in MODULES else base)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_module" \
                and node.args and isinstance(node.args[0], ast.Constant):
            out.add(node.args[0].value)  # pipelines.lazy: imported on first use, still one
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    out.discard(mod)
    return {m for m in out if m in MODULES}


GRAPH = {m: _imports(m) for m in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := dfs(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := dfs(m)):
            return found
    return None


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for n in GRAPH[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_no_import_cycle_in_the_engine_or_the_library():
    engine = {m: {n for n in deps if n.startswith("pipelines")}
              for m, deps in GRAPH.items() if m.startswith("pipelines")}
    assert _cycle(engine) is None, " -> ".join(_cycle(engine))
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH))


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_executors_import_the_task_module_not_the_run_module():
    for mod in MODULES:
        if mod.startswith("pipelines.executors"):
            assert "pipelines.run" not in _reaches(mod), mod
    assert "pipelines.run" not in _reaches("pipelines.task")
    assert "pipelines.task" in _reaches("pipelines.executors.local")


def test_the_engine_reaches_stages_only_through_the_registry():
    for mod, deps in GRAPH.items():
        if mod.startswith("pipelines"):
            concrete = {d for d in deps if d.startswith("stages.")}
            assert not concrete, f"{mod} imports {sorted(concrete)}"
            if "stages" in deps:
                assert mod == "pipelines.registry", mod


def test_every_package_says_what_it_holds():
    for mod, path in MODULES.items():
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text()))
            assert doc and len(doc) > 40, f"{mod}/__init__.py has no docstring"


def test_importing_the_engine_imports_no_executor_and_no_stage():
    code = ("import sys, pipelines, pipelines.config, pipelines.stage; "
            "print(sorted(m for m in sys.modules if m.startswith(('pipelines.executors', "
            "'pipelines.run', 'pipelines.task', 'stages.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"


def test_the_cli_docstring_names_every_command():
    from pipelines import cli

    parser = cli.build_parser() if hasattr(cli, "build_parser") else None
    names = _subcommands(parser) if parser else set()
    assert names, "pipelines.cli has no build_parser()"
    missing = {n for n in names if n not in (cli.__doc__ or "")}
    assert not missing, f"pipelines/cli.py docstring does not name: {sorted(missing)}"


def _subcommands(parser) -> set[str]:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_every_executor_kind_has_a_registered_executor():
    from typing import get_args

    from pipelines.config import ExecutorConfig
    from pipelines.executors import EXECUTORS
    from pipelines.executors.base import Executor

    union = get_args(ExecutorConfig)[0]
    kinds = {get_args(m.model_fields["kind"].annotation)[0] for m in get_args(union)}
    assert kinds == set(EXECUTORS)
    for kind, target in EXECUTORS.items():
        if kind == "ray":
            continue  # optional dependency; tests/test_ray.py runs it
        module, _, cls = target.partition(":")
        assert issubclass(getattr(__import__(module, fromlist=[cls]), cls), Executor)


SPEED_CLAIM = re.compile(
    r"\d+(\.\d+)?\s?(x|×)\s+(faster|slower|the speed)|\d[\d,.]*\s?(docs|documents)/s\b"
    r"|\d+(\.\d+)?\s?(µs|ms|s)\s+per\s|\d+(\.\d+)?\s?%\s+of\s+the\s+(CPU|wall|time)", re.I)


def test_measured_numbers_live_in_the_benchmarks_doc_not_in_the_code():
    """Figures drift; the code points at docs/benchmarks.md instead of repeating them."""
    found = []
    for path in MODULES.values():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if SPEED_CLAIM.search(line) and "f\"" not in line and "print(" not in line:
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
    assert SPEED_CLAIM.search("about 10x faster") and SPEED_CLAIM.search("20 documents/s")


# Local-file calls outside the storage layer (pipelines/io/): each one names a file that
# can never be a user's path, so it cannot break a run whose paths are URLs.
LOCAL_FILE_CALLS = {"open", "glob.glob", "glob.iglob", "os.listdir", "os.scandir", "os.walk",
                    "os.replace", "os.rename", "os.remove", "os.unlink", "shutil.rmtree",
                    "shutil.copy", "shutil.copyfile", "shutil.move", "pq.read_table",
                    "pq.ParquetFile", "pq.write_table", "pq.ParquetWriter",
                    "pq.read_metadata", "pq.read_schema"}
ALLOWED_LOCAL_FILE_CALLS = {
    ("pipelines/task.py", "open"): "/proc/self files: the task's peak RSS",
    ("pipelines/executors/slurm_queue.py", "open"): "Slurm's JobCompLoc: the controller's",
    ("pipelines/train.py", "open"): "fastText's input files in a local TemporaryDirectory",
    ("stages/heuristics/derive.py", "glob.glob"): "a maintainer tool over local references",
    ("stages/heuristics/derive.py", "pq.read_table"): "a maintainer tool over local references",
    ("stages/heuristics/per_language.py", "open"): "a maintainer tool: FineWeb-2's CSV",
    ("pipelines/partitioned.py", "pq.ParquetWriter"): "the temporary atomic_path commits",
}


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f"{f.value.id}.{f.attr}"
    return None


def _on_a_buffer(node: ast.Call) -> bool:
    """pq.read_table(io.BytesIO(...)), pq.write_table(table, buf): memory, not a file."""
    for arg in node.args[:2]:
        if isinstance(arg, ast.Call) and (_call_name(arg) or "").endswith("BytesIO"):
            return True
        if isinstance(arg, ast.Name) and arg.id in ("buf", "buffer"):
            return True
    return False


def test_no_local_file_calls_on_user_paths_outside_the_storage_layer():
    """Every user path may be a URL: outside pipelines/io/ the engine and the stages
    open, list, write and commit files only through pipelines.io (files, storage,
    remote_path), whose calls work on local paths and on object storage alike."""
    found = []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("pipelines/io/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in LOCAL_FILE_CALLS and not _on_a_buffer(node) and \
                    (rel, name) not in ALLOWED_LOCAL_FILE_CALLS:
                found.append(f"{rel}:{node.lineno} {name}(...)")
    assert not found, "use pipelines.io (files / storage / remote_path) instead: " + \
        ", ".join(found)


def test_the_local_file_check_finds_a_call():
    tree = ast.parse("import pyarrow.parquet as pq\npq.read_table(path)\nopen(p)\n"
                     "pq.read_table(io.BytesIO(b))\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    flagged = [_call_name(c) for c in calls
               if _call_name(c) in LOCAL_FILE_CALLS and not _on_a_buffer(c)]
    assert flagged == ["pq.read_table", "open"]
