"""``thresher plan``: what a run will cost, estimated from running its chain on a sample.

The config is planned as ``thresher run`` would plan it (input files, pieces of split
files, phases and task counts), then the chain runs twice on a deterministic sample of
its tasks, in temporary run directories: once on ``--sample N`` tasks, once on about
half of them (a subset). The tasks are picked by planned size, evenly spread from the
smallest to the largest, so the sample covers the range of sizes (with split inputs, the
piece of the most content is swapped in and run last: ``with_largest``). From the two runs'
task records (``cpu_s``, ``wall_s``, ``max_rss_mb``, shard bytes) and their run
directories (intermediate shards and global stages' side files):

- a **map phase** (one task per input or piece) is scaled per stratum: every planned
  task takes the CPU seconds per input byte of the sampled task nearest to it in size
  (by the log of the bytes; equal sizes by rank), and so do wall seconds and output
  bytes. Inputs of one corpus can differ several-fold in cost per byte (HTML pages
  against mostly non-HTML records), so one rate pooled over a few sampled tasks lets
  the costliest stand for all. A sampled task that was the first of its process (or a
  later one that imported the stages' modules: ``_warms``) also paid the process's
  warm-up (models, caches, imports), measured on inputs that ran both first and later
  in the two runs and taken off its rate; peak RSS per task is the largest
  sampled (a map task holds one batch at a time, whatever its input's size), plus a
  reused worker's growth (``_growth``: a jump at its second task, then a creep per task
  extrapolated no further than the sample saw);
- a **step phase** of a global stage (its task count fixed, e.g. ``partitions``) is
  fitted per phase through the two runs: total CPU = A + B x corpus bytes, then spread
  over its tasks; its peak RSS per task is the largest sampled plus what a task's own
  increment (peak minus RSS at its start, the median task's) grows by along the same
  line, over the runs whose step had documents to work on, once the rise across the
  sample runs exceeds the process-to-process noise (``_step_growth``: a cluster step
  holds its edges);
- disk: intermediate shards and side files (``phases/``, ``work/``) and output shards
  (``data/``), scaled by bytes the same way (the sample runs write intermediate shards in
  the codec the real run's directory resolves ``intermediate_compression`` to);
- object-store requests, for remote inputs: one listing or size call per file at
  planning, and one ranged GET per read-ahead block of each task's input
  (``storage.DEFAULT_BLOCK_SIZE``), plus one per piece for its resync.

**Split inputs: scaled by content, not by input bytes.** When the plan cuts files into
pieces (``input.max_task_bytes``), pieces of one file can differ tens of times in cost per
input byte: on the bundled WARCs split at 128 KiB, 0.02 to 1.27 CPU s a piece, because a
few records hold most of the HTML (one page of 1.2 MB, a piece of images next to it). A
sample of 4 whole pieces that holds the two costliest was 2.5-2.7x off, and sampling many
short byte ranges instead does not cure it either: a record is in a range or not, and
one record carrying a seventh of the corpus's HTML swings the estimate by tens of percent
(simulated on that corpus: 30-45 % RMS error at the same sampled bytes). What does track
the cost is the content the format reader hands the chain (the ``read`` stage's
``bytes_out``: decoded HTML of kept records, a JSONL line's text), and reading alone is
cheap (3-4 % of that chain's CPU). So a **content pass** runs the format reader only (no
stage) over the planned tasks, up to ``READ_PASS_FACTOR`` times the sampled tasks' bytes
(all of them when the corpus fits, else windows: short byte ranges evenly spaced over
every piece, records found with the splitter's own resync, each record that overlaps a
window weighed by its share of bytes inside it, scaled by bytes per task), and
each map phase is scaled per task by CPU (wall, output) per content byte of the sampled
input nearest in content size, with the same warm-up handling as below. Whole-file plans
(no pieces) keep the per-input-byte scaling described next, which meets the goal there.

Instead of sample runs, ``--from RUN`` (repeatable) takes finished runs of the same
chain, e.g. a pilot on a few inputs; with one run, step phases scale in proportion to
bytes.

Wall time at the given parallelism (``--workers W``, or ``--nodes K --cores-per-node
C``: K x C slots) schedules each phase's estimated tasks largest first on the slots
(as the executors start them) and adds the phases up: phases run one after another.
How close the estimates come is measured in docs/benchmarks.md ("Planning a run").
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.config import PipelineConfig, config_from_dict
from pipelines.errors import UserError
from pipelines.plan import InputFile, Plan, make_plan, plan_phases


@dataclass
class PhaseEstimate:
    name: str
    kind: str  # map | step
    tasks: int
    input_bytes: int  # map: the planned bytes its tasks read (an apply phase: the same)
    cpu_hours: float
    wall_s: float  # at the given parallelism
    peak_rss_mb: float  # of one task
    intermediate_bytes: int  # phases/<phase>/ shards, and side files of a global stage
    output_bytes: int  # data/ shards (final phase)
    # map: one standard error of cpu_hours, relative, from the spread of the sampled
    # inputs' CPU per byte (None: fewer than two sampled inputs, or a step phase)
    cpu_rel_error: float | None = None


@dataclass
class Estimate:
    config: str
    tasks: int  # of the first phase: inputs, or pieces of split inputs
    input_files: int
    input_bytes: int
    slots: int
    sample: list[int]  # the sampled tasks (indexes into the plan's inputs)
    sample_bytes: int
    sample_seconds: float  # what running the sample took
    phases: list[PhaseEstimate] = field(default_factory=list)
    requests: int | None = None  # object-store requests of reading remote inputs
    # split inputs: the content pass (the format reader only), bytes it read and in how
    # many windows (0: every planned task whole); None: scaled by input bytes
    content_bytes: int | None = None  # estimated content of the whole corpus
    content_read: int | None = None
    content_windows: int | None = None

    @property
    def cpu_hours(self) -> float:
        return sum(p.cpu_hours for p in self.phases)

    @property
    def wall_s(self) -> float:
        return sum(p.wall_s for p in self.phases)

    @property
    def peak_rss_mb(self) -> float:
        return max((p.peak_rss_mb for p in self.phases), default=0.0)

    @property
    def cpu_rel_error(self) -> float | None:
        """One standard error of cpu_hours, relative: the map phases' errors (their
        inputs' rates vary together, so added, not in quadrature); step phases count as
        exact."""
        known = [p for p in self.phases if p.cpu_rel_error is not None]
        if not known or not self.cpu_hours:
            return None
        return sum(p.cpu_rel_error * p.cpu_hours for p in known) / self.cpu_hours

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(cpu_hours=self.cpu_hours, wall_s=self.wall_s, peak_rss_mb=self.peak_rss_mb,
                 cpu_rel_error=self.cpu_rel_error,
                 intermediate_bytes=sum(p.intermediate_bytes for p in self.phases),
                 output_bytes=sum(p.output_bytes for p in self.phases))
        return d


def pick_sample(sizes: list[int], n: int) -> list[int]:
    """``n`` task indexes spread evenly over the tasks sorted by size (ties by index):
    deterministic, and covering small and large tasks alike."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    if n >= len(order):
        return sorted(order)
    return sorted({order[min(len(order) - 1, int((k + 0.5) * len(order) / n))]
                   for k in range(n)})


