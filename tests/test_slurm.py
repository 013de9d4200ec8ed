"""The Slurm executor against a real one-node Slurm (slurm/slurm-up.sh).

Tests that need Slurm skip when `sinfo` is missing or cannot reach a controller;
CI brings Slurm up with SLURM_MAX_ARRAY_SIZE=5 and sets THRESHER_REQUIRE_SLURM=1,
which turns those skips into failures. Jobs run the repo's own interpreter and see
this process's environment (sbatch exports it), so PYTHONPATH=tests lets them
import the test-only stages in tests/plugins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import DATA, REPO, WARC_DIR, dedup_chain_config, shard_hashes, thresher

from pipelines import config_from_dict, load_config, run_pipeline
from pipelines.errors import UserError
from pipelines.executors.slurm import SlurmExecutor, split_arrays
from pipelines.executors.slurm_queue import compress_ranges, expand_ranges

SENTENCES = (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text().splitlines()


def _slurm_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "Slurm is not installed (no sinfo); bring it up with: sudo bash slurm/slurm-up.sh"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                           timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    if p.returncode != 0:
        return f"Slurm is not reachable: sinfo: {p.stderr.strip() or p.returncode}"
    if not {"idle", "mix", "alloc"} & set(p.stdout.split()):
        return f"no usable Slurm node (sinfo states: {p.stdout.split()})"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A reachable Slurm; at the end, no job of this module's runs may still be queued."""
    problem = _slurm_problem()
    if problem:
        if os.environ.get("THRESHER_REQUIRE_SLURM") == "1":
            pytest.fail(f"THRESHER_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    yield
    # only the jobs our runs recorded: the cluster may be shared with other work
    ids = sorted({j["id"] for f in tmp_path_factory.getbasetemp().rglob("slurm/jobs.json")
                  for s in json.loads(f.read_text())["submissions"] for j in s["jobs"]})
    out = subprocess.run(["squeue", "-h", "-o", "%F", "-j", ",".join(ids)],
                         capture_output=True, text=True).stdout if ids else ""
    left = sorted(set(out.split()))
    if left:
        subprocess.run(["scancel", *left], check=False)
    assert not left, f"tests left Slurm jobs queued or running: {left}"


@pytest.fixture
def test_env(monkeypatch):
    """Jobs must import tests/plugins (sbatch exports the submitting environment)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.delenv("THRESHER_TEST_FAIL_SOURCE", raising=False)
    return monkeypatch


def jsonl_inputs(root: Path, n_files: int) -> Path:
    """Real sentences spread over n_files JSONL files (more files = more tasks)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        (root / f"part{i:03d}.jsonl").write_text("\n".join(SENTENCES[i::n_files]) + "\n")
    return root


def write_config(path: Path, data: Path, out: Path, executor: dict, stages: list[dict],
                 fields: tuple[str, ...] = ("gold",)) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "slurmtest",
        "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")], "id_key": "id",
                  "fields": list(fields)},
        "output": {"path": str(out)},
        "executor": executor,
        "stages": stages,
    }))
    return path


def counts(run: Path) -> dict:
    """The funnel of a finished run without its timings (which differ between runs)."""
    stages = json.loads((run / "stats.json").read_text())["stages"]
    return {name: {k: v for k, v in st.items() if not k.endswith("_s")}
            for name, st in stages.items()}


def status_json(run: Path) -> dict:
    return json.loads(thresher("status", str(run), "--json", check=False).stdout)


def wait_until_settled(run: Path, limit_s: float = 600) -> dict:
    """Poll `thresher status` until nothing of the run is pending or running."""
    deadline = time.monotonic() + limit_s
    while True:
        st = status_json(run)
        if not any(p["running"] or p["pending"] for p in st["phases"]):
            return st
        assert time.monotonic() < deadline, f"run still running after {limit_s} s: {st}"
        time.sleep(0.5)


# ----------------------------------------------------------------------------- no Slurm needed

@pytest.mark.parametrize("tasks,size", [
    (list(range(13)), 5), ([3, 7, 8, 20], 5), ([0], 1), ([4, 5, 6], 1001), ([999, 1000], 1000),
])
def test_split_arrays_keeps_every_index_below_max_array_size(tasks, size):
    groups = split_arrays(tasks, size)
    assert sorted(t for _, ts in groups for t in ts) == sorted(tasks)
    for offset, ts in groups:
        assert offset == ts[0] and all(0 <= t - offset < size for t in ts)


