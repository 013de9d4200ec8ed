"""``thresher plan``: a run's cost estimated from its chain run on a sample of its tasks.

The estimate is checked against the real run of the same config on a larger bundled
corpus (the 2,014 documents of tests/data/quality/filter-docs.jsonl.gz, 11.5 MB
uncompressed, split into 22 tasks by ``input.max_task_bytes``). The errors reached are
in docs/benchmarks.md ("Planning a run"); the bounds here leave room for a loaded
machine.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DATA, REPO

from pipelines.config import load_config
from pipelines.estimate import (
    READ_PASS_FACTOR,
    STEP_RSS_NOISE_MB,
    _fit,
    _growth,
    _phase,
    _points,
    _Sampled,
    _step_growth,
    _stratified,
    _warmup,
    content_pass,
    estimate,
    finished_run,
    format_table,
    makespan,
    pick_sample,
    rate_error,
    sample_for,
    with_largest,
)
from pipelines.plan import make_plan
from pipelines.run import run_pipeline
from pipelines.rundir import RunDir


def test_pick_sample_is_deterministic_and_spans_the_sizes():
    sizes = [5, 1, 9, 3, 7, 2, 8, 6, 4, 10]
    a = pick_sample(sizes, 4)
    assert a == pick_sample(sizes, 4) and len(a) == 4
    picked = sorted(sizes[i] for i in a)
    assert picked[0] <= 2 and picked[-1] >= 9  # small and large tasks alike
    assert pick_sample(sizes, 50) == list(range(10))


def test_fit_and_makespan():
    a, b = _fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert (round(a, 9), round(b, 9)) == (1, 2)
    assert _fit([1, 2], [5, 1]) == (3, 0)  # a negative slope: flat
    assert _fit([2, 2], [4, 6]) == (0, 2.5)  # one size: per byte
    assert makespan([4, 3, 3, 2], 2) == 6  # largest first: 4+2, 3+3
    assert makespan([1, 1, 1], 8) == 1 and makespan([], 3) == 0


def test_each_task_takes_the_rate_of_the_sampled_input_nearest_in_size():
    """A costly-per-byte input in the sample stands for inputs of its size only (the
    FineWeb chain on the bench corpus: a 2.5 MB WARC of 2008 archive pages at 3x the
    per-byte CPU of the 5 MB page WARCs made a pooled rate +196 % off)."""
    def rec(key, cpu, first=False):
        return (float(key[1]), {"_key": key, "cpu_s": cpu}, first)

    pts = [rec(("small", 100), 1.0), rec(("odd", 2500), 10.0), rec(("big", 5000), 3.0),
           rec(("big", 5000), 4.0, first=True)]
    assert _warmup(pts, "cpu_s", 9.9) == 1.0  # 'big' ran first (4.0) and later (3.0)
    assert _warmup(pts[:3], "cpu_s", 9.9) == 9.9  # no input ran both: the fallback
    got = _stratified(pts, lambda r: r["cpu_s"], 1.0, [50.0, 2400.0, 5000.0, 10000.0])
    assert got == [0.5, 9.6, 3.0, 6.0]
    # equal sizes spread over the sampled inputs by rank, not all on one
    eq = [rec(("a", 10), 1.0), rec(("b", 10), 5.0)]
    assert _stratified(eq, lambda r: r["cpu_s"], 0.0, [10.0] * 4) == [1.0, 1.0, 5.0, 5.0]


def test_rate_error_from_the_spread_of_the_sampled_rates():
    def rec(key, x, cpu, first=False):
        return (float(x), {"_key": key, "cpu_s": cpu}, first)

    same = [rec("a", 100, 1.0), rec("b", 200, 2.0), rec("c", 400, 4.0)]
    assert rate_error(same, 0.0, 30) == 0.0  # equal CPU per byte: no doubt
    assert rate_error(same[:1], 0.0, 30) is None  # one rate: no spread to measure
    # rates 0.01, 0.02 and 0.06 per byte: mean 0.03, sample sd 0.026458, CV 0.8819;
    # one standard error of the mean of 3 of 29: CV / sqrt(3) * sqrt(26 / 28)
    wide = [rec("a", 100, 1.0), rec("b", 100, 2.0), rec("c", 100, 6.0)]
    assert abs(rate_error(wide, 0.0, 29) - 0.8819 / 3 ** 0.5 * (26 / 28) ** 0.5) < 1e-4
    assert rate_error(wide, 0.0, 3) == 0.0  # every task sampled
    # a first-of-process task has the warm-up taken off before its rate is taken
    assert rate_error([rec("a", 100, 2.0, first=True), rec("b", 100, 1.0)], 1.0, 10) == 0.0
    # the --sample that brings it to 12.5 %: by the same formula, and never past n
    k = sample_for(0.49, 3, 29)
    cv = (0.49 ** 2 * 3 * 28 / 26) ** 0.5
    assert cv / k ** 0.5 * ((29 - k) / 28) ** 0.5 <= 0.125 < \
        cv / (k - 1) ** 0.5 * ((29 - k + 1) / 28) ** 0.5
    assert sample_for(5.0, 3, 29) == 29 and sample_for(0.2, 4, 4) == 4


def test_worker_memory_jumps_once_then_creeps():
    def rec(pid, nth, rss):
        return (0.0, {"pid": pid, "phase": "p", "_nth": nth, "max_rss_mb": rss}, nth == 0)

    pts = [rec(1, 0, 68), rec(1, 1, 84), rec(1, 2, 85), rec(1, 3, 86),
           rec(2, 0, 70), rec(2, 1, 90)]
    assert _growth(pts) == (16, 1)  # jumps 16 and 20 (lower median), then 1 a task
    assert _growth(pts[4:]) == (20, 0)  # no process ran three tasks: no creep
    # the split JSONL corpus's apply phase (a kept sample run): the one process that ran
    # three tasks stepped 4.1 then 14.2 MB while the real run's workers crept ~4 MB a
    # task; a creep from later steps only (14.2, x 8 more tasks) made it +31 %
    apply = [rec(1, 0, 93.1), rec(1, 1, 97.2), rec(1, 2, 111.4), rec(2, 0, 90.9)]
    jump, creep = _growth(apply)
    assert round(jump, 1) == round(creep, 1) == 4.1


def test_worker_creep_is_extrapolated_no_further_than_the_sample_saw():
    """A creep seen over one step after the second task is carried one task further, not
    over every task a real worker runs (the split JSONL apply phase: 12 and 14 MB steps of
    one sampled process, x 8 tasks, said 225 MB against 134-146 MB real)."""
    from types import SimpleNamespace

    def rec(pid, started, rss):
        return {"pid": pid, "phase": "apply", "started": started, "max_rss_mb": rss,
                "cpu_s": 0.1, "wall_s": 0.1, "shards": []}

    recs = [rec(1, 1, 93.0), rec(2, 2, 91.0), rec(2, 3, 105.0), rec(2, 4, 117.0)]
    run = _Sampled(4, {"apply": recs}, {}, 0, [10] * 4, [(str(t), 0) for t in range(4)])
    ph = SimpleNamespace(name="apply", kind="map", n_tasks=22, final=True)
    inputs = [SimpleNamespace(length=10)] * 22
    est = _phase(ph, inputs, [run], 220, 2, 2)
    # jump 14, creep 12 (median of 14 and 12, the lower): 117 + 12 x 1 task seen, not x 9
    assert est.peak_rss_mb == 129.0


def test_a_step_grows_by_its_own_increment_over_runs_that_gave_it_documents():
    """A step's peak RSS is the largest sampled plus its tasks' own increment (peak minus
    RSS at the start) fitted through the runs' bytes; a run whose step had no document
    to work on is left out (on the split WARCs at --sample 8 the half run's
    exact_dedup.group saw none, 73.7 MB against 83.3, which fitted said 142 MB against
    91 MB real)."""
    from types import SimpleNamespace

    def run(nbytes, rows, recs):
        main = [{"pid": 9, "started": 0, "cpu_s": 0.1, "shards": [{"rows": rows}]}]
        steps = [{"pid": 1, "phase": "g", "started": t, "cpu_s": 0.01, "wall_s": 0.01,
                  "start_rss_mb": start, "max_rss_mb": peak}
                 for t, (start, peak) in enumerate(recs)]
        return _Sampled(nbytes, {"main": main, "g": steps}, {}, 0, [nbytes], [("a", 0)])

    ph = SimpleNamespace(name="g", kind="step", n_tasks=1, final=False)
    empty, some = run(500, 0, [(45.0, 73.7)]), run(1000, 8, [(45.0, 83.3)])
    est = _phase(ph, [], [empty, some], 3000, 1, 1, collect="main")
    assert est.peak_rss_mb == 83.3  # the empty run's 9.6 MB less is no growth
    # counted, its 9.6 MB per 500 B, less the noise, would be carried over 2000 B more
    grown = (9.6 - STEP_RSS_NOISE_MB) / 500 * 2000
    assert round(_step_growth("g", [empty, some], None, 3000), 6) == round(grown, 6)
    # both with documents: the median task's increment, 40 -> 70 MB over 1000 -> 2000 B
    half = run(1000, 5, [(50.0, 90.0), (50.0, 90.0), (50.0, 95.0)])
    full = run(2000, 9, [(50.0, 120.0), (50.0, 120.0), (50.0, 125.0)])
    ph3 = SimpleNamespace(name="g", kind="step", n_tasks=3, final=False)
    grown = (30 - STEP_RSS_NOISE_MB) / 1000 * 2000
    assert _phase(ph3, [], [half, full], 4000, 3, 3, collect="main").peak_rss_mb == 125 + grown
    assert _step_growth("g", [half, full], "main", 4000) == grown


def test_a_step_rise_within_the_noise_is_no_growth():
    """The split JSONL's one cluster task: its own increment 42.3 MB in the half run and
    44.6 in the sample, 2.3 MB that the 9x more corpus made 20 MB (the real task: 49-53
    MB); on the same data it ranged 42.3-48.3 MB from process to process."""
    def run(nbytes, inc):
        rec = {"pid": 1, "phase": "c", "started": 0, "cpu_s": 0.1, "wall_s": 0.1,
               "start_rss_mb": 80.0, "max_rss_mb": 80.0 + inc}
        return _Sampled(nbytes, {"c": [rec]}, {}, 0, [nbytes], [("a", 0)])

    assert _step_growth("c", [run(1000, 42.3), run(2000, 44.6)], None, 11_000) == 0
    assert _step_growth("c", [run(1000, 42.3), run(2000, 40.1)], None, 11_000) == 0
    grown = _step_growth("c", [run(1000, 42.3), run(2000, 60.3)], None, 11_000)
    assert grown == pytest.approx((18 - STEP_RSS_NOISE_MB) * 9)  # beyond it: carried


def test_the_warm_up_is_taken_off_the_task_that_imported_the_modules():
    """The first task of a process pays its warm-up, and so does a later one that
    imports the stages' modules on first use (a split WARC piece whose documents all
    drop leaves its apply task little to import, and the next task imports 20 modules)."""
    from types import SimpleNamespace

    def rec(t, started, imported, cpu):
        return {"pid": 1, "phase": "apply", "task": t, "started": started,
                "imported": imported, "cpu_s": cpu, "wall_s": cpu, "shards": []}

    recs = [rec(0, 1, 0, 0.01), rec(1, 2, 20, 0.07), rec(2, 3, 1, 0.01)]
    run = _Sampled(3, {"apply": recs}, {}, 0, [10] * 3, [(str(t), 0) for t in range(3)])
    pts = _points(SimpleNamespace(name="apply", kind="map"), [run])
    assert [first for _, _, first in pts] == [True, True, False]
    for r in recs:  # an older thresher's records: the first of the process
        del r["imported"]
    pts = _points(SimpleNamespace(name="apply", kind="map"), [run])
    assert [first for _, _, first in pts] == [True, False, False]


def test_the_largest_content_is_sampled_last():
    """A worker's peak RSS follows the largest batch it held, so the task of the most
    content is sampled (in place of the sampled one nearest to it in content) and run
    last, after other tasks, as a real run's worker meets it."""
    content = [10.0, 500.0, 40.0, 30.0, 2000.0, 20.0]
    assert with_largest([0, 2, 4], content) == [0, 2, 4]  # sampled already, and last
    assert with_largest([4, 0, 2], content) == [0, 2, 4]
    assert with_largest([0, 1, 3], content) == [0, 3, 4]  # 500 is nearest to 2000: out
    assert with_largest([0, 3, 5], content) == [0, 5, 4]  # 30 nearer than 20 and 10
    # ties: the first of equal largest content, in place of the first of equal distance
    assert with_largest([2, 3], [7.0, 7.0, 1.0, 1.0]) == [3, 0]