def with_largest(idx: list[int], content: list[float]) -> list[int]:
    """The sample ``idx`` with the task of the most content in it (the content pass's),
    in place of the sampled task nearest to it in content, and last. A worker's peak RSS
    follows the largest batch it has held (the heap keeps it), which no scaling of
    smaller batches tells: on the split WARCs a worker rose 149 -> 204 MB at the 846 kB
    piece and to 237-241 MB at the 1.28 MB one, and samples of 8 pieces without those
    two estimated 174-200 MB. Last, because a real run's worker meets it after other
    tasks, not fresh (192 MB fresh)."""
    top = max(range(len(content)), key=lambda i: (content[i], -i))
    if top not in idx:
        log = math.log1p
        idx = idx[:]
        idx.remove(min(idx, key=lambda i: (abs(log(content[top]) - log(content[i])), i)))
    return [i for i in idx if i != top] + [top]


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """y = a + b x by least squares, with a >= 0 and b >= 0 (refit through 0, or flat)."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:  # one size only: all of it per byte (no fixed cost can be told apart)
        return 0.0, (my / mx if mx else 0.0)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
    a = my - b * mx
    if b < 0:
        return my, 0.0
    if a < 0:
        sx = sum(x * x for x in xs)
        return 0.0, sum(x * y for x, y in zip(xs, ys)) / sx
    return a, b


def makespan(durations: list[float], slots: int) -> float:
    """Tasks started largest first on ``slots`` slots, each on the first free one."""
    if not durations:
        return 0.0
    import heapq

    free = [0.0] * max(1, min(slots, len(durations)))
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(free, free[0] + d)
    return max(free)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) \
        if path.exists() else 0


@dataclass
class _Sampled:
    """One sample run: its tasks' records per phase, and its directories' bytes."""

    bytes: int
    tasks: dict[str, list[dict]]
    inter: dict[str, int]  # phase -> phases/<phase>/ bytes; "<stage>" -> work/<stage> bytes
    data: int
    lengths: list[int]  # planned input bytes of each of its map phases' tasks
    keys: list[tuple[str, int]]  # (path, start) of each: one input across sample runs


def _run_sample(cfg: PipelineConfig, plan: Plan, idx: list[int], where: Path,
                workers: int) -> _Sampled:
    """Run the chain on the tasks ``idx`` of ``plan`` in a fresh process (so a phase of
    one task, which the local executor runs in its own process, starts from the same
    state in every sample run, as in a real run)."""
    import subprocess
    import sys

    from pipelines.io.files import write_json_atomic
    from pipelines.io.writers import intermediate_output
    from pipelines.rundir import RunDir

    inputs = [plan.inputs[i] for i in idx]
    data = cfg.to_dict(resolved=True)
    # the intermediate codec the real run's directory resolves to (auto: none on a local
    # disk, zstd in object storage or on a network filesystem), not the temporary one's
    data["output"] = {**data["output"], "path": str(where), "keep_intermediate": True,
                      "intermediate_compression": intermediate_output(cfg.output).compression}
    data["executor"] = {"kind": "local", "workers": workers}
    scfg = config_from_dict(data)
    splan = Plan(plan_phases([s.build() for s in scfg.stages], len(inputs)), inputs, [])
    spec = where.parent / f"{where.name}.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(spec, {"config": data, "plan": splan.to_dict()})
    proc = subprocess.run([sys.executable, "-c", "import sys; from pipelines.estimate import "
                           "run_spec; run_spec(sys.argv[1])", str(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"the sample run failed: {tail} (sample run directory {where})")
    run = RunDir.at(where)
    tasks = {ph.name: [run.load_task_stats(ph.name, t) for t in range(ph.n_tasks)]
             for ph in splan.phases}
    inter = {ph.name: _dir_bytes(run.phase_dir(ph.name)) for ph in splan.phases}
    for s in scfg.stages:
        inter[s.name] = _dir_bytes(run.work_dir(s.name))
    return _Sampled(sum(f.length for f in inputs), tasks, inter,
                    _dir_bytes(run.root / "data"), [f.length for f in inputs],
                    [(f.path, f.start) for f in inputs])


def finished_run(path: str | Path, plan: Plan) -> _Sampled:
    """An earlier run of the same chain (``thresher plan --from RUN``), as a sample: its
    task records and what is left of its directories (intermediate shards only if it
    kept them)."""
    from pipelines.rundir import RunDir

    run = RunDir.at(path)
    done = run.load_plan()
    names = [p.name for p in done.phases]
    if names != [p.name for p in plan.phases]:
        raise UserError(f"--from {path}: its phases ({', '.join(names)}) are not this "
                        f"config's ({', '.join(p.name for p in plan.phases)}): another chain")
    try:
        tasks = {ph.name: [run.load_task_stats(ph.name, t) for t in range(ph.n_tasks)]
                 for ph in done.phases}
    except (OSError, ValueError):
        raise UserError(f"--from {path}: the run is not finished (a task has no stats "
                        "file)") from None
    inter = {ph.name: _dir_bytes(run.phase_dir(ph.name)) for ph in done.phases}
    for ph in done.phases:
        if ph.kind == "step":
            inter.setdefault(ph.stages[0], _dir_bytes(run.work_dir(ph.stages[0])))
    lengths = [f.length for f in done.inputs]
    return _Sampled(sum(lengths), tasks, inter, _dir_bytes(run.root / "data"), lengths,
                    [(f.path, f.start) for f in done.inputs])


#: the content pass reads at most this many times the sampled tasks' bytes: the reader
#: alone costs a few % of a chain's CPU per byte (4 % on the split-WARC chain), so this
#: adds about a fifth to the sample's CPU at most
READ_PASS_FACTOR = 8


def _content_of(cfg: PipelineConfig, inp: InputFile) -> int:
    """What the format reader hands the chain from ``inp`` (a task's input, or a window
    of one): the ``read`` stage's ``bytes_out``, counted the same way."""
    from pipelines.io.inputs import read_input
    from pipelines.stats import StageStats

    stats = StageStats()
    for table in read_input(cfg.input, inp, stats):
        stats.count_out(table)
    return stats.bytes_out