def test_split_arrays_uses_as_few_arrays_as_the_index_bound_allows():
    assert split_arrays(list(range(13)), 5) == [(0, [0, 1, 2, 3, 4]), (5, [5, 6, 7, 8, 9]),
                                               (10, [10, 11, 12])]
    assert split_arrays([3, 7, 8, 20], 5) == [(3, [3, 7]), (8, [8]), (20, [20])]


def test_groups_of_tasks_per_job_give_each_task_its_array_index():
    """tasks_per_job: an array holds at most MaxArraySize groups; index i runs its i-th
    group of tasks, and Job.index (status, Slurm's log file) finds it for every task."""
    from pipelines.executors.slurm import group_arrays
    from pipelines.executors.slurm_queue import Job

    todo = [20, 0, 1, 2, 5, 7, 8, 9, 12, 13]
    arrays = group_arrays(todo, 3, 2)  # at most 2 groups of 3 per array
    assert arrays == [[0, 1, 2, 5, 7, 8], [9, 12, 13, 20]]
    for tasks in arrays:
        job = Job("1", "main", compress_ranges(tasks), per_job=3)
        assert [job.index(t) for t in tasks] == [i // 3 for i in range(len(tasks))]
    assert Job("1", "main", "4-9", offset=4).index(9) == 5  # one task per job: id - offset


def test_ranges_round_trip():
    assert compress_ranges([7, 0, 1, 2, 5, 8]) == "0-2,5,7-8"
    assert expand_ranges("0-2,5,7-8") == [0, 1, 2, 5, 7, 8]
    assert compress_ranges([]) == "" and expand_ranges("") == []


def slurm_cfg(tmp_path: Path, **executor):
    return config_from_dict({
        "input": {"format": "jsonl", "paths": [str(DATA / "lid" / "*.jsonl")]},
        "output": {"path": str(tmp_path / "run")},
        "executor": {"kind": "slurm", **executor}, "stages": []})


def test_slurm_config_errors_say_what_to_write(tmp_path: Path):
    with pytest.raises(UserError, match=r"executor.time: .*quote the time limit"):
        slurm_cfg(tmp_path, time=7200)  # what YAML makes of an unquoted 2:00:00
    with pytest.raises(UserError, match=r"executor.mem: .*e.g. 4G"):
        slurm_cfg(tmp_path, mem="4GB")
    cfg = slurm_cfg(tmp_path, time="2:00:00", mem="4G", workers=3)
    assert cfg.executor.max_parallel == 3 and cfg.executor.time == "2:00:00"
    local = tmp_path / "local.yaml"
    write_config(local, tmp_path, tmp_path / "out", {"kind": "local", "workers": 2}, [])
    (tmp_path / "x.jsonl").write_text(SENTENCES[0] + "\n")
    switched = load_config(local, overrides={"executor": "slurm"})  # --executor slurm
    assert switched.executor.kind == "slurm" and switched.executor.max_parallel == 2


def test_template_must_run_thresher(tmp_path: Path):
    bad = tmp_path / "bad.sbatch"
    bad.write_text("#!/bin/bash\n{{setup}}\necho hello\n")
    with pytest.raises(UserError, match="no {{command}} placeholder"):
        SlurmExecutor(slurm_cfg(tmp_path, template=str(bad)).executor)._template()
    bad.write_text("#!/bin/bash\n{{modules}}\n{{command}}\n")
    with pytest.raises(UserError, match="unknown placeholder.*modules"):
        SlurmExecutor(slurm_cfg(tmp_path, template=str(bad)).executor)._template()


def test_default_template_is_package_data_of_the_wheel(tmp_path: Path):
    """A wheel install has the default job script (and the bundled fastText model): both
    are package data, not files of the source tree."""
    import zipfile

    from pipelines.executors import slurm as slurm_mod

    assert slurm_mod.DEFAULT_TEMPLATE.is_relative_to(REPO / "pipelines")
    text = SlurmExecutor(slurm_cfg(tmp_path).executor)._template()
    assert "{{command}}" in text and text == slurm_mod.DEFAULT_TEMPLATE.read_text()
    build = tmp_path / "src"  # a copy: building must not leave build/ in the checkout
    shutil.copytree(REPO, build, ignore=shutil.ignore_patterns(
        ".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", "tests", "benchmarks"))
    proc = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), "."],
                          cwd=build, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("thresher-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert z.read("pipelines/executors/templates/task.sbatch") == \
            slurm_mod.DEFAULT_TEMPLATE.read_bytes()
    assert "stages/models/lid.176.ftz" in names
    assert "stages/extraction/check_pages/pages.json" in names  # extract_fast's self-check


def test_status_of_an_unfinished_local_run(tmp_path: Path):
    data = jsonl_inputs(tmp_path / "in", 3)
    cfg = write_config(tmp_path / "p.yaml", data, tmp_path / "run", {"kind": "local"},
                       [{"stage": "length", "min_chars": 20}])
    thresher("run", str(cfg), "--quiet")
    assert status_json(tmp_path / "run")["state"] == "finished"
    (tmp_path / "run" / "stats" / "main" / "task-00001.json").unlink()
    st = status_json(tmp_path / "run")
    assert st["state"] == "incomplete"
    # documents of the finished tasks 0 and 2: lines read, rows in their shards
    written = sum(pq.ParquetFile(f).metadata.num_rows for t in (0, 2)
                  for f in (tmp_path / "run" / "data").glob(f"part-{t:05d}-*.parquet"))
    assert st["phases"][0] == {"phase": "main", "tasks": 3, "done": 2, "running": 0,
                               "pending": 0, "failed": 0, "blocked": 0, "todo": 1,
                               "docs_in": len(SENTENCES[0::3]) + len(SENTENCES[2::3]),
                               "docs_out": written}
    assert 0 < written < st["phases"][0]["docs_in"]  # the length filter dropped some
    proc = thresher("status", str(tmp_path / "run"))
    assert "thresher run CONFIG --resume" in proc.stdout


# ----------------------------------------------------------------------------- real Slurm

def test_demo_on_slurm_is_byte_identical_to_local(slurm, reference_run: Path, tmp_path: Path):
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["input"]["paths"] = [str(WARC_DIR / "*.warc.gz")]
    cfg["executor"] = {"kind": "slurm", "max_parallel": 2}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = thresher("run", str(path), "--output", str(tmp_path / "run"), "--wait")
    assert "funnel: demo" in proc.stdout  # --wait prints the funnel like a local run
    run = tmp_path / "run"
    assert shard_hashes(run) == shard_hashes(reference_run)
    assert counts(run) == counts(reference_run)
    assert (run / "manifest.json").exists()
    st = status_json(run)
    assert st["state"] == "finished" and all(p["done"] == p["tasks"] for p in st["phases"])
    # Slurm's own output of each array task sits next to the task's log
    jobs = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][0]["jobs"]
    main = [j for j in jobs if j["phase"] == "main"]
    for j in main:
        for t in expand_ranges(j["tasks"]):
            out = run / "logs" / "main" / f"slurm-{j['id']}_{t - j['offset']}.out"
            assert f"main/{t}: done" in out.read_text()