def corpus_config(tmp: Path, name: str = "plan-check") -> Path:
    src = tmp / "corpus.jsonl"
    if not src.exists():
        src.write_bytes(gzip.decompress((DATA / "quality" / "filter-docs.jsonl.gz")
                                        .read_bytes()))
    cfg = {"name": name,
           "input": {"format": "jsonl", "paths": [str(src)], "max_task_bytes": "512KiB"},
           "output": {"path": str(tmp / "run")},
           "executor": {"kind": "local", "workers": 2},
           "stages": [{"stage": "gopher_quality"}, {"stage": "gopher_repetition"},
                      {"stage": "minhash_dedup"}]}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def real_run(config: Path) -> Path:
    """The run as a user launches it, in a process of its own: a phase of one task runs
    in the launching process, whose peak RSS would otherwise be this test process's (a
    pytest worker that had held 1.9 GB once made a task report 1,885 MB)."""
    cfg = load_config(config)
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(config), "--quiet"],
                   cwd=REPO, check=True, capture_output=True)
    return Path(cfg.output.path)


def _estimate_and_run(tmp: Path, attempt: int):
    """The estimate of the config, then its real run: (estimate, CPU, RSS and output
    errors of the estimate against the run)."""
    (tmp / f"attempt{attempt}").mkdir()
    config = corpus_config(tmp / f"attempt{attempt}")
    cfg = load_config(config)
    est = estimate(cfg, sample=4, slots=2)
    assert est.tasks == 22 and est.input_files == 1 and len(est.sample) == 4
    assert [p.name for p in est.phases] == ["main", "minhash_dedup.buckets",
                                             "minhash_dedup.cluster", "apply-minhash_dedup"]
    root = real_run(config)
    plan = json.loads((root / "plan.json").read_text())
    recs = [RunDir.at(root).load_task_stats(ph["name"], t)
            for ph in plan["phases"] for t in range(ph["n_tasks"])]
    cpu = sum(r["cpu_s"] for r in recs)
    rss = max(r["max_rss_mb"] for r in recs)
    out = sum(s["bytes"] for s in json.loads((root / "manifest.json").read_text())
              ["outputs"])
    errs = (est.cpu_hours * 3600 / cpu - 1, est.peak_rss_mb / rss - 1,
            est.to_dict()["output_bytes"] / out - 1)
    print(f"attempt {attempt}: cpu {est.cpu_hours * 3600:.2f}s vs {cpu:.2f}s "
          f"({errs[0]:+.1%}), peak RSS {est.peak_rss_mb:.0f} vs {rss:.0f} MB "
          f"({errs[1]:+.1%}), output {errs[2]:+.1%}")
    return est, errs


