"""Where the whole-process time of a small MinHash run goes: start-up, fixed costs, kernel.

    .venv/bin/python benchmarks/bench_startup.py [--docs 2000 20000] [--repeats 5]
    .venv/bin/python benchmarks/bench_startup.py --docs --repeats 9    # start-up only
    .venv/bin/python benchmarks/bench_startup.py --docs 2000 --before OLD   # against OLD

Issue #20 asks for MinHash end to end, start-up included, and for ``thresher validate``
under 0.3 s. This script prints, each figure the median of ``--repeats`` runs with its
spread (min-max), wall and CPU (user + system of the child process):

1. Floors and start-up, each a new process: the bare interpreter; the third-party
   modules a MinHash run imports (numpy, pyarrow with parquet, pydantic, yaml); the
   ``thresher`` command's own import; ``thresher validate`` of configs/demo.yaml and of
   the MinHash config (imports, YAML, validation, input listing and planning); and,
   with benchmarks/.venv-datatrove, the import of datatrove's MinHash steps and
   executor, the peer's own floor.
2. Per document count, ``thresher run`` of the MinHash chain of bench_minhash.py
   (JSONL in, ``minhash_dedup``, one worker, so every task runs inline in the one
   process), cut by the tasks' own records (``started``/``finished``/``wall_s``):
   start-up to the first task (interpreter, imports, config, planning, run directory),
   each phase (tasks, their summed wall, and the gap before it: dispatch and the
   phase's bookkeeping), and from the last task to the process's exit (merging stats,
   the manifest, the funnel). Every run must write the same shards.
3. The kernel on the same documents in this process, compiled (minhash_kernel.c: from
   Arrow columns, as the stage calls it, and from Python strings) and its numpy reference
   alternating, which must agree: signatures (normal form,
   normalization tables, words, shingles, permutation minima) and the permutation
   minima alone, with the time per shingle and permutation.

With ``--before OLD`` (a copy of the ``pipelines`` and ``stages`` packages of another
version, e.g. ``git archive REV pipelines stages | tar -x -C OLD``) the script instead
alternates that version and this tree on ``thresher validate`` of both configs and the
runs, each as ``python -P -m pipelines.cli`` with ``PYTHONPATH`` naming the version, and
prints both medians; the runs' shards must be the same bytes and validate must print the same
lines. Byte-compile OLD first (`python -m compileall -q OLD`) when PYTHONDONTWRITEBYTECODE
is set, as `make install` does for this tree, or OLD pays for compiling its modules.

The load average is printed at the start and at the end: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = str(REPO / ".venv" / "bin" / "python")
THRESHER = str(REPO / ".venv" / "bin" / "thresher")
PEER_PYTHON = HERE / ".venv-datatrove" / "bin" / "python"
N_GRAMS, BANDS, ROWS, SEED = 5, 14, 8, 1


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(cmd: list[str], cwd: Path = REPO, outputs: list[str] | None = None
          ) -> tuple[float, float, float]:
    """(wall s, CPU s of the child, epoch at launch) of one process run to its end; its
    stdout is appended to ``outputs`` when given."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, epoch = time.perf_counter(), time.time()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if outputs is not None:
        outputs.append(proc.stdout)
    return wall, cpu, epoch


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def floors(repeats: int, minhash_cfg: Path) -> None:
    cases = {
        "python -c pass": [PY, "-c", "pass"],
        "import numpy": [PY, "-c", "import numpy"],
        "import numpy, pyarrow, pyarrow.parquet, pydantic, yaml":
            [PY, "-c", "import numpy, pyarrow, pyarrow.parquet, pydantic, yaml"],
        "import pipelines.cli": [PY, "-c", "import pipelines.cli"],
        "thresher validate configs/demo.yaml": [THRESHER, "validate", "configs/demo.yaml"],
        "thresher validate <minhash config>": [THRESHER, "validate", str(minhash_cfg)],
    }
    if PEER_PYTHON.exists():
        cases["datatrove: import its MinHash steps and executor"] = [
            str(PEER_PYTHON), "-c", "import datatrove.pipeline.dedup.minhash, "
            "datatrove.executor, datatrove.pipeline.readers, datatrove.pipeline.writers"]
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cases}
    for _ in range(repeats):  # alternating: one of each per round
        for name, cmd in cases.items():
            runs[name].append(timed(cmd))
    print(f"\n## start-up, each a new process: median (min-max) of {repeats}, seconds")
    print("| process | wall | CPU |\n|---|---:|---:|")
    for name, rs in runs.items():
        print(f"| {name} | {summary([r[0] for r in rs])} | {summary([r[1] for r in rs])} |")