def test_failed_task_is_reported_blocks_dependents_and_resume_finishes(
        slurm, test_env, tmp_path: Path):
    from test_exact_dedup import make_corpus

    data = tmp_path / "in"
    make_corpus(data)  # real sentences with duplicates, in part0..part3.jsonl
    stages = [{"stage": "plugins.flaky:FailOnSource"},
              {"stage": "exact_dedup", "partitions": 2},
              {"stage": "length", "min_chars": 20}]
    run = tmp_path / "run"
    # --hold: every job waits for `scontrol release`, so the refusal below is not a race
    cfg = write_config(tmp_path / "p.yaml", data, run,
                       {"kind": "slurm", "sbatch_args": ["--hold"]}, stages, fields=("lang",))
    test_env.setenv("THRESHER_TEST_FAIL_SOURCE", "part1")
    proc = thresher("run", str(cfg))  # returns once submitted, printing the job ids
    jobs = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"]
    assert [j["phase"] for j in jobs[0]["jobs"]] == [
        "main", "exact_dedup.group", "apply-exact_dedup", "finalize"]
    for j in jobs[0]["jobs"]:
        assert f"job {j['id']}: {j['phase']}" in proc.stdout
    assert status_json(run)["state"] == "running"

    refused = thresher("run", str(cfg), "--resume", check=False)
    assert refused.returncode == 2
    assert "still pending or running" in refused.stderr and len(refused.stderr.splitlines()) == 1

    jobs = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"]
    assert len(jobs) == 1  # the refused resume submitted nothing
    assert not (run / "stats").exists()  # and nothing ran while held
    subprocess.run(["scontrol", "release", ",".join(j["id"] for j in jobs[0]["jobs"])],
                   check=True)
    st = wait_until_settled(run)

    assert st["state"] == "failed"
    by_phase = {p["phase"]: p for p in st["phases"]}
    assert by_phase["main"]["done"] == 3 and by_phase["main"]["failed"] == 1
    for later in ("exact_dedup.group", "apply-exact_dedup", "finalize"):
        assert by_phase[later]["done"] == 0 and by_phase[later]["blocked"] == by_phase[later][
            "tasks"], by_phase[later]
    [failure] = st["failed"]
    assert (failure["phase"], failure["task"]) == ("main", 1)
    assert failure["error"] == "RuntimeError: simulated crash in a stage"
    assert failure["log"] == str(run / "logs" / "main" / "task-00001.log")
    assert "FAILED" in failure["slurm_state"] and Path(failure["slurm_log"]).exists()
    # the dependent phases and the finalize job never ran
    assert not (run / "stats" / "exact_dedup.group").exists()
    assert not (run / "stats.json").exists() and not (run / "manifest.json").exists()
    shown = thresher("status", str(run), check=False)
    assert shown.returncode == 1
    assert "main/1" in shown.stdout and "simulated crash" in shown.stdout

    test_env.delenv("THRESHER_TEST_FAIL_SOURCE")
    thresher("run", str(cfg), "--resume", "--wait", "--quiet",
             "--set", "executor.sbatch_args=[]")
    assert status_json(run)["state"] == "finished"
    resumed = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][1]["jobs"]
    assert [(j["phase"], j["tasks"]) for j in resumed][0] == ("main", "1")  # only the undone

    local = write_config(tmp_path / "local.yaml", data, tmp_path / "local",
                         {"kind": "local", "workers": 2}, stages, fields=("lang",))
    thresher("run", str(local), "--quiet")
    assert shard_hashes(run) == shard_hashes(tmp_path / "local")
    assert counts(run) == counts(tmp_path / "local")
    assert counts(run)["exact_dedup"]["dropped"]  # the corpus has duplicates: dedup worked


