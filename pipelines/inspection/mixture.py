"""`thresher mixture RUN`: a run's domains as a small JSON file a trainer's data loader reads.

A domain is a value of the run's ``dataset`` column (``input.dataset``) or of ``language``.
Everything comes from the run's stats (nothing is recomputed): documents, characters and
tokens of each domain in the output, and its sampling weight, its share of the output's
tokens (of its characters when no ``count_tokens`` ran). When a ``rebalance`` stage ran,
each domain also gets its tokens before it (``unique_tokens``) and the ``epochs`` the
rebalancing gave it, and, if the targets were set per the same column, its ``target``
share and the ``unmet_tokens`` the ``max_epochs`` cap kept out.

Format (``version`` 1; keys marked * only when a rebalance stage ran)::

    {"format": "thresher-mixture", "version": 1,
     "run": NAME, "config_fingerprint": SHA256, "by": "dataset" | "language",
     "unit": "tokens" | "characters",        # what `weight` is a share of
     "total": {"documents": N, "characters": N, "tokens": N},
     "rebalance"*: {"stage": NAME, "max_epochs": X, "target_tokens": N | null},
     "domains": {DOMAIN: {"documents": N, "characters": N, "tokens": N,
                          "weight": SHARE,     # the domains' weights sum to 1
                          "unique_tokens"*: N, "epochs"*: X,
                          "target"*: SHARE | null, "unmet_tokens"*: N | null}}}

Domains are sorted by name. A loader samples domain d with probability ``weight``; with a
replicated rebalance (the default ``mode: replicate``) the shards already hold the copies,
so those weights are also each domain's share of one pass over the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import UserError
from pipelines.rundir import RunDir

FORMAT = "thresher-mixture"
VERSION = 1
BY = ("dataset", "language")


def mixture(run_dir: str | Path, by: str = "dataset") -> dict[str, Any]:
    """The mixture document of a finished run (see the module docstring)."""
    if by not in BY:
        raise UserError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    run = RunDir.at(run_dir)
    stats = run.load_stats()
    stages = stats["stages"]
    order = list(stages)
    last = stages[order[-1]]
    groups = last.get(f"by_{by}") or {}
    if not groups:
        hint = "set input.dataset in the config" if by == "dataset" else \
            "run langid (or another stage writing `language`)"
        raise UserError(f"{run.root}: the output has no `{by}` column to form domains ({hint})")
    counted = bool(last.get("tokens_out"))
    unit = "tokens" if counted else "characters"
    key = "tokens_out" if counted else "chars_out"
    total = sum(g[key] for g in groups.values())
    domains: dict[str, dict[str, Any]] = {}
    for name in sorted(groups):
        g = groups[name]
        domains[name] = {"documents": g["docs_out"], "characters": g["chars_out"],
                         "tokens": g["tokens_out"],
                         "weight": g[key] / total if total else 0.0}
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "run": stats.get("run"),
        "config_fingerprint": stats.get("config_fingerprint"), "by": by, "unit": unit,
        "total": {"documents": sum(d["documents"] for d in domains.values()),
                  "characters": sum(d["characters"] for d in domains.values()),
                  "tokens": sum(d["tokens"] for d in domains.values())},
    }
    rebalance = _last_rebalance(run, order)
    if rebalance is not None and rebalance.get("mode") == "weight":
        raise UserError(f"{run.root}: stage {rebalance.get('name') or 'rebalance'} ran with "
                        "`mode: weight`: its weights are a column of the shards, not in the "
                        "run's stats; `thresher mixture` reads runs rebalanced with `mode: "
                        "replicate` (the default)")
    if rebalance is not None:
        doc["rebalance"] = _rebalance_fields(stats, order, rebalance, by, domains)
    doc["domains"] = domains
    return doc


def _last_rebalance(run: RunDir, order: list[str]) -> dict[str, Any] | None:
    specs = [s for s in run.load_config_dict().get("stages", [])
             if s.get("stage") == "rebalance" and (s.get("name") or "rebalance") in order]
    return specs[-1] if specs else None


def _rebalance_fields(stats: dict, order: list[str], spec: dict, by: str,
                      domains: dict[str, dict[str, Any]]) -> dict[str, Any]:
    name = spec.get("name") or "rebalance"
    before = stats["stages"][order[order.index(name) - 1]].get(f"by_{by}") or {}
    targets = spec.get("targets") or {}
    per_column = spec.get("target_by", ["language"]) == [by] and bool(targets)
    metrics = stats.get("phases", {}).get(f"{name}.targets", {}).get("metrics", {})
    for d, row in domains.items():
        unique = (before.get(d) or {}).get("tokens_out", 0)
        row["unique_tokens"] = unique
        row["epochs"] = row["tokens"] / unique if unique else None
        row["target"] = targets.get(d) if per_column else None
        unmet = metrics.get(f"unmet:{d}") if per_column else None
        row["unmet_tokens"] = None if unmet is None else int(unmet)
    return {"stage": name, "max_epochs": spec.get("max_epochs", 4.0),
            "target_tokens": spec.get("target_tokens")}


def read_mixture(path: str | Path) -> dict[str, Any]:
    """A mixture file, checked: its format and version, and weights summing to 1."""
    import json

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read a mixture file: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise UserError(f"{path}: {FORMAT} version {doc.get('version')!r}; this thresher "
                        f"reads version {VERSION}")
    weights = [d["weight"] for d in doc["domains"].values()]
    if weights and abs(sum(weights) - 1) > 1e-9:
        raise UserError(f"{path}: the domains' weights sum to {sum(weights)!r}, not 1")
    return doc