def minhash_config(docs: Path, out: Path) -> Path:
    cfg = out.with_suffix(".yaml")
    cfg.write_text(json.dumps({  # JSON is YAML
        "name": "bench-startup",
        "input": {"format": "jsonl", "paths": [str(docs)], "id_key": "id"},
        "output": {"path": str(out)},
        "executor": {"kind": "local", "workers": 1},
        "stages": [{"stage": "minhash_dedup", "unit": "word", "n": N_GRAMS, "bands": BANDS,
                    "rows": ROWS, "seed": SEED, "partitions": 16}]}, indent=1))
    return cfg


def breakdown(run: Path, launched: float, wall: float) -> dict[str, float]:
    """Seconds of one run: start-up to the first task, per phase (gap before it, summed
    task wall, span), and after the last task."""
    plan = json.loads((run / "plan.json").read_text())
    out: dict[str, float] = {}
    end = launched
    for phase in plan["phases"]:
        recs = [json.loads(p.read_text()) for p in (run / "stats" / phase["name"]).glob("*.json")]
        first, last = min(r["started"] for r in recs), max(r["finished"] for r in recs)
        key = "start-up to the first task" if end == launched else f"gap before {phase['name']}"
        out[key] = first - end
        out[f"{phase['name']}: {len(recs)} task(s), summed wall"] = sum(r["wall_s"] for r in recs)
        out[f"{phase['name']}: span less summed task wall"] = \
            (last - first) - sum(r["wall_s"] for r in recs)
        end = last
    out["last task to exit (stats, manifest, funnel)"] = launched + wall - end
    return out