def test_tasks_per_job_runs_a_group_in_one_process_and_a_failure_stops_only_its_task(
        slurm, test_env, tmp_path: Path):
    """tasks_per_job: 3 over 4 main tasks gives 2 array jobs; the first runs tasks 0, 1, 2
    in one process, the failing task 1 does not stop task 2, the job fails and blocks the
    later phases; --resume submits task 1 alone and the bytes are a local run's."""
    from test_exact_dedup import make_corpus

    data = tmp_path / "in"
    make_corpus(data)  # part0..part3.jsonl: 4 main tasks
    stages = [{"stage": "plugins.flaky:FailOnSource"},
              {"stage": "exact_dedup", "partitions": 2},
              {"stage": "length", "min_chars": 20}]
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "p.yaml", data, run, {"kind": "slurm", "tasks_per_job": 3},
                       stages, fields=("lang",))
    test_env.setenv("THRESHER_TEST_FAIL_SOURCE", "part1")
    thresher("run", str(cfg))
    st = wait_until_settled(run)
    [sub] = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"]
    main = sub["jobs"][0]
    assert (main["phase"], main["tasks"], main["per_job"]) == ("main", "0-3", 3)
    script = (run / main["script"]).read_text()
    assert "--array=0-1 " in script.splitlines()[1]  # the sbatch command, recorded
    assert "TASKS=(0-2 3)\n" in script
    pids = {t: json.loads((run / "stats" / "main" / f"task-{t:05d}.json").read_text())["pid"]
            for t in (0, 2, 3)}
    assert pids[0] == pids[2] != pids[3]  # tasks 0 and 2 in one process, 3 in the next job
    out = (run / "logs" / "main" / f"slurm-{main['id']}_0.out").read_text()
    assert "main/0: done" in out and "main/1: failed: " in out and "main/2: done" in out
    assert st["state"] == "failed"
    [failure] = st["failed"]
    assert (failure["phase"], failure["task"], failure["job"]) == ("main", 1, f"{main['id']}_0")
    assert failure["error"] == "RuntimeError: simulated crash in a stage"
    by_phase = {p["phase"]: p for p in st["phases"]}
    assert by_phase["exact_dedup.group"]["blocked"] == 2

    test_env.delenv("THRESHER_TEST_FAIL_SOURCE")
    thresher("run", str(cfg), "--resume", "--wait", "--quiet")
    assert status_json(run)["state"] == "finished"
    resumed = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][1]["jobs"]
    assert [(j["phase"], j["tasks"]) for j in resumed][:2] == [
        ("main", "1"), ("exact_dedup.group", "0-1")]
    group = [json.loads((run / "stats" / "exact_dedup.group" / f"task-{t:05d}.json")
                        .read_text())["pid"] for t in (0, 1)]
    assert group[0] == group[1]  # both step tasks in one job
    local = write_config(tmp_path / "local.yaml", data, tmp_path / "local",
                         {"kind": "local", "workers": 2}, stages, fields=("lang",))
    thresher("run", str(local), "--quiet")
    assert shard_hashes(run) == shard_hashes(tmp_path / "local")
    assert counts(run) == counts(tmp_path / "local")


