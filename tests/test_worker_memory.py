"""A process that moves on to another phase lets the previous phase's stages go
(pipelines/task.py, ``_load``): an in-process run (``workers: 1``, a phase of one task)
and a Ray worker run the phases one after another, and a stage's set-up can hold a
lot (the UT1 blocklist is about 900 MB as a Python set; docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import REPO


def test_a_process_lets_the_previous_phases_stages_go(tmp_path: Path):
    # url_filter holds its blocklist as a set: 2,000,000 domains, about 200 MB
    (tmp_path / "block.txt").write_text(
        "".join(f"d{i:07d}.example.org\n" for i in range(2_000_000)))
    with open(tmp_path / "in.jsonl", "w") as f:
        for i in range(300):
            f.write(json.dumps({"id": str(i), "text": f"document {i % 100} of the set",
                                "url": f"https://site{i}.example.com/page"}) + "\n")
    cfg = {"name": "memory",
           "input": {"format": "jsonl", "paths": [str(tmp_path / "in.jsonl")]},
           "output": {"path": str(tmp_path / "run")},
           "executor": {"kind": "local", "workers": 1},  # every task in the command's process
           "stages": [{"stage": "url_filter", "blocklist_file": str(tmp_path / "block.txt")},
                      {"stage": "exact_dedup", "partitions": 2}]}
    (tmp_path / "memory.yaml").write_text(yaml.safe_dump(cfg))
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(tmp_path / "memory.yaml"),
                    "--quiet"], cwd=REPO, check=True, capture_output=True)
    recs = [json.loads(p.read_text()) for p in (tmp_path / "run" / "stats").glob("*/task-*.json")]
    assert len({r["pid"] for r in recs}) == 1 and len(recs) == 4  # main, 2 group, apply
    main = next(r for r in recs if r["phase"] == "main")
    later = [r for r in recs if r["phase"] != "main"]
    # main's task began with the blocklist loaded; the later phases' tasks without it
    assert main["start_rss_mb"] > 250
    assert max(r["start_rss_mb"] for r in later) < main["start_rss_mb"] - 120, (main, later)