def runs(n_docs: int, repeats: int, root: Path) -> None:
    sys.path.insert(0, str(HERE))
    from neardup_set import generate

    docs = root / f"docs-{n_docs}.jsonl"
    rows = generate(n_docs, 0)
    with open(docs, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n")
    parts: dict[str, list[float]] = {}
    walls, cpus, shards = [], [], set()
    for rep in range(repeats):  # a new run directory each time, as a user's run starts
        out = root / f"run-{n_docs}-{rep}"
        cfg = minhash_config(docs, out)
        wall, cpu, epoch = timed([THRESHER, "run", str(cfg), "--quiet"])
        walls.append(wall)
        cpus.append(cpu)
        for k, v in breakdown(out, epoch, wall).items():
            parts.setdefault(k, []).append(v)
        shards.add(json.dumps(json.loads((out / "stats.json").read_text())["output"]["shards"]))
    assert len(shards) == 1, "runs wrote different shards"
    print(f"\n## thresher run, MinHash chain, {n_docs:,} documents, one worker: median "
          f"(min-max) of {repeats}, seconds")
    print("| part | wall |\n|---|---:|")
    print(f"| whole process | {summary(walls)} |\n| whole process, CPU | {summary(cpus)} |")
    for k, v in parts.items():
        print(f"| {k} | {summary(v)} |")
    kernel(rows, repeats)


def kernel(rows: list[dict], repeats: int) -> None:
    """The signature kernel alone, compiled (minhash_native) and numpy (the reference),
    alternating, on the same batches; they must give the same signatures."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    import pyarrow as pa

    from stages.dedup import minhash_core as core
    from stages.dedup import minhash_native as native

    spec = core.MinHashSpec(unit="word", n=N_GRAMS, bands=BANDS, rows=ROWS, seed=SEED)
    texts = [r["text"] for r in rows]
    batches = [texts[i:i + 1000] for i in range(0, len(texts), 1000)]  # as the stage does
    columns = [pa.array(b, pa.string()) for b in batches]  # what the stage hands the kernel
    first = time.perf_counter()
    core.signatures(batches[0][:1], spec)  # the first call of a process
    first = time.perf_counter() - first
    compiled = native.available()
    times: dict[str, list[float]] = {"compiled utf8": [], "compiled": [], "numpy": [],
                                     "compiled minima": [], "numpy minima": []}
    shingles = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        sigs = [core.signatures_numpy(b, spec) for b in batches]
        times["numpy"].append(time.perf_counter() - t0)
        if compiled:
            t0 = time.perf_counter()
            fast = [core.signatures(b, spec) for b in batches]
            times["compiled"].append(time.perf_counter() - t0)
            assert all(np.array_equal(f, s) for f, s in zip(fast, sigs))
            t0 = time.perf_counter()
            fast = [core.column_signatures(c, spec) for c in columns]
            times["compiled utf8"].append(time.perf_counter() - t0)
            assert all(np.array_equal(f, s) for f, s in zip(fast, sigs))
        mh = {"numpy minima": 0.0, "compiled minima": 0.0}
        shingles = 0
        for b, sig in zip(batches, sigs):
            sh, counts = core._shingles(*core._token_hashes(b, spec), spec.n)
            shingles += len(sh)
            t0 = time.perf_counter()
            assert np.array_equal(core._minhash_numpy(sh, counts, spec), sig)
            mh["numpy minima"] += time.perf_counter() - t0
            if compiled:
                t0 = time.perf_counter()
                assert np.array_equal(core._minhash(sh, counts, spec), sig)
                mh["compiled minima"] += time.perf_counter() - t0
        for k, v in mh.items():
            if compiled or k.startswith("numpy"):
                times[k].append(v)
    print(f"| kernel: first call in a process (imports done) | {first:.3f} |")
    for name, label in (("compiled utf8", "compiled kernel from the Arrow column's UTF-8 "
                                          "(what the stage runs)"),
                        ("compiled", "compiled kernel from Python strings"),
                        ("numpy", "numpy path (the reference)")):
        if times[name]:
            print(f"| signatures of every document, {label}: normal form, tables, words, "
                  f"shingles, minima | {summary(times[name])} |")
    for name in ("compiled minima", "numpy minima"):
        if times[name]:
            print(f"| of which the permutation minima alone, {name.split()[0]} | "
                  f"{summary(times[name])} |")
    for name in ("compiled minima", "numpy minima"):
        if times[name]:
            per = statistics.median(times[name]) / (shingles * spec.num_perm)
            print(f"\n{name}: {shingles:,} shingles x {spec.num_perm} permutations, "
                  f"{per * 1e9:.3f} ns each")
    if not compiled:
        print("\nthe compiled kernel is not built (`make install`): numpy rows only")


def compare(before: Path, counts: list[int], repeats: int, root: Path) -> None:
    """This tree against the version in ``before``, alternating, each command a process."""
    sys.path.insert(0, str(HERE))
    from neardup_set import generate

    versions = {"before": before.resolve(), "now": REPO}
    cases = {"validate configs/demo.yaml": ["validate", "configs/demo.yaml"],
             "validate <minhash config>": ["validate", str(minhash_config(
                 root / "docs.jsonl", root / "validate"))]}
    for n in counts:
        docs = root / f"docs-{n}.jsonl"
        with open(docs, "w", encoding="utf-8") as f:
            for r in generate(n, 0):
                f.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False)
                        + "\n")
        cases[f"run, MinHash chain, {n:,} documents"] = ["run", "{cfg}", "--quiet"]
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    shards: dict[str, set[str]] = {}
    printed: dict[str, set[str]] = {}  # validate's output, which both versions must share
    first_task: dict[tuple[str, str], list[float]] = {}  # a run's start-up to its first task
    for rep in range(repeats):
        for i, (case, args) in enumerate(cases.items()):
            for version, src in (list(versions.items())[::1 if rep % 2 else -1]):
                out = root / f"cmp-{version}-{rep}-{i}"  # one run directory per case
                cmd = list(args)
                if "{cfg}" in cmd:  # a new run directory each time
                    n = int(case.split(", ")[-1].split()[0].replace(",", ""))
                    cfg = minhash_config(root / f"docs-{n}.jsonl", out)
                    cmd = [str(cfg) if a == "{cfg}" else a for a in cmd]
                said: list[str] = []
                wall, cpu, epoch = timed(["env", f"PYTHONPATH={src}", PY, "-P", "-m",
                                          "pipelines.cli", *cmd], outputs=said)
                if cmd[0] == "validate":
                    printed.setdefault(case, set()).update(said)
                times.setdefault((case, version), []).append((wall, cpu))
                if cmd[0] == "run":
                    shards.setdefault(case, set()).add(json.dumps(json.loads(
                        (out / "stats.json").read_text())["output"]["shards"]))
                    first_task.setdefault((case, version), []).append(
                        breakdown(out, epoch, wall)["start-up to the first task"])
    assert all(len(v) == 1 for v in shards.values()), "the versions wrote different shards"
    assert all(len(v) == 1 for v in printed.values()), "the versions' validate printed " \
        f"different lines: {printed}"
    print(f"\n## {before} against this tree, alternating: median (min-max) of {repeats}, s")
    print("| command | before wall | now wall | before CPU | now CPU |\n|---|---:|---:|---:|---:|")
    for case in cases:
        b, now = times[(case, "before")], times[(case, "now")]
        print(f"| {case} | {summary([x[0] for x in b])} | {summary([x[0] for x in now])} | "
              f"{summary([x[1] for x in b])} | {summary([x[1] for x in now])} |")
        if (case, "now") in first_task:
            print(f"| {case}: start-up to the first task | "
                  f"{summary(first_task[(case, 'before')])} | "
                  f"{summary(first_task[(case, 'now')])} | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, nargs="*", default=[2000, 20000],
                    help="document counts of the runs (none: start-up figures only)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--before", type=Path, metavar="OLD",
                    help="alternate with the pipelines/ and stages/ packages copied in OLD")
    a = ap.parse_args()
    print(f"load average at the start: {load()} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        (root / "docs.jsonl").write_text('{"id": "a", "text": "one"}\n')
        if a.before:
            compare(a.before, a.docs, a.repeats, root)
            print(f"\nload average at the end: {load()}")
            return
        floors(a.repeats, minhash_config(root / "docs.jsonl", root / "validate"))
        for n in a.docs:
            runs(n, a.repeats, root)
    print(f"\nload average at the end: {load()}")


if __name__ == "__main__":
    main()