def _scontrol_job(job: str) -> dict[str, str]:
    """The first record `scontrol show job` prints (an array's first task) as a dict."""
    out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                         check=True).stdout
    record = out.strip().split("\n\n")[0]
    return dict(item.split("=", 1) for item in record.split() if "=" in item)


def test_every_executor_field_reaches_the_submitted_jobs(slurm, tmp_path: Path):
    """partition, account, qos, time, cpus_per_task, mem, max_parallel, sbatch_args, setup
    and a user's template: Slurm holds the jobs with those settings (QOS needs accounting,
    which the test cluster lacks, so it is checked in the recorded sbatch command), and
    once released they run through the user's template."""
    data = jsonl_inputs(tmp_path / "in", 3)
    template = tmp_path / "site.sbatch"
    template.write_text("#!/bin/bash\n#SBATCH --comment=from-site-template\nset -eo pipefail\n"
                        'echo "site template: {{phase}} in {{run_dir}} by {{python}}"\n'
                        "{{setup}}\n{{command}}\n")
    run = tmp_path / "run"
    stages = [{"stage": "length", "min_chars": 20}]
    cfg = write_config(tmp_path / "p.yaml", data, run, {
        "kind": "slurm", "partition": "debug", "account": "thresher-ci", "qos": "normal",
        "time": "0:10:00", "cpus_per_task": 2, "mem": "200M", "max_parallel": 1,
        "sbatch_args": ["--hold", "--nice=7"], "template": str(template),
        "setup": ["export SITE_SETUP=yes", 'echo "setup ran: $SITE_SETUP"']}, stages)
    thresher("run", str(cfg))
    jobs = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][0]["jobs"]
    assert [j["phase"] for j in jobs] == ["main", "finalize"]
    try:
        main, fin = (_scontrol_job(j["id"]) for j in jobs)
        for job, cpus in ((main, "2"), (fin, "1")):
            assert (job["Partition"], job["Account"], job["TimeLimit"], job["MinMemoryNode"],
                    job["CPUs/Task"], job["Nice"], job["Reason"], job["Comment"]) == (
                "debug", "thresher-ci", "00:10:00", "200M", cpus, "7", "JobHeldUser",
                "from-site-template"), job
        assert main["ArrayTaskThrottle"] == "1" and main["ArrayJobId"] == jobs[0]["id"]
        assert fin["Dependency"].startswith(f"afterok:{jobs[0]['id']}_*")
        for j in jobs:
            script = (run / j["script"]).read_text()
            assert _scontrol_job(j["id"])["Command"] == str(run / j["script"])
            assert "--qos=normal" in script.splitlines()[1]  # the sbatch command, recorded
            assert 'export SITE_SETUP=yes\necho "setup ran: $SITE_SETUP"' in script
            assert script.startswith("#!/bin/bash\n# submitted by thresher: sbatch ")
    finally:
        subprocess.run(["scontrol", "release", ",".join(j["id"] for j in jobs)], check=True)
    assert wait_until_settled(run)["state"] == "finished"
    for t in range(3):
        out = (run / "logs" / "main" / f"slurm-{jobs[0]['id']}_{t}.out").read_text()
        assert f"site template: main in {run} by " in out and "setup ran: yes" in out
        assert f"main/{t}: done" in out
    local = write_config(tmp_path / "local.yaml", data, tmp_path / "local",
                         {"kind": "local"}, stages)
    thresher("run", str(local), "--quiet")
    assert shard_hashes(run) == shard_hashes(tmp_path / "local")