def test_estimate_against_the_real_run(tmp_path: Path):
    # CPU: the goal is 25 %, met on a quiet machine (-11.2..+16.3 % in 35 of 36 pairs,
    # +43.8 % once: docs/benchmarks.md); the bound leaves room for a load burst, and a
    # pair outside it is measured once more: a burst moves one pair (the real run itself
    # took 5.5 CPU s once against 3.3-4.1 s), a wrong estimator both. Peak RSS does not
    # depend on the load as CPU does: the 25 % goal (measured -6.2 to -2.2 % since freed
    # memory is handed back around every task and a step's growth must exceed the
    # noise). One fresh-clone CI run once saw a task's VmHWM 12x the estimate (-92 %)
    # while CPU was within 4 %, not seen since: a repeat of it fails here, as it should.
    for attempt in (1, 2):
        est, (cpu_err, rss_err, out_err) = _estimate_and_run(tmp_path, attempt)
        if abs(cpu_err) <= 0.3 or attempt == 2:
            break
    assert abs(cpu_err) <= 0.3 and abs(out_err) <= 0.25
    assert abs(rss_err) <= 0.25
    table = format_table(est)
    assert "total" in table and est.cpu_rel_error is not None and est.cpu_rel_error >= 0
    assert f"+/-{100 * est.cpu_rel_error:.0f} %" in table
    print(f"the estimate's own standard error: +/-{est.cpu_rel_error:.1%}")


