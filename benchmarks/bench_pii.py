"""Precision and recall of the `pii` stage, side by side with datatrove's PIIFormatter.

    .venv/bin/python benchmarks/bench_pii.py [--set tests/data/pii/pii-labelled.jsonl.gz]

The labelled set (tests/data/pii/make_pii_set.py) is real web text with planted, labelled
addresses and false-positive traps. Both detectors see the same documents:

- thresher: ``stages.pii.pii.find_pii`` with the stage's defaults (e-mail + public IP, as
  FineWeb), then with every kind switched on;
- datatrove: ``PIIFormatter().format`` with unique sentinel placeholders; what it replaced
  is recovered from its output (the kept text between the sentinels is found again
  in the input), so its public behaviour is measured, not a re-implementation of it; its
  time is that of ``format`` plus this recovery.

A found span is a true positive when it overlaps a labelled span of the same kind
(``exact`` also counts those whose boundaries are the label's). Recall is per labelled
item; the table also gives recall per sub-kind and the traps that were replaced.

Speed (``--repeats N``, default 5): each side anonymises all documents in one pass, the
way it runs in a pipeline (thresher: ``find_pii`` then ``replace`` with FineWeb's
placeholders; datatrove: ``PIIFormatter().format``); one untimed warm-up pass each
(regex compilation, first-call costs), then N passes alternating, the order rotating.
Every pass of a side must give the same texts as its first (checked by sha256); the
script prints every pass, the median and range of each side, and the ratio of medians.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.pii.pii import find_pii, replace  # noqa: E402

DEFAULT_SET = ROOT / "tests" / "data" / "pii" / "pii-labelled.jsonl.gz"
EMAIL_SENTINEL, IP_SENTINEL = "\ue000E\ue000", "\ue000I\ue000"


def load(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def thresher_spans(text: str, **kinds) -> list[tuple[int, int, str]]:
    return [(m.start, m.end, m.kind) for m in find_pii(text, **kinds)]


def datatrove_spans(fmt, text: str) -> list[tuple[int, int, str]]:
    """Where ``fmt`` replaced text: its output is the input's kept pieces with sentinels
    between them (private-use characters, absent from the input), so each kept piece is
    found again in the input after the previous one; what lies between was replaced."""
    out = fmt.format(text)
    parts = re.split(f"({EMAIL_SENTINEL}|{IP_SENTINEL})", out)
    assert text.startswith(parts[0])
    pos, spans = len(parts[0]), []
    for i in range(1, len(parts), 2):
        kind = "email" if parts[i] == EMAIL_SENTINEL else "ip"
        piece = parts[i + 1]
        nxt = len(text) - len(piece) if i + 2 == len(parts) else text.find(piece, pos + 1)
        assert nxt > pos and text[nxt:nxt + len(piece)] == piece
        spans.append((pos, nxt, kind))
        pos = nxt + len(piece)
    return spans


def score(docs: list[dict], predict, kinds: set[str]) -> dict:
    tp = fp = exact = 0
    found = Counter()
    total = Counter()
    trap_hits = Counter()
    fp_examples = []
    seconds = 0.0
    for d in docs:
        text = d["text"]
        t0 = time.perf_counter()
        pred = predict(text)
        seconds += time.perf_counter() - t0
        gold = [s for s in d["spans"] if s["kind"] in kinds or s["kind"] == "email_obfuscated"]
        for s in gold:
            total[s["sub"]] += 1
        hit_gold = set()
        for a, b, k in pred:
            match = [i for i, s in enumerate(gold)
                     if a < s["end"] and s["start"] < b and
                     (s["kind"] == k or (s["kind"] == "email_obfuscated" and k == "email"))]
            if match:
                tp += 1
                hit_gold.update(match)
                if any(gold[i]["start"] == a and gold[i]["end"] == b for i in match):
                    exact += 1
            else:
                fp += 1
                cat = "base text"
                for t in d["traps"]:
                    at = text.find(t["sentence"])
                    if at >= 0 and a < at + len(t["sentence"]) and at < b:
                        cat = t["category"]
                trap_hits[cat] += 1
                if len(fp_examples) < 8:
                    fp_examples.append(f"{cat}: {text[a:b]!r}")
        for i in hit_gold:
            found[gold[i]["sub"]] += 1
    n_gold = sum(total.values())
    n_found = sum(found.values())
    return {"tp": tp, "fp": fp, "exact": exact, "gold": n_gold, "found": n_found,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": n_found / n_gold if n_gold else 1.0,
            "by_sub": {k: (found[k], total[k]) for k in sorted(total)},
            "trap_hits": dict(trap_hits), "fp_examples": fp_examples, "seconds": seconds}


def show(name: str, r: dict) -> None:
    print(f"\n== {name}")
    print(f"precision {r['precision']:.3f} ({r['tp']}/{r['tp'] + r['fp']})   "
          f"recall {r['recall']:.3f} ({r['found']}/{r['gold']})   "
          f"exact boundaries {r['exact']}/{r['tp']}   time {r['seconds']:.2f} s")
    print("recall by sub-kind: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in r["by_sub"].items()))
    print("false positives by trap: " + (", ".join(f"{k} {v}" for k, v in
                                                    sorted(r["trap_hits"].items())) or "none"))
    for e in r["fp_examples"]:
        print("   ", e)


def one_pass(texts: list[str], anonymise: Callable[[str], str]) -> tuple[float, float, str]:
    """Wall s, CPU s and the sha256 of the anonymised texts of one pass over ``texts``."""
    h = hashlib.sha256()
    w0, c0 = time.perf_counter(), time.process_time()
    out = [anonymise(t) for t in texts]
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    for t in out:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return wall, cpu, h.hexdigest()


def speed(texts: list[str], sides: dict[str, Callable[[str], str]], repeats: int) -> None:
    """Alternate the sides ``repeats`` times after a warm-up; medians, ranges, the ratio."""
    print(f"\n== speed: {len(texts)} documents a pass, {repeats} passes a side, alternating "
          f"(load average {os.getloadavg()[0]:.2f} before)")
    first = {name: one_pass(texts, fn)[2] for name, fn in sides.items()}  # warm-up
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu, digest = one_pass(texts, sides[name])
            if digest != first[name]:
                raise SystemExit(f"{name}: pass {r + 1} gave other texts than the first")
            runs[name].append((wall, cpu))
            print(f"  pass {r + 1} {name}: {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU")
    med = {}
    for name in names:
        walls = [w for w, _ in runs[name]]
        cpus = [c for _, c in runs[name]]
        med[name] = statistics.median(cpus)
        print(f"  {name}: median {statistics.median(walls) * 1000:.1f} ms wall "
              f"({min(walls) * 1000:.1f}-{max(walls) * 1000:.1f}), "
              f"{med[name] * 1000:.1f} ms CPU ({min(cpus) * 1000:.1f}-{max(cpus) * 1000:.1f}); "
              f"{len(texts) / med[name]:,.0f} documents/CPU s")
    if len(names) == 2:
        a, b = names
        print(f"  {b} / {a} (median CPU): {med[b] / med[a]:.2f}x   "
              f"(load average {os.getloadavg()[0]:.2f} after)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, default=DEFAULT_SET)
    ap.add_argument("--repeats", type=int, default=5, help="timed passes a side (>= 3)")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be at least 3")
    docs = load(args.set)
    n_traps = Counter(t["category"] for d in docs for t in d["traps"])
    print(f"{args.set.name}: {len(docs)} documents, "
          f"{sum(len(d['spans']) for d in docs)} planted items, {sum(n_traps.values())} traps "
          f"({', '.join(f'{k} {v}' for k, v in sorted(n_traps.items()))})")
    default = {"email", "ip"}
    show("thresher pii (defaults: e-mail + public IP)",
         score(docs, lambda t: thresher_spans(t), default))
    try:
        from datatrove.pipeline.formatters import PIIFormatter
    except ImportError:
        fmt = None
        print("\n== datatrove PIIFormatter: datatrove is not installed, skipped")
    else:
        fmt = PIIFormatter(email_replacement=EMAIL_SENTINEL, ip_replacement=IP_SENTINEL)
        show("datatrove PIIFormatter (defaults, FineWeb's)",
             score(docs, lambda t: datatrove_spans(fmt, t), default))
    sides = {"thresher pii": lambda t: replace(t, find_pii(t))}
    if fmt is not None:
        sides["datatrove PIIFormatter"] = lambda t: fmt.format(t)
    speed([d["text"] for d in docs], sides, args.repeats)
    every = {"email", "ip", "phone", "iban", "credit_card"}
    show("thresher pii (phones, ibans, credit_cards on)",
         score(docs, lambda t: thresher_spans(t, phones=True, ibans=True, credit_cards=True),
               every))


if __name__ == "__main__":
    main()