def _max_array_size() -> int:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("MaxArraySize"):
            return int(line.split("=")[1])
    return 1001


def test_phase_above_max_array_size_is_split_and_resumes_high_task_ids(slurm, tmp_path: Path):
    size = _max_array_size()
    if size > 40:
        pytest.skip(f"MaxArraySize is {size}; this test wants a small one "
                    "(CI: SLURM_MAX_ARRAY_SIZE=5 bash slurm/slurm-up.sh)")
    n = 2 * size + 1
    data = jsonl_inputs(tmp_path / "in", n)
    marks = tmp_path / "setup-ran"
    marks.mkdir()
    stages = [{"stage": "length", "min_chars": 20}]
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "p.yaml", data, run, {
        "kind": "slurm", "max_parallel": 2,
        "setup": [f"touch {marks}/task-$SLURM_ARRAY_JOB_ID-$SLURM_ARRAY_TASK_ID"]}, stages)
    thresher("run", str(cfg), "--wait", "--quiet")

    jobs = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][0]["jobs"]
    main = [j for j in jobs if j["phase"] == "main"]
    assert [(j["offset"], j["tasks"]) for j in main] == [
        (0, f"0-{size - 1}"), (size, f"{size}-{2 * size - 1}"), (2 * size, f"{2 * size}")]
    assert len(list(marks.iterdir())) == n + 1  # the setup lines ran in every job
    local = write_config(tmp_path / "local.yaml", data, tmp_path / "local",
                         {"kind": "local"}, stages)
    thresher("run", str(local), "--quiet")
    assert shard_hashes(run) == shard_hashes(tmp_path / "local")

    # forget the two highest tasks: the resubmitted array starts at index 0 with an offset
    for t in (n - 2, n - 1):
        (run / "stats" / "main" / f"task-{t:05d}.json").unlink()
    for p in (run / "data").glob(f"part-{n - 1:05d}-*"):
        p.unlink()
    thresher("run", str(cfg), "--resume", "--wait", "--quiet")
    again = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][1]["jobs"]
    assert [(j["phase"], j["offset"], j["tasks"]) for j in again] == [
        ("main", n - 2, f"{n - 2}-{n - 1}"), ("finalize", 0, "")]
    assert shard_hashes(run) == shard_hashes(tmp_path / "local")


def test_python_api_waits_and_a_killed_task_is_resumed(slurm, test_env, tmp_path: Path):
    """run_pipeline() waits for the jobs; a task SIGKILLed mid-way (as by the OOM killer)
    fails its array task, Slurm does not retry it, and resume=True finishes the run."""
    data = jsonl_inputs(tmp_path / "in", 3)
    marker = tmp_path / "killed"
    test_env.setenv("THRESHER_TEST_KILL_MARKER", str(marker))

    def cfg(kind: str, out: str):
        return config_from_dict({
            "input": {"format": "jsonl", "paths": [str(data / "*.jsonl")]},
            "output": {"path": str(tmp_path / out)},
            "executor": {"kind": kind, **({"max_parallel": 1} if kind == "slurm" else {})},
            "stages": [{"stage": "plugins.flaky:KillOnce"}, {"stage": "length", "min_chars": 20}]})

    with pytest.raises(UserError, match=r"phase main: task \d failed: FAILED \(signal 9"):
        run_pipeline(cfg("slurm", "run"))
    assert marker.exists()  # disarmed from now on: the resumed task is not killed again
    st = status_json(tmp_path / "run")
    assert st["state"] == "failed" and st["failed"][0]["slurm_state"].startswith("FAILED")
    run = run_pipeline(cfg("slurm", "run"), resume=True)
    assert run.manifest.exists()
    local = run_pipeline(cfg("local", "local"))
    assert shard_hashes(run.root) == shard_hashes(local.root)
    assert counts(run.root) == counts(local.root)