def test_cli_plan_json_and_table(tmp_path: Path):
    path = corpus_config(tmp_path, "cli")
    cmd = [sys.executable, "-m", "pipelines.cli", "plan", str(path), "--sample", "2"]
    proc = subprocess.run([*cmd, "--json", "--nodes", "3", "--cores-per-node", "4"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["slots"] == 12 and d["tasks"] == 22 and d["cpu_hours"] > 0
    assert {"name", "kind", "tasks", "cpu_hours", "wall_s", "peak_rss_mb",
            "intermediate_bytes", "output_bytes"} <= set(d["phases"][0])
    assert d["requests"] is None  # local inputs
    assert d["cpu_rel_error"] is None or d["cpu_rel_error"] >= 0
    assert "cpu_rel_error" in d["phases"][0]
    bad = subprocess.run([*cmd, "--nodes", "3"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode != 0 and "--cores-per-node" in bad.stderr


@pytest.mark.parametrize("n", [1])
def test_sample_of_one_is_refused(tmp_path: Path, n: int):
    from pipelines.errors import UserError

    with pytest.raises(UserError, match="at least 2"):
        estimate(load_config(corpus_config(tmp_path)), sample=n)


def test_estimate_from_earlier_runs(tmp_path: Path):
    """--from RUN: a pilot run of the same chain on fewer inputs stands for the sample."""
    path = corpus_config(tmp_path)
    cfg = load_config(path)
    pilots = []
    for n in (2, 4):  # pilots: the first n pieces' bytes, as their own corpus
        src = tmp_path / f"pilot{n}.jsonl"
        data = (tmp_path / "corpus.jsonl").read_bytes()
        src.write_bytes(data[:data.index(b"\n", n * 512 * 1024 - 1) + 1])
        d = yaml.safe_load(path.read_text())
        d["input"]["paths"] = [str(src)]
        d["output"]["path"] = str(tmp_path / f"pilot{n}")
        (tmp_path / f"pilot{n}.yaml").write_text(yaml.safe_dump(d))
        pilots.append(str(run_pipeline(load_config(tmp_path / f"pilot{n}.yaml")).root))
    est = estimate(cfg, slots=2, runs_from=pilots)
    assert est.sample == [] and est.tasks == 22 and est.cpu_hours > 0
    assert est.phases[0].peak_rss_mb > 0 and est.to_dict()["output_bytes"] > 0
    # Slurm pays a process's warm-up per array job: per task, or per tasks_per_job tasks
    from pipelines.config import config_from_dict

    d = yaml.safe_load(path.read_text())
    cpu = {}
    for per_job in (1, 4):
        d["executor"] = {"kind": "slurm", "tasks_per_job": per_job}
        cpu[per_job] = estimate(config_from_dict(d), slots=2, runs_from=pilots).cpu_hours
    assert cpu[1] > cpu[4] > est.cpu_hours, (cpu, est.cpu_hours)
    from pipelines.errors import UserError

    d = yaml.safe_load(path.read_text())
    d["stages"] = d["stages"][:1]
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(UserError, match="another chain"):
        estimate(load_config(tmp_path / "short.yaml"), runs_from=pilots)


def split_warc_config(tmp: Path) -> Path:
    """The 6 bundled .warc.gz split at 128 KiB: 29 tasks whose cost per input byte differs
    up to 60-fold (a few records hold most of the HTML)."""
    cfg = {"name": "split-warc",
           "input": {"format": "warc", "paths": [str(DATA / "warc" / "*.warc.gz")],
                     "max_task_bytes": "128KiB"},
           "output": {"path": str(tmp / "run")},
           "executor": {"kind": "local", "workers": 2},
           "stages": [{"stage": "extract"}, {"stage": "langid", "languages": ["en"]},
                      {"stage": "gopher_quality"}, {"stage": "exact_dedup"}]}
    path = tmp / "split-warc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _work(rec: dict) -> float:
    """Bytes the chain's stages took in (the reader's excepted): a measure of a task's
    work that does not depend on the machine's load (extract's HTML bytes dominate it, and
    extract dominates the CPU of this chain)."""
    return float(sum(s.get("bytes_in", 0) for name, s in rec.get("stages", {}).items()
                     if name != "read"))


def _split_warc_attempt(tmp: Path, attempt: int):
    """The estimate of the split-WARC config, then its real run: (config, plan, estimate,
    the real run's task records by phase, the directory, CPU and RSS errors)."""
    where = tmp / f"attempt{attempt}"
    where.mkdir()
    config = split_warc_config(where)
    cfg = load_config(config)
    plan = make_plan(cfg)
    assert len(plan.inputs) == 29 and any(f.is_piece for f in plan.inputs)
    est = estimate(cfg, sample=4, slots=2, keep=where / "keep")
    assert est.content_bytes and est.content_windows == 0  # the corpus fits: read whole
    assert est.content_read == est.input_bytes
    assert "per content byte" in format_table(est)
    rd = RunDir.at(real_run(config))
    real = {ph.name: [rd.load_task_stats(ph.name, t) for t in range(ph.n_tasks)]
            for ph in plan.phases}
    # the content pass finds what the real run's reader handed the chain, to the byte
    assert est.content_bytes == sum(r["stages"]["read"]["bytes_out"] for r in real["main"])
    cpu = sum(r["cpu_s"] for recs in real.values() for r in recs)
    cpu_err = est.cpu_hours * 3600 / cpu - 1
    rss = max(r["max_rss_mb"] for recs in real.values() for r in recs)
    rss_err = est.peak_rss_mb / rss - 1
    print(f"attempt {attempt}: split WARCs: cpu {est.cpu_hours * 3600:.2f}s vs {cpu:.2f}s "
          f"({cpu_err:+.1%}), peak RSS {est.peak_rss_mb:.0f} vs {rss:.0f} MB ({rss_err:+.1%})")
    return cfg, plan, est, real, where, cpu_err, rss_err


def test_split_warc_estimate_against_the_real_run(tmp_path: Path):
    """Issue #20: on the split WARCs, 4 sampled whole pieces scaled per input byte were
    +150 to +168 % off in CPU (the sample holds the two pieces densest in HTML). Scaled per
    content byte (the content pass) the estimate must be within 25 % of the real run:
    timed (CPU summed over the real run's task records), and on a load-independent
    measure of work run through the same estimator code, where scaling per input byte
    must fail (so this check can)."""
    # timed: a pair outside the bound is measured once more (as in
    # test_estimate_against_the_real_run: this machine's speed can change between the
    # sample runs and the real run: +39.6 % once inside a full suite, 2026-12-06)
    for attempt in (1, 2):
        cfg, plan, est, real, where, cpu_err, rss_err = _split_warc_attempt(tmp_path, attempt)
        if abs(cpu_err) <= 0.25 or attempt == 2:
            break
    assert abs(cpu_err) <= 0.25 and abs(rss_err) <= 0.25
    # the step phase's own peak (fitted through the two sample runs, it once said 142 MB
    # against 91 MB: the half run's step had no document, _step_growth)
    group = next(p for p in est.phases if p.name == "exact_dedup.group")
    real_group = max(r["max_rss_mb"] for r in real["exact_dedup.group"])
    assert abs(group.peak_rss_mb / real_group - 1) <= 0.25, (group.peak_rss_mb, real_group)

    # the same estimator on work instead of CPU seconds, from the same two sample runs
    content = content_pass(cfg, plan.inputs, READ_PASS_FACTOR * est.sample_bytes)[0]
    runs = [finished_run(where / "keep" / name, plan) for name in ("half", "sample")]
    for r in runs:
        for recs in r.tasks.values():
            for rec in recs:
                rec["cpu_s"] = _work(rec)
    maps = [ph for ph in plan.phases if ph.kind == "map"]
    total = sum(f.length for f in plan.inputs)
    truth = sum(_work(r) for ph in maps for r in real[ph.name])
    errs = {}
    for how, c in (("content", content), ("input bytes", None)):
        got = sum(_phase(ph, plan.inputs, runs, total, 2, 2, c).cpu_hours * 3600 for ph in maps)
        errs[how] = got / truth - 1
    print("split WARCs, work estimate:", {k: f"{v:+.1%}" for k, v in errs.items()})
    assert abs(errs["content"]) <= 0.15
    assert errs["input bytes"] > 0.25  # the old scaling on the same sample: far off


def test_content_pass_windows_are_deterministic_and_close(tmp_path: Path):
    """Beyond READ_PASS_FACTOR x the sample's bytes the content pass reads evenly spaced
    windows, each resynced on a record as a piece is; on the split JSONL corpus a quarter
    of the bytes gives the content of the whole within 10 %, the same every time."""
    cfg = load_config(corpus_config(tmp_path))
    inputs = make_plan(cfg).inputs
    total = sum(f.length for f in inputs)
    whole, read, windows = content_pass(cfg, inputs, total)
    assert read == total and windows == 0
    part = content_pass(cfg, inputs, total // 4)
    assert part == content_pass(cfg, inputs, total // 4)  # deterministic
    est, read, windows = part
    assert windows >= len(inputs) and read <= total // 4
    assert len(est) == len(inputs) and all(c > 0 for c in est)
    print(f"windows: {windows}, read {read / total:.0%} of the bytes, content "
          f"{sum(est) / sum(whole) - 1:+.1%}")
    assert abs(sum(est) / sum(whole) - 1) <= 0.1


def test_content_pass_windows_weigh_long_records_by_their_share(tmp_path: Path):
    """On the split WARCs a few records hold much of the content (one page of 1.2 MB): a
    window taking only the records starting in it was +46 % off at 1/8 of the bytes.
    Weighing each record by its share inside the window: within 20 % at 1/2, 1/4 and 1/8
    (measured +3.6, +12.8, -1.2 %)."""
    cfg = load_config(split_warc_config(tmp_path))
    inputs = make_plan(cfg).inputs
    total = sum(f.length for f in inputs)
    whole = sum(content_pass(cfg, inputs, total)[0])
    errs = []
    for part in (2, 4, 8):
        est, read, windows = content_pass(cfg, inputs, total // part)
        assert windows >= len(inputs) and read <= total // part
        errs.append(sum(est) / whole - 1)
    print("split WARC windows, content:", [f"{e:+.1%}" for e in errs])
    assert all(abs(e) <= 0.2 for e in errs)


@pytest.mark.parametrize("out,codec", [("local", "UNCOMPRESSED"), ("s3://bucket/run", "ZSTD")])
def test_sample_runs_write_the_real_runs_intermediate_codec(tmp_path: Path, out: str,
                                                            codec: str):
    """The sample runs go to a local temporary directory, but their intermediate shards
    (counted as the estimate's intermediate disk) are coded as the real run's directory
    resolves ``intermediate_compression: auto``: zstd for a run in object storage."""
    import pyarrow.parquet as pq

    from pipelines.io.storage import on_network_filesystem

    path = corpus_config(tmp_path)
    d = yaml.safe_load(path.read_text())
    d["output"]["path"] = str(tmp_path / "run") if out == "local" else out
    d["stages"] = d["stages"][-1:]  # minhash_dedup: an intermediate phase
    path.write_text(yaml.safe_dump(d))
    if out == "local" and on_network_filesystem(tmp_path):
        codec = "ZSTD"
    estimate(load_config(path), sample=2, slots=1, keep=tmp_path / "keep")
    shards = sorted((tmp_path / "keep" / "sample" / "phases" / "main").glob("*.parquet"))
    assert shards and all(pq.ParquetFile(s).metadata.row_group(0).column(0).compression
                          == codec for s in shards)