def _byte_windows_ok(cfg: PipelineConfig, inputs: list[InputFile]) -> bool:
    """Whether every input can be entered at any byte (as ``split_points`` cuts them:
    WARC/WET plain or one gzip member a record, plain JSONL)."""
    from pipelines.io import storage as st
    from pipelines.io.discovery import _COMPRESSED

    fmt = getattr(cfg.input, "format", None)
    for f in inputs:
        name = st.as_path(f.path).name.lower()
        if f.row_groups is not None:
            return False
        if fmt in ("warc", "wet"):
            if not name.endswith((".warc.gz", ".wet.gz", ".warc", ".wet")):
                return False
        elif fmt != "jsonl" or name.endswith(_COMPRESSED):
            return False
    return True


def content_pass(cfg: PipelineConfig, inputs: list[InputFile], budget: int
                 ) -> tuple[list[float], int, int]:
    """(content bytes of each planned task, bytes read, windows) by the format reader
    alone. Every task whole if they fit in ``budget`` bytes; else ``k`` windows of equal
    length evenly spaced over all tasks' bytes (deterministic; ``_windows_of``: records
    weighed by their share inside a window), and a task's content is its windows'
    content per byte times its size (a task no window fell in: the rate of all windows).
    A format that cannot be entered mid-way: whole tasks spread over the sizes
    (``pick_sample``)."""
    from bisect import bisect_right

    sizes = [f.length for f in inputs]
    total = sum(sizes)
    if total <= budget:
        return [float(_content_of(cfg, f)) for f in inputs], total, 0
    per = [[0.0, 0.0] for _ in inputs]  # content in the task's windows, their bytes
    if _byte_windows_ok(cfg, inputs):
        k = min(1024, max(len(inputs), budget // (64 << 10)))
        w = max(1, budget // k)
        cum = [0]
        for n in sizes:
            cum.append(cum[-1] + n)
        by_file: dict[str, list[tuple[int, int, int]]] = {}
        for j in range(k):
            g = max(0, int((j + 0.5) * total / k - w / 2))
            i = min(len(inputs) - 1, bisect_right(cum, g) - 1)
            f = inputs[i]
            a = f.start + g - cum[i]
            b = min(a + w, f.start + f.length)
            if b > a:
                by_file.setdefault(f.path, []).append((a, b, i))
        for wins in by_file.values():
            f = inputs[wins[0][2]]
            for i, got, covered in _windows_of(cfg, f, wins):
                per[i][0] += got
                per[i][1] += covered
        windows = k
    else:
        avg = total / max(1, len(inputs))
        for i in pick_sample(sizes, max(1, int(budget / avg))):
            per[i] = [float(_content_of(cfg, inputs[i])), sizes[i]]
        windows = 0
    read = int(sum(n for _, n in per))
    rate = sum(c for c, _ in per) / read if read else 0.0
    return [c / n * s if n else rate * s for (c, n), s in zip(per, sizes)], read, windows


#: how far before a window the content pass looks for the record running into it
WINDOW_LOOKBACK = 256 << 10


def _windows_of(cfg: PipelineConfig, f: InputFile, wins: list[tuple[int, int, int]]
                ) -> list[tuple[int, float, float]]:
    """(task, content, bytes) of each window [a, b) of ``f``'s file, weighing every
    record that overlaps it by the share of its bytes inside the window: a long record
    (a 1 MB page, 94 kB compressed) counts a little in each window it crosses instead of
    all or nothing, which made windows that take only the records starting in them
    +46 % off on the split WARCs at 1/8 of the bytes. Records are found as a piece finds
    them (``first_record_at``, a line); one starting more than ``WINDOW_LOOKBACK``
    before a window is not seen there. Each record's content is read once (a piece of
    one byte at its start: that record alone)."""
    from pipelines.io import storage as st
    from pipelines.io.compression import opened
    from pipelines.io.readers import _skip_line
    from pipelines.io.warc_stream import first_record_at

    jsonl = getattr(cfg.input, "format", None) == "jsonl"
    gz = st.as_path(f.path).name.lower().endswith(".gz")
    content: dict[int, int] = {}
    out = []
    with opened(st.as_path(f.path)) as fh:
        def next_start(pos: int) -> int | None:
            if pos == 0:
                return 0
            if pos >= f.size:
                return None
            if not jsonl:
                return first_record_at(fh, pos, None, gz)
            fh.seek(pos - 1)
            r = pos - 1 + _skip_line(fh)
            return r if r < f.size else None

        for a, b, i in wins:
            starts, r = [], next_start(max(0, a - WINDOW_LOOKBACK))
            while r is not None and r < b:
                starts.append(r)
                r = next_start(r + 1)
            ends = [*starts[1:], f.size if r is None else r]
            got = covered = 0.0
            for s, e in zip(starts, ends):
                over = min(b, e) - max(a, s)
                if over <= 0 or e <= s:
                    continue
                if s not in content:
                    content[s] = _content_of(cfg, InputFile(f.path, f.source, f.size,
                                                            f.dataset, s, s + 1))
                got += content[s] * over / (e - s)
                covered += over
            out.append((i, got, covered))
    return out


def run_spec(spec: str) -> None:
    """A sample run in this process: the config and plan ``_run_sample`` wrote. The
    process stands for ``thresher run``'s, allocator included (pipelines/allocator.py)."""
    from pipelines.allocator import tune_allocator
    from pipelines.io.files import read_json
    from pipelines.run import run_pipeline

    tune_allocator()
    d = read_json(Path(spec))
    run_pipeline(config_from_dict(d["config"]), overwrite=True, plan=Plan.from_dict(d["plan"]))


def estimate(cfg: PipelineConfig, sample: int = 4, slots: int = 1, workers: int = 2,
             config_name: str = "", keep: Path | None = None,
             runs_from: list[str] | None = None, content_scaling: bool = True
             ) -> Estimate:
    """Plan ``cfg``, run its chain on a sample of ``sample`` tasks (and on half of
    them), and scale to the whole plan at ``slots`` parallel tasks. ``runs_from``:
    earlier runs of the same chain (finished) used instead of sample runs; with one,
    step phases scale in proportion to bytes (no fixed cost can be told apart).
    ``content_scaling``: with split inputs, scale map phases by the content the reader
    finds (the content pass, see the module doc); False: by input bytes."""
    if sample < 2 and not runs_from:
        raise UserError("--sample must be at least 2 (two sample sizes are fitted)")
    t0 = time.perf_counter()
    plan = make_plan(cfg)
    sizes = [f.length for f in plan.inputs]
    total, n = sum(sizes), len(sizes)
    content = None
    if runs_from:
        runs = sorted((finished_run(p, plan) for p in runs_from), key=lambda r: r.bytes)
        idx = []
    else:
        idx = pick_sample(sizes, sample)
        if content_scaling and len(idx) < n and any(f.is_piece for f in plan.inputs):
            content, read, windows = content_pass(
                cfg, plan.inputs, READ_PASS_FACTOR * sum(sizes[i] for i in idx))
            idx = with_largest(idx, content)
        half = idx[::2] if len(idx) > 2 else idx[:1]
        with tempfile.TemporaryDirectory(prefix="thresher-plan-") as tmp:
            base = keep or Path(tmp)
            runs = [_run_sample(cfg, plan, half, base / "half", workers),
                    _run_sample(cfg, plan, idx, base / "sample", workers)]
    # a task that is the first of its process in its phase pays the process's warm-up
    # (imports, models, caches): a pool of W processes pays it W times per phase, Slurm
    # (a process per array job) once per job of `tasks_per_job` tasks
    per_job = getattr(cfg.executor, "tasks_per_job", None)  # Slurm's executor has it
    est = Estimate(config_name, n, len({f.path for f in plan.inputs}), total, slots, idx,
                   runs[-1].bytes, round(time.perf_counter() - t0, 3))
    if content is not None:
        est.content_bytes, est.content_read, est.content_windows = \
            int(sum(content)), read, windows
    collecting = {p.collect: p.name for p in plan.phases if p.kind == "map" and p.collect}
    for ph in plan.phases:
        warm = -(-ph.n_tasks // per_job) if per_job else min(slots, ph.n_tasks)
        collect = collecting.get(ph.stages[0]) if ph.kind == "step" and ph.stages else None
        est.phases.append(_phase(ph, plan.inputs, runs, total, slots, warm, content, collect))
    for s in cfg.stages:  # side files of a global stage: counted with its last step phase
        side = _scaled([r.bytes for r in runs], [r.inter.get(s.name, 0) for r in runs], total)
        steps = [p for p in est.phases if p.kind == "step" and p.name.startswith(s.name + ".")]
        if steps and side:
            steps[-1].intermediate_bytes += int(side)
    if any(_remote(f) for f in plan.inputs):
        from pipelines.io.storage import DEFAULT_BLOCK_SIZE

        est.requests = est.input_files + sum(
            math.ceil(f.length / DEFAULT_BLOCK_SIZE) + (1 if f.is_piece else 0)
            for f in plan.inputs)
    return est


def _remote(f: InputFile) -> bool:
    from pipelines.io.storage import is_remote

    return is_remote(f.path)


def _scaled(xs: list[int], ys: list[float], x: float) -> float:
    a, b = _fit([float(v) for v in xs], [float(v) for v in ys])
    return a + b * x


def _points(ph, runs: list[_Sampled]) -> list[tuple[float, dict, bool]]:
    """(x, task record, first of its process in the phase) of every sampled task: x is
    the task's input bytes in a map phase, the sample's bytes in a step phase. Each
    record gets ``_nth``: how many tasks of the phase its process ran before it, and
    ``_key``: its input, (path, start), the same in both sample runs."""
    out = []
    for run in runs:
        recs = run.tasks.get(ph.name, [])
        seen: dict = {}
        for _, rec in sorted(enumerate(recs), key=lambda tr: tr[1].get("started", 0)):
            rec["_nth"] = seen.get(rec.get("pid"), 0)
            seen[rec.get("pid")] = rec["_nth"] + 1
        first = run.tasks.get(next(iter(run.tasks), ""), [])  # the phase reading inputs
        most = max((r.get("imported") or 0 for r in recs), default=0)
        for t, rec in enumerate(recs):
            x = float(run.lengths[t]) if ph.kind == "map" else float(run.bytes)
            rec["_key"] = run.keys[t] if t < len(run.keys) else (str(t), 0)
            rec["_content"] = float(first[t].get("stages", {}).get("read", {}).get(
                "bytes_out", 0)) if t < len(first) else 0.0
            out.append((x, rec, _warms(rec, most) and len(recs) > 1))
    return out


def _warms(rec: dict, most: int) -> bool:
    """Whether the task ``rec`` carried (some of) its process's warm-up: the first task
    of its process (first-time set-up), or a later one that imported at least half as
    many modules as the most any task of its phase and run did (``imported``: the
    stages import on first use, ``lazy_module``). The first task does not always import
    them: a split WARC piece whose documents all drop before ``exact_dedup`` leaves its
    apply task little to do (7 modules, 0.055 s), and the next task of that process
    imported 20 (0.022 s against 0.002-0.007 s steady). Taken as steady work, such a
    task is multiplied by the tasks it stands for (the split WARCs' apply phase:
    0.51 s estimated by the first-task rule, 0.38 s by this one, 0.23-0.25 s real)."""
    imported = rec.get("imported")
    return rec["_nth"] == 0 or (imported is not None and most > 0 and 2 * imported >= most)


def _growth(points) -> tuple[float, float]:
    """(jump, creep): MB a worker's peak RSS grows from its first task of a phase to its
    second (caches and lazily loaded models: once), and per task after that. The jump is
    the median of the first steps; the creep the median of every step between
    consecutive tasks of one process, the first steps included (0 if no process ran
    three tasks: then a first step cannot be told from a creep). Medians (the lower one
    of an even count) are robust to one odd step. A step after the second task alone is
    noise: the reused workers on the split JSONL corpus creep 4 MB a task, but the one
    sampled process that ran three apply tasks stepped 4 then 14 MB, and a creep of 14
    put that run at +31 %; on the split WARCs a step holds a large page's memory (the
    heap keeps it), not a rate (samples of 8 stepped 0-31 MB, the real workers flat)."""
    by_pid: dict = {}
    for _, r, _ in points:
        by_pid.setdefault((r.get("pid"), r.get("phase")), []).append(r)
    jumps, steps, three = [], [], False
    for recs in by_pid.values():
        recs = sorted(recs, key=lambda r: r["_nth"])
        rss = [r.get("max_rss_mb") or 0.0 for r in recs]
        jumps += [b - a for a, b in zip(rss[:1], rss[1:2])]
        steps += [b - a for a, b in zip(rss, rss[1:])]
        three = three or len(rss) > 2

    def median(v: list[float]) -> float:
        return max(0.0, sorted(v)[(len(v) - 1) // 2]) if v else 0.0

    return median(jumps), median(steps) if three else 0.0


def _cost(points, key: str, ratio: bool) -> tuple[float, float, float]:
    """(a, b, warm-up): ``key`` = a + b x over the tasks that were not the first of their
    process (all tasks when none were), and what a first task cost on top. ``ratio``:
    b = their sum of ``key`` over their sum of x, a = 0 (robust on a few tasks of
    similar size, which the pieces of split inputs are)."""
    later = [(x, r.get(key, 0.0)) for x, r, first in points if not first]
    if not later:
        later = [(x, r.get(key, 0.0)) for x, r, _ in points]
        sx = sum(x for x, _ in later)
        return (0.0, sum(y for _, y in later) / sx, 0.0) if ratio and sx else (
            *_fit([x for x, _ in later], [y for _, y in later]), 0.0)
    if ratio:
        sx = sum(x for x, _ in later)
        a, b = 0.0, (sum(y for _, y in later) / sx if sx else 0.0)
    else:
        a, b = _fit([x for x, _ in later], [y for _, y in later])
    firsts = [r.get(key, 0.0) - (a + b * x) for x, r, first in points if first]
    return a, b, max(0.0, sum(firsts) / len(firsts)) if firsts else 0.0


def _warmup(points, key: str, fallback: float) -> float:
    """What the first task of a process costs on top, from inputs that ran both first
    and later (in the two sample runs): the median of first minus later over them;
    ``fallback`` when no input did."""
    by: dict = {}
    for _, r, first in points:
        by.setdefault(r["_key"], ([], []))[0 if first else 1].append(r.get(key, 0.0))
    diffs = sorted(sum(f) / len(f) - sum(la) / len(la) for f, la in by.values() if f and la)
    if not diffs:
        return fallback
    return max(0.0, diffs[(len(diffs) - 1) // 2])


def _per_input(points, value, warm: float) -> list[tuple[float, float]]:
    """(bytes, mean ``value(record)``) of each sampled input over the sample runs, sorted;
    a record that was the first of its process has ``warm`` taken off."""
    by: dict = {}
    for x, r, first in points:
        by.setdefault(r["_key"], [x, []])[1].append(max(0.0, value(r) - (warm if first else 0)))
    return sorted((x, sum(ys) / len(ys)) for x, ys in by.values())


def _stratified(points, value, warm: float, sizes: list[float]) -> list[float]:
    """Per planned task (``sizes``): ``value(record)`` of the sampled input nearest in
    size (log of the bytes, then rank: equal-size pieces spread over the sampled ones),
    scaled by bytes; a record that was the first of its process has ``warm`` taken
    off. An empty sampled input stands for its tasks as it is."""
    sampled = _per_input(points, value, warm)
    if not sampled:
        return [0.0] * len(sizes)
    m, n = len(sampled), len(sizes)
    rank = {j: p for p, j in enumerate(sorted(range(n), key=lambda j: (sizes[j], j)))}
    out = []
    for j, x in enumerate(sizes):
        q = (rank[j] + 0.5) / n
        k = min(range(m), key=lambda k: (abs(math.log1p(x) - math.log1p(sampled[k][0])),
                                         abs(q - (k + 0.5) / m)))
        sx, sy = sampled[k]
        out.append(sy * x / sx if sx else sy)
    return out


def rate_error(points, warm: float, n: int) -> float | None:
    """The relative standard error of a mean CPU-per-byte rate over the sampled inputs:
    their rates' coefficient of variation over the square root of their number, with the
    finite-population correction for ``n`` planned tasks (all sampled: 0). An
    approximation for the stratified estimate (which weighs each rate by the tasks it
    stands for), and itself estimated from a few rates: a guide to ``--sample``, not a
    bound. None with fewer than two sampled inputs."""
    rates = [y / x for x, y in _per_input(points, lambda r: r.get("cpu_s", 0.0), warm)
             if x > 0]
    k = len(rates)
    if k < 2:
        return None
    mean = sum(rates) / k
    if mean <= 0:
        return None
    cv = math.sqrt(sum((v - mean) ** 2 for v in rates) / (k - 1)) / mean
    fpc = math.sqrt(max(0.0, (n - k) / (n - 1))) if n > 1 else 0.0
    return cv / math.sqrt(k) * fpc


def sample_for(rel_error: float, sampled: int, n: int, target: float = 0.125) -> int:
    """The ``--sample`` that would bring ``rel_error`` (measured with ``sampled``
    inputs out of ``n``) to ``target``, by the same formula; at most ``n``."""
    if n <= sampled:
        return n
    cv2 = rel_error ** 2 * sampled * (n - 1) / (n - sampled)  # the rates' CV, squared
    k = n * cv2 / (target ** 2 * (n - 1) + cv2)  # solves cv/sqrt(k) * fpc(k) = target
    return min(n, max(sampled + 1, math.ceil(k)))


# A step's own increment on the same data differs by a few MB from process to process
# (what the allocators hand out in chunks); a rise across the sample runs within this is
# taken for none, or the corpus-to-sample ratio multiplies it (docs/benchmarks.md,
# "Planning a run").
STEP_RSS_NOISE_MB = 8.0


def _step_growth(name: str, runs: list[_Sampled], collect: str | None, total: int) -> float:
    """MB a task of the step phase ``name`` grows by from the largest sample run to the
    whole corpus: its own increment (peak minus its RSS at the start; the median task's
    of each run) fitted through the runs' bytes, over the runs whose step had documents
    to work on (``collect``: the map phase collecting for it wrote some); none with
    fewer than two such runs. Fitting the peaks themselves through two sample sizes
    made a step that holds almost nothing look like one that grows: on the split WARCs
    at ``--sample 8`` the half run's ``exact_dedup.group`` saw no document (73.7 MB: its
    code path's imports never ran) and the sample's a few (83.3 MB), and 9.6 MB per
    0.5 MB of input, x 2.9 MB more, said 142 MB against 91 MB real (+55 %); on the split
    JSONL the single ``cluster`` task's peak swung 122-134 MB between sample runs of the
    same inputs (what its process held before it: its own increment stayed 42-44 MB),
    and x 9.5 that swing said 126-171 MB against 135 MB. The median task, not the
    largest: a step's first task in a process carries its imports (buckets 18.8 MB in
    the half run, 20.8 in the sample, 20.9 real), its later ones what the data adds."""
    pts = []
    for run in runs:
        recs = run.tasks.get(name, [])
        if not recs or (collect is not None and not any(
                s.get("rows") for r in run.tasks.get(collect, []) for s in r.get("shards", []))):
            continue
        inc = sorted((r.get("max_rss_mb") or 0.0) - (r.get("start_rss_mb") or 0.0)
                     for r in recs if r.get("start_rss_mb") is not None)
        if not inc:  # records of a thresher before start_rss_mb: the peaks themselves
            inc = sorted(r.get("max_rss_mb") or 0.0 for r in recs)
        pts.append((float(run.bytes), inc[(len(inc) - 1) // 2]))
    xs = [x for x, _ in pts]
    if len(set(xs)) < 2:
        return 0.0
    _, b = _fit(xs, [y for _, y in pts])
    span = max(xs) - min(xs)
    rise = b * span - STEP_RSS_NOISE_MB  # what the sampled range shows beyond the noise
    return max(0.0, rise / span * (total - max(xs)))


def _phase(ph, inputs: list[InputFile], runs: list[_Sampled], total: int, slots: int,
           warm: int, content: list[float] | None = None,
           collect: str | None = None) -> PhaseEstimate:
    pts = _points(ph, runs)
    ratio = ph.kind == "map"
    (ca, cb, cw), (wa, wb, ww) = _cost(pts, "cpu_s", ratio), _cost(pts, "wall_s", ratio)
    # a reused worker's peak RSS creeps up task after task: extrapolated to the tasks
    # each process (a process per task, warm == tasks: none); no further than the
    # sample saw it go (``seen`` tasks after the second): caches and the allocator's
    # kept memory fill up and stop (the word caches are emptied per task since; glibc
    # keeps at most TRIM_THRESHOLD freed), and a creep from two or three steps of one
    # process is noise (split JSONL apply: 12 and 14 MB, x 8 tasks: +32 %)
    (jump, g), nth = _growth(pts), -(-ph.n_tasks // max(1, warm)) - 1
    seen = max((r["_nth"] for _, r, _ in pts), default=0) - 1
    rss = [(r.get("max_rss_mb") or 0.0) + (jump if r["_nth"] == 0 < nth else 0.0)
           + g * min(max(0, nth - max(1, r["_nth"])), max(0, seen)) for _, r, _ in pts]
    if ph.kind == "map":
        sizes = [float(f.length) for f in inputs]
        cw, ww = _warmup(pts, "cpu_s", cw), _warmup(pts, "wall_s", ww)
        if content is not None and any(r["_content"] for _, r, _ in pts):
            # split inputs: per content byte (the module doc); x is each input's content
            pts, sizes = [(r["_content"], r, f) for _, r, f in pts], list(content)
        cpu = sum(_stratified(pts, lambda r: r.get("cpu_s", 0.0), cw, sizes)) + warm * cw
        walls = _stratified(pts, lambda r: r.get("wall_s", 0.0), ww, sizes)
        peak = max(rss, default=0.0)  # a map task holds a batch, whatever its input
        written = sum(_stratified(
            pts, lambda r: float(sum(s.get("bytes", 0) for s in r.get("shards", []))),
            0.0, sizes))
        rel = rate_error(pts, cw, len(sizes))
    else:
        cpu = ph.n_tasks * (ca + cb * total) + warm * cw
        walls = [wa + wb * total] * ph.n_tasks
        # memory of a step grows with the corpus (a cluster step holds its edges)
        peak = max(rss, default=0.0) + _step_growth(ph.name, runs, collect, total)
        written, rel = 0.0, None
    for i in range(min(warm, len(walls))):  # the first task of each slot warms it up
        walls[i] += ww
    return PhaseEstimate(
        ph.name, ph.kind, ph.n_tasks, total if ph.kind == "map" else 0,
        cpu_hours=cpu / 3600, wall_s=makespan(walls, slots), peak_rss_mb=peak,
        intermediate_bytes=0 if ph.final else int(written),
        output_bytes=int(written) if ph.final else 0, cpu_rel_error=rel)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def format_table(est: Estimate) -> str:
    head = (f"{est.config}: {est.tasks} task(s) over {est.input_files} input file(s), "
            f"{_size(est.input_bytes)}; estimated from {len(est.sample)} sampled task(s) "
            f"({_size(est.sample_bytes)}, run in {est.sample_seconds:.1f} s), at "
            f"{est.slots} parallel task(s)")
    cols = ["phase", "kind", "tasks", "input", "CPU-h", "wall", "peak RSS/task",
            "intermediate", "output"]
    rows = [[p.name, p.kind, str(p.tasks), _size(p.input_bytes) if p.kind == "map" else "-",
             f"{p.cpu_hours:.4g}", _duration(p.wall_s), f"{p.peak_rss_mb:.0f} MB",
             _size(p.intermediate_bytes), _size(p.output_bytes)] for p in est.phases]
    d = est.to_dict()
    rows.append(["total", "", "", _size(est.input_bytes), f"{est.cpu_hours:.4g}",
                 _duration(est.wall_s), f"{est.peak_rss_mb:.0f} MB",
                 _size(d["intermediate_bytes"]), _size(d["output_bytes"])])
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]
    lines = [head, "", "  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if est.requests is not None:
        lines.append(f"object-store requests to read the inputs: about {est.requests:,}")
    if est.content_bytes is not None:
        how = (f"in {est.content_windows} windows" if est.content_windows
               else "every task whole")
        lines.append(f"map phases scaled per content byte: the reader alone found "
                     f"{_size(est.content_bytes)} of content ({_size(est.content_read)} read, "
                     f"{how})")
    lines += uncertainty_lines(est)
    return "\n".join(lines)


def uncertainty_lines(est: Estimate) -> list[str]:
    """The CPU estimate's standard error, and a warning naming a larger ``--sample``
    when it is above 12.5 % (a 2-sigma range wider than the 25 % the estimates aim at)."""
    rel = est.cpu_rel_error
    if rel is None:
        return []
    per = "content byte" if est.content_bytes is not None else "input byte"
    lines = [f"CPU-hours: one standard error about +/-{100 * rel:.0f} % (from how much the "
             f"{len(est.sample) or 'sampled'} sampled tasks differ in CPU per {per})"]
    if rel > 0.125 and est.sample and len(est.sample) < est.tasks:
        lines.append(f"warning: the sampled tasks differ widely in cost per {per}; "
                     f"--sample {sample_for(rel, len(est.sample), est.tasks)} would bring "
                     "that to about +/-12.5 %")
    return lines