def test_status_ignores_a_job_id_now_used_by_another_job(slurm, tmp_path: Path):
    """Job ids restart at 1 when a cluster's state is wiped: a recorded id that now names
    someone else's job must not lend its state to the run's tasks."""
    data = jsonl_inputs(tmp_path / "in", 2)
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "p.yaml", data, run, {"kind": "local"},
                       [{"stage": "length", "min_chars": 20}])
    thresher("run", str(cfg), "--quiet")
    (run / "stats" / "main" / "task-00001.json").unlink()
    other = subprocess.run(["sbatch", "--parsable", "--hold", "--job-name=someone-else",
                            "--output=/dev/null", "--wrap", "true"], capture_output=True,
                           text=True, check=True).stdout.strip()
    try:
        job = {"id": other, "phase": "main", "tasks": "1", "offset": 1, "script": "",
               "name": "slurmtest.main"}
        (run / "slurm").mkdir()
        (run / "slurm" / "jobs.json").write_text(json.dumps(
            {"submissions": [{"time": "", "jobs": [job]}]}))
        st = status_json(run)
        assert st["phases"][0]["todo"] == 1 and st["phases"][0]["pending"] == 0
        assert st["state"] == "incomplete"
        job["name"] = "someone-else"  # the same record under the right name: now it counts
        (run / "slurm" / "jobs.json").write_text(json.dumps(
            {"submissions": [{"time": "", "jobs": [job]}]}))
        assert status_json(run)["phases"][0]["pending"] == 1
    finally:
        subprocess.run(["scancel", other], check=True)


def test_global_stages_on_slurm_are_byte_identical_to_local(slurm, tmp_path: Path):
    """A chain with two global stages (exact then MinHash dedup: 6 phases, steps with 3
    and 1 tasks) submitted as chained arrays gives the bytes of a local run."""
    from test_exact_dedup import make_corpus

    make_corpus(tmp_path / "in")
    local = run_pipeline(dedup_chain_config(tmp_path / "in", tmp_path / "local",
                                            {"kind": "local"}))
    run = run_pipeline(dedup_chain_config(tmp_path / "in", tmp_path / "slurm",
                                          {"kind": "slurm"}))
    assert shard_hashes(run.root) == shard_hashes(local.root)
    a, b = (json.loads(r.stats_json.read_text()) for r in (local, run))

    def books(stats):  # everything but timings
        return {k: (v["docs_in"], v["docs_out"], v["dropped"], v["errors"])
                for k, v in stats["stages"].items()}

    assert books(a) == books(b) and a["stages"]["minhash_dedup"]["dropped"]
    assert len(a["phases"]) == 6 and a["phases"].keys() == b["phases"].keys()


def test_demo_on_slurm_with_the_run_directory_on_s3(slurm, reference_run: Path,
                                                    tmp_path: Path, monkeypatch):
    """Shards, stats, logs and manifest go to s3:// (a real local S3 server; the jobs
    inherit its endpoint through sbatch's exported environment); only Slurm's own job
    scripts and output files stay local, in the spool directory."""
    from s3server import serving

    from pipelines.executors.slurm_queue import spool_dir
    from pipelines.rundir import RunDir

    monkeypatch.setenv("THRESHER_SLURM_SPOOL", str(tmp_path / "spool"))
    with serving(tmp_path / "moto.log", "slurm-runs") as srv:
        cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
        cfg["input"]["paths"] = [str(WARC_DIR / "*.warc.gz")]
        cfg["executor"] = {"kind": "slurm", "max_parallel": 2}
        (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg))
        url = "s3://slurm-runs/demo"
        proc = thresher("run", str(tmp_path / "demo.yaml"), "--output", url, "--wait")
        assert "funnel: demo" in proc.stdout
        client = srv.client()
        keys = [o["Key"] for o in client.list_objects_v2(
            Bucket="slurm-runs", Prefix="demo/")["Contents"]]
        got = {k[len("demo/"):]: hashlib.sha256(client.get_object(
            Bucket="slurm-runs", Key=k)["Body"].read()).hexdigest()
            for k in keys if k.startswith("demo/data/")}
        assert got == shard_hashes(reference_run)
        assert {"demo/manifest.json", "demo/slurm/jobs.json",
                "demo/logs/main/task-00000.log"} <= set(keys)
        st = json.loads(thresher("status", url, "--json").stdout)
        assert st["state"] == "finished"
        spool = spool_dir(RunDir.at(url))
        assert spool.is_relative_to(tmp_path / "spool")
        assert list((spool / "logs" / "main").glob("slurm-*.out"))
        assert list((spool / "slurm").glob("main.*.sh"))
