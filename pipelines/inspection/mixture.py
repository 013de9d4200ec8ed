"""`thresher mixture RUN`: a run's domains as a small JSON file a trainer's data loader reads.

A domain is a value of the run's ``dataset`` column (``input.dataset``) or of ``language``.
Documents, characters and tokens of each domain in the output come from the run's stats
(the same figures as ``thresher stats RUN --by dataset --json``: the last stage's
``by_dataset``), and so does the sampling weight of a run without a ``rebalance`` stage or
rebalanced with ``mode: replicate`` (the default): a domain's share of the output's tokens
(of its characters when no ``count_tokens`` ran), since the shards already hold the copies.
A run rebalanced with ``mode: weight`` keeps every document once and writes its sampling
weight to a ``weight`` column instead; then ``weighted_tokens`` (and
``weighted_documents``, ``weighted_characters``) sum ``weight`` x tokens over the domain's
documents in the output shards (read a row group at a time: the ``weight``, token,
domain and text columns; math.fsum sums, the same for any worker count),
and the domain's ``weight`` is its share of the weighted tokens (characters).

When a ``rebalance`` stage ran, each domain also gets its tokens before it
(``unique_tokens``) and the ``epochs`` the rebalancing gave it (tokens, or weighted tokens,
over unique tokens), and, if the targets were set per the same column, its ``target``
share and the ``unmet_tokens`` the ``max_epochs`` cap kept out.

Format (``version`` 1; keys marked * only when a rebalance stage ran, ** only when it ran
with ``mode: weight``)::

    {"format": "thresher-mixture", "version": 1,
     "run": NAME, "config_fingerprint": SHA256, "by": "dataset" | "language",
     "unit": "tokens" | "characters",        # what `weight` is a share of
     "total": {"documents": N, "characters": N, "tokens": N,
               "weighted_documents"**: X, "weighted_characters"**: X,
               "weighted_tokens"**: X},
     "rebalance"*: {"stage": NAME, "mode": "replicate" | "weight", "max_epochs": X,
                    "target_tokens": N | null},
     "domains": {DOMAIN: {"documents": N, "characters": N, "tokens": N,
                          "weighted_documents"**: X,  # sum of the documents' weights
                          "weighted_characters"**: X, "weighted_tokens"**: X,
                          "weight": SHARE,     # the domains' weights sum to 1
                          "unique_tokens"*: N, "epochs"*: X,
                          "target"*: SHARE | null, "unmet_tokens"*: N | null}}}

Domains are sorted by name. A loader samples domain d with probability ``weight``. With
``mode: replicate`` those weights are also each domain's share of one pass over the
output; with ``mode: weight`` a loader that also samples documents within a domain by
their ``weight`` column gets the same shares.
"""

from __future__ import annotations

import math
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
        weighted = _weighted(run, stats, by, counted)
        missing = sorted(set(domains) - set(weighted))
        if missing:  # the shards do not hold what the stats say they hold
            raise UserError(f"{run.root}: domain {missing[0]!r} of the run's stats has no "
                            "rows in its output shards")
        for d, row in domains.items():
            row.update({f"weighted_{k}": v for k, v in weighted[d].items()})
        wkey = "weighted_tokens" if counted else "weighted_characters"
        wtotal = math.fsum(row[wkey] for row in domains.values())
        for row in domains.values():
            row["weight"] = row[wkey] / wtotal if wtotal else 0.0
        for k in ("documents", "characters", "tokens"):
            doc["total"][f"weighted_{k}"] = math.fsum(r[f"weighted_{k}"]
                                                      for r in domains.values())
    if rebalance is not None:
        doc["rebalance"] = _rebalance_fields(stats, order, rebalance, by, domains)
    doc["domains"] = domains
    return doc


def _weighted(run: RunDir, stats: dict, by: str, counted: bool) -> dict[str, dict[str, float]]:
    """Per domain: the sums of ``weight``, weight x characters and weight x tokens over
    the rows of the output shards (math.fsum per row group, then over row groups)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.io.files import parquet_file
    from pipelines.schema import content_column
    from pipelines.stats import TOKENS

    parts: dict[str, dict[str, list]] = {}
    for shard in stats["output"]["shards"]:
        path = shard["path"]
        if not path.endswith(".parquet"):
            raise UserError(f"{run.root}: shard {path} is not Parquet; `thresher mixture` "
                            "reads the `weight` column of runs written with output.format: "
                            "parquet")
        f = parquet_file(run.root / path)
        names = f.schema_arrow.names
        if "weight" not in names:
            raise UserError(f"{run.root}: shard {path} has no `weight` column (dropped by "
                            "output.drop_columns?); `thresher mixture` needs it for a run "
                            "rebalanced with `mode: weight`")
        text = content_column(f.schema_arrow.empty_table())
        cols = [c for c in (by, "weight", TOKENS if counted else None, text)
                if c is not None and c in names]
        for t in f.iter_batches(columns=cols):  # a row group at a time: memory per batch
            if not t.num_rows:
                continue
            w = pc.fill_null(t.column("weight"), 0.0).to_numpy(zero_copy_only=False)
            zeros = np.zeros(len(w))
            chars = pc.utf8_length(t.column(text)).to_numpy(zero_copy_only=False) \
                if text in cols else zeros
            toks = pc.fill_null(t.column(TOKENS), 0).to_numpy(zero_copy_only=False) \
                if TOKENS in cols else zeros
            groups = pc.fill_null(t.column(by).cast(pa.string()), "unknown").to_numpy(
                zero_copy_only=False) if by in cols else np.full(len(w), "unknown", object)
            for g in np.unique(groups).tolist():
                m = groups == g
                p = parts.setdefault(g, {"documents": [], "characters": [], "tokens": []})
                p["documents"].append(math.fsum(w[m].tolist()))
                p["characters"].append(math.fsum((w[m] * chars[m]).tolist()))
                p["tokens"].append(math.fsum((w[m] * toks[m]).tolist()))
    # sums of per-batch sums: the batches are the shards' row groups, the same whatever
    # the worker count (the shards are byte-identical), so the figures are too
    return {g: {k: math.fsum(v) for k, v in p.items()} for g, p in parts.items()}


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
        row["epochs"] = row.get("weighted_tokens", row["tokens"]) / unique if unique else None
        row["target"] = targets.get(d) if per_column else None
        unmet = metrics.get(f"unmet:{d}") if per_column else None
        row["unmet_tokens"] = None if unmet is None else int(unmet)
    return {"stage": name, "mode": spec.get("mode", "replicate"),
            "max_epochs": spec.get("max_epochs", 4.0),
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
