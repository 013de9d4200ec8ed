"""A near-duplicate evaluation set made from real documents with logged edits.

    .venv/bin/python benchmarks/neardup_set.py --docs 20000 --seed 0 --out /tmp/neardup

writes ``docs.jsonl`` (id, text, family, parent, seed document, source, edits),
``pairs.jsonl`` (every pair with exact Jaccard >= --min-pair on the default
MinHash shingling) and ``summary.json``. The same arguments give the same bytes.

There is no labelled near-duplicate corpus offline, so near duplicates are made the
way the web makes them, from real text (sources in /work/shared/data/README.md):

- seed documents: trafilatura main text of the trafilatura evaluation pages (de,
  en, es, fr, pl, ...), the gold article bodies of the ScrapingHub benchmark and of
  Mozilla Readability's pages (without its lorem-ipsum fixtures), 20 CCNet
  documents (all from tests/data/quality/filter-docs.jsonl.gz), WikiText-2
  articles cut at section boundaries, and documents of 8-40 Leipzig sentences in
  each of lingua's 75 languages (zh, ja, th without spaces included);
- a family is a seed and its variants; a variant applies one to three logged edits
  to the seed or to an earlier variant (so chains exist): real boilerplate added
  or removed, paragraphs dropped, moved or truncated, 1-20% of words substituted,
  deleted, inserted or mistyped, Unicode/whitespace/case noise, a block spliced in
  from another family's document, or an exact copy; for ScrapingHub and Readability
  seeds a variant may be the *whole page* text of the same URL (real menus and
  footers, from html2txt);
- hard negatives: some families are pages of one "site": their seed is wrapped in
  the real header and footer of a page of that site, so different articles share
  boilerplate.

Ground truth is not the family label but the exact Jaccard similarity of every
pair of documents on the same shingling as the dedup (neardup_truth.py): edits can
make a variant unrelated to its seed, and boilerplate can make two unrelated pages
similar.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import lzma
import random
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The seed files (WikiText-2, Leipzig sentences) are copied from ../shared/data into
# tests/data with the same layout (see tests/data/NOTICE.md), so a clone has them.
SHARED = REPO / "tests" / "data"
QUALITY_DOCS = REPO / "tests" / "data" / "quality" / "filter-docs.jsonl.gz"

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


# ---------------------------------------------------------------- seeds
@dataclass
class Seed:
    """A real document; full-page sources also carry their page's boilerplate."""

    id: str
    source: str
    text: str
    full: str | None = None     # whole-page text of the same URL (html2txt)
    head: str | None = None     # boilerplate before the article in ``full``
    tail: str | None = None     # boilerplate after it


def _squash(s: str) -> str:
    return " ".join(s.split())


def _split_page(body: str, full: str) -> tuple[str, str] | None:
    """(header, footer) of a whole-page text around its article, if the article's
    first and last words are found in it."""
    page, words = _squash(full), _squash(body).split()
    if len(words) < 30:
        return None
    start = page.find(" ".join(words[:8]))
    end = page.rfind(" ".join(words[-8:]))
    if start < 0 or end < start:
        return None
    return page[:start].strip(), page[end + len(" ".join(words[-8:])):].strip()


def quality_seeds(path: Path = QUALITY_DOCS) -> list[Seed]:
    if not path.exists():
        raise SystemExit(f"{path} is missing: it holds the extracted seed texts "
                         f"(tests/data/make_quality_docs.py builds it)")
    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    full = {r["id"].split(":", 1)[1]: r["text"] for r in rows
            if r["kind"] in ("sh-full", "read-full")}
    seeds = []
    for r in rows:
        kind, name = r["kind"], r["id"].split(":", 1)[1]
        if kind not in ("traf-main", "sh-gold", "read-main", "cc-head"):
            continue
        if "lorem ipsum" in r["text"].lower():
            continue  # Readability's synthetic fixtures are near-duplicates of each other
        seed = Seed(r["id"], kind, r["text"])
        if kind in ("sh-gold", "read-main") and name in full:
            seed.full = full[name]
            split = _split_page(r["text"], full[name])
            if split:
                seed.head, seed.tail = split
        seeds.append(seed)
    return seeds


def _detok_wikitext(line: str) -> str:
    line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    line = line.replace("<unk>", "")
    line = re.sub(r" ([.,;:!?)\]'])", r"\1", line)
    line = re.sub(r"([(\[]) ", r"\1", line)
    return re.sub(r" {2,}", " ", line).strip()


def _cut(paras: list[str], max_chars: int) -> list[list[str]]:
    """Consecutive paragraphs grouped into parts of at most max_chars (or one paragraph)."""
    parts: list[list[str]] = [[]]
    for para in paras:
        if parts[-1] and sum(map(len, parts[-1])) + len(para) > max_chars:
            parts.append([])
        parts[-1].append(para)
    return [p for p in parts if p]


def wikitext_seeds(shared: Path = SHARED, max_chars: int = 6000) -> list[Seed]:
    """WikiText-2 valid+test articles, cut into parts of whole sections <= max_chars."""
    seeds = []
    for split in ("valid", "test"):
        lines = lzma.open(shared / "quality" / f"wikitext-2-{split}.txt.xz", "rt",
                          encoding="utf-8").read().split("\n")
        articles: list[tuple[str, list[str]]] = []
        for line in lines:
            if re.fullmatch(r" = [^=].* = ", line):
                articles.append((line.strip(" ="), []))
            elif line.strip() and articles:
                heading = re.fullmatch(r" (= )+(.*?)( =)+ ", line)
                articles[-1][1].append(heading.group(2) if heading else _detok_wikitext(line))
        i = 0
        for title, paras in articles:
            for part in _cut(paras, max_chars):
                text = "\n".join(part)
                if len(text.split()) >= 50:
                    seeds.append(Seed(f"wiki-{split}:{i}:{title}", "wikitext", text))
                i += 1
    return seeds


def lingua_seeds(shared: Path = SHARED, seed: int = 0) -> list[Seed]:
    """Documents of 8-40 Leipzig sentences, one language each (shuffled, not sorted)."""
    rng = random.Random(f"lingua:{seed}")
    out = []
    with tarfile.open(shared / "lid" / "lingua-language-testdata.tar.xz") as tar:
        files = {m.name.rsplit("/", 1)[1][:-4]: tar.extractfile(m).read().decode("utf-8")
                 for m in tar if "/sentences/" in m.name}  # in archive order: one pass
    for lang in sorted(files):
        sents = [s for s in files[lang].splitlines() if s.strip()]
        rng.shuffle(sents)
        joiner = "" if lang in ("zh", "ja") else " "
        i = 0
        while i < len(sents):
            k = rng.randint(8, 40)
            paras = [joiner.join(sents[j:j + 4]) for j in range(i, min(i + k, len(sents)), 4)]
            out.append(Seed(f"lingua-{lang}:{i}", f"lingua-{lang}", "\n".join(paras)))
            i += k
    return out


def load_seeds(shared: Path = SHARED, quality_docs: Path = QUALITY_DOCS) -> list[Seed]:
    return quality_seeds(quality_docs) + wikitext_seeds(shared) + lingua_seeds(shared)


# ---------------------------------------------------------------- documents and edits
@dataclass
class Page:
    """A document as edits see it: optional boilerplate around paragraphs."""

    paras: list[str]
    head: str = ""
    tail: str = ""
    noise: list[dict] = field(default_factory=list)  # applied to the final text

    def text(self) -> str:
        text = "\n".join(p for p in [self.head, *self.paras, self.tail] if p)
        for spec in self.noise:
            text = _apply_noise(text, spec, random.Random(spec["seed"]))
        return text


def _page_of(text: str) -> Page:
    paras = [p for p in text.split("\n") if p.strip()]
    if len(paras) < 4:  # a flattened page: sentence groups act as paragraphs
        sents = re.split(r"(?<=[.!?。！？])\s+", " ".join(paras))
        paras = [" ".join(sents[i:i + 3]) for i in range(0, len(sents), 3)]
    return Page([p for p in paras if p.strip()])


def _spaceless(text: str) -> bool:
    return len(text.split()) * 12 < len(text)


def edit_tokens(page: Page, rng: random.Random, rate: float) -> dict:
    """Substitute, delete, insert or mistype words (characters in spaceless scripts)."""
    counts = {"sub": 0, "del": 0, "ins": 0, "typo": 0}
    spaceless = _spaceless("\n".join(page.paras))
    units = [list(p) if spaceless else p.split() for p in page.paras]
    vocab = [u for us in units for u in us] or ["x"]
    for us in units:
        out = []
        for u in us:
            if rng.random() >= rate:
                out.append(u)
                continue
            op = rng.choice(("sub", "del", "ins", "typo") if not spaceless else
                            ("sub", "del", "ins"))
            counts[op] += 1
            if op == "sub":
                out.append(rng.choice(vocab))
            elif op == "ins":
                out += [u, rng.choice(vocab)]
            elif op == "typo" and len(u) > 1:
                i = rng.randrange(len(u) - 1)
                out.append(u[:i] + u[i + 1] + u[i] + u[i + 2:])
            elif op == "typo":
                out.append(u + u)
        us[:] = out
    page.paras = ["".join(us) if spaceless else " ".join(us) for us in units]
    page.paras = [p for p in page.paras if p.strip()] or page.paras[:1]
    return {"op": "tokens", "rate": round(rate, 3), **counts}


def drop_paragraphs(page: Page, rng: random.Random, frac: float) -> dict:
    k = min(len(page.paras) - 1, max(1, round(frac * len(page.paras))))
    gone = sorted(rng.sample(range(len(page.paras)), k)) if k > 0 else []
    page.paras = [p for i, p in enumerate(page.paras) if i not in set(gone)]
    return {"op": "drop_paragraphs", "dropped": gone}


def move_paragraphs(page: Page, rng: random.Random, moves: int) -> dict:
    done = []
    for _ in range(moves if len(page.paras) > 1 else 0):
        i, j = rng.randrange(len(page.paras)), rng.randrange(len(page.paras))
        page.paras.insert(j, page.paras.pop(i))
        done.append([i, j])
    return {"op": "move_paragraphs", "moves": done}


def truncate(page: Page, rng: random.Random, keep: float) -> dict:
    """Syndication cut: keep the first ``keep`` share of the words (characters if spaceless)."""
    spaceless = _spaceless("\n".join(page.paras))
    units = [list(p) if spaceless else p.split() for p in page.paras]
    budget, out = round(keep * sum(map(len, units))), []
    for us in units:
        if budget <= 0:
            break
        out.append(("" if spaceless else " ").join(us[:budget]))
        budget -= len(us)
    page.paras = out or page.paras[:1]
    return {"op": "truncate", "keep": round(keep, 3)}


def add_boilerplate(page: Page, rng: random.Random, pool: list[Seed]) -> dict:
    """Real menus/footers of another page, before and/or after the text."""
    donor = rng.choice(pool)
    where = rng.choice(("head", "tail", "both"))
    head = _words_slice(donor.head, rng) if where in ("head", "both") else ""
    tail = _words_slice(donor.tail, rng) if where in ("tail", "both") else ""
    page.head = " ".join(x for x in (head, page.head) if x)
    page.tail = " ".join(x for x in (page.tail, tail) if x)
    return {"op": "add_boilerplate", "from": donor.id, "where": where,
            "words": len(head.split()) + len(tail.split())}


def _words_slice(text: str | None, rng: random.Random, max_words: int = 120) -> str:
    words = (text or "").split()
    if len(words) <= max_words:
        return " ".join(words)
    start = rng.randrange(len(words) - max_words)
    return " ".join(words[start:start + max_words])


def remove_boilerplate(page: Page, rng: random.Random) -> dict:
    which = rng.choice([w for w in ("head", "tail") if getattr(page, w)])
    words = len(getattr(page, which).split())
    setattr(page, which, "")
    return {"op": "remove_boilerplate", "which": which, "words": words}


def splice(page: Page, rng: random.Random, frac: float, donor_id: str, donor: str) -> dict:
    """Replace a block of paragraphs by a block of another document's paragraphs."""
    other = _page_of(donor).paras
    k = max(1, round(frac * len(page.paras)))
    at = rng.randrange(len(page.paras) - k + 1) if len(page.paras) > k else 0
    take = other[:k] if len(other) <= k else other[(s := rng.randrange(len(other) - k)):s + k]
    page.paras[at:at + k] = take
    return {"op": "splice", "from": donor_id, "at": at, "paragraphs": k}


NOISE_KINDS = ("fullwidth", "nbsp", "zero_width", "quotes", "decompose", "case", "spacing")


def _apply_noise(text: str, spec: dict, rng: random.Random) -> str:
    """One kind of invisible-to-readers change at ``rate`` of its eligible spots."""
    kind, rate = spec["kind"], spec["rate"]
    if kind == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" and rng.random() < rate else c
                       for c in text)
    if kind == "nbsp":
        return "".join("\u00a0" if c == " " and rng.random() < rate else c for c in text)
    if kind == "zero_width":
        return "".join(c + "\u200b" if c.isalpha() and rng.random() < rate / 5 else c
                       for c in text)
    if kind == "quotes":
        table = {'"': "\u201c", "'": "\u2019", "\u201c": '"', "\u201d": '"', "\u2019": "'",
                 "-": "\u2013"}
        return "".join(table[c] if c in table and rng.random() < rate else c for c in text)
    if kind == "decompose":
        import unicodedata

        return "".join(unicodedata.normalize("NFD", c) if rng.random() < rate else c
                       for c in text)
    if kind == "case":
        lines = text.split("\n")
        return "\n".join(ln.upper() if rng.random() < rate else ln for ln in lines)
    if kind == "spacing":
        return "".join(rng.choice(("  ", "\t", " \n", "\r\n")) if c == " " and
                       rng.random() < rate / 3 else c for c in text)
    raise ValueError(kind)


def add_noise(page: Page, rng: random.Random) -> dict:
    kinds = rng.sample(NOISE_KINDS, rng.randint(1, 3))
    for k in kinds:
        page.noise.append({"kind": k, "rate": round(rng.uniform(0.05, 0.5), 3),
                           "seed": rng.randrange(1 << 32)})
    return {"op": "noise", "kinds": page.noise[-len(kinds):]}


# ---------------------------------------------------------------- families
@dataclass
class Doc:
    key: int
    family: int
    parent: int | None
    seed: Seed
    page: Page
    edits: list[dict]

    def text(self) -> str:
        return self.page.text()


class Generator:
    """Builds ``n_docs`` documents family by family from shuffled seeds."""

    OPS = (("tokens", 30), ("drop_paragraphs", 14), ("move_paragraphs", 8), ("truncate", 12),
           ("add_boilerplate", 12), ("remove_boilerplate", 8), ("noise", 18), ("splice", 8),
           ("copy", 5))

    def __init__(self, seeds: list[Seed], n_docs: int, seed: int = 0, spread: float = 1.6):
        self.rng = random.Random(f"neardup:{seed}")
        self.seeds = sorted(seeds, key=lambda s: s.id)
        self.rng.shuffle(self.seeds)
        self.n_docs = n_docs
        self.templates = [s for s in self.seeds if s.head is not None and
                          5 <= len(s.head.split()) + len(s.tail.split()) <= 400]
        self.sites = self.templates[:25]
        self.docs: list[Doc] = []
        # variants per family so that the seeds last: mean docs per seed ~ n_docs/seeds
        self.mean_variants = max(2.0, spread * n_docs / max(1, len(self.seeds)))

    def run(self) -> list[Doc]:
        for family, s in enumerate(self.seeds):
            if len(self.docs) >= self.n_docs:
                break
            self._family(family, s)
        return self.docs[:self.n_docs]

    def _family(self, family: int, s: Seed) -> None:
        rng = self.rng
        article = not s.source.startswith("lingua")
        page = _page_of(s.text)
        edits: list[dict] = [{"op": "seed"}]
        if article and self.sites and len(s.text.split()) >= 300 and rng.random() < 0.15:
            site = rng.choice(self.sites)
            page.head, page.tail = site.head or "", site.tail or ""
            edits.append({"op": "site_page", "site": site.id})
        members = [self._add(family, None, s, page, edits)]
        if rng.random() >= (0.7 if article else 0.3):
            return  # a singleton
        n_var = max(1, min(12, round(rng.expovariate(1 / self.mean_variants))))
        for _ in range(n_var):
            if s.full is not None and rng.random() < 0.15:
                members.append(self._add(family, members[0].key, s, _page_of(s.full),
                                         [{"op": "whole_page"}]))
                continue
            parent = members[0] if rng.random() < 0.7 else rng.choice(members)
            new = copy.deepcopy(parent.page)
            n_ops = rng.choices((1, 2, 3), (50, 35, 15))[0]
            ops = [self._op(new, rng, family) for _ in range(n_ops)]
            members.append(self._add(family, parent.key, s, new, [o for o in ops if o]))

    def _op(self, page: Page, rng: random.Random, family: int) -> dict | None:
        names, weights = zip(*self.OPS)
        op = rng.choices(names, weights)[0]
        if op == "remove_boilerplate" and not (page.head or page.tail):
            op = "add_boilerplate"
        if op == "add_boilerplate" and not self.templates:
            op = "tokens"
        if op == "tokens":
            return edit_tokens(page, rng, rng.uniform(0.01, 0.20))
        if op == "drop_paragraphs":
            return drop_paragraphs(page, rng, rng.uniform(0.05, 0.4))
        if op == "move_paragraphs":
            return move_paragraphs(page, rng, rng.randint(1, 3))
        if op == "truncate":
            return truncate(page, rng, rng.uniform(0.5, 0.95))
        if op == "add_boilerplate":
            return add_boilerplate(page, rng, self.templates)
        if op == "remove_boilerplate":
            return remove_boilerplate(page, rng)
        if op == "noise":
            return add_noise(page, rng)
        if op == "splice":
            donors = [d for d in self.docs[-300:] if d.parent is None and d.family != family]
            if not donors:
                return edit_tokens(page, rng, rng.uniform(0.01, 0.20))
            donor = rng.choice(donors)
            return splice(page, rng, rng.uniform(0.15, 0.6), f"doc:{donor.key}", donor.text())
        return {"op": "copy"}

    def _add(self, family: int, parent: int | None, s: Seed, page: Page,
             edits: list[dict]) -> Doc:
        doc = Doc(len(self.docs), family, parent, s, page, edits)
        self.docs.append(doc)
        return doc


def generate(n_docs: int, seed: int = 0, seeds: list[Seed] | None = None) -> list[dict]:
    """The set as rows, in shuffled order: id, text, family, parent, seed, source, edits
    (this variant's own), noise (every noise kind in the text, inherited ones too)."""
    seeds = seeds if seeds is not None else load_seeds()
    spread = 1.6  # larger sets need more variants per family: retry with more, from scratch
    while len(docs := Generator(seeds, n_docs, seed, spread).run()) < n_docs:
        if spread > 10:  # every family at its 12-variant cap
            raise SystemExit(f"only {len(docs)} documents from {len(seeds)} seeds; ask for fewer")
        spread *= 1.25
    order = list(range(len(docs)))
    random.Random(f"order:{seed}").shuffle(order)
    new_id = {docs[k].key: i for i, k in enumerate(order)}
    rows = []
    for k in order:
        d = docs[k]
        rows.append({"id": f"d{new_id[d.key]:06d}", "text": d.text(),
                     "family": f"f{d.family:05d}",
                     "parent": None if d.parent is None else f"d{new_id[d.parent]:06d}",
                     "seed": d.seed.id, "source": d.seed.source, "edits": d.edits,
                     "noise": sorted({n["kind"] for n in d.page.noise})})
    for r in rows:  # splice donors by their final ids
        for e in r["edits"]:
            if e.get("op") == "splice":
                e["from"] = f"d{new_id[int(e['from'].split(':')[1])]:06d}"
    return rows


# ---------------------------------------------------------------- CLI
def main() -> None:
    from neardup_truth import exact_pairs  # benchmarks/ is on sys.path

    from stages.dedup.minhash_core import MinHashSpec

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--min-pair", type=float, default=0.3,
                    help="write pairs with exact Jaccard at least this")
    a = ap.parse_args()
    rows = generate(a.docs, a.seed)
    spec = MinHashSpec()
    truth = exact_pairs([r["text"] for r in rows], spec, min_jaccard=a.min_pair)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "docs.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(a.out / "pairs.jsonl", "w", encoding="utf-8") as f:
        for i, j, jac in zip(truth.a.tolist(), truth.b.tolist(), truth.jaccard.tolist()):
            f.write(json.dumps({"a": rows[i]["id"], "b": rows[j]["id"],
                                "jaccard": round(jac, 6)}) + "\n")
    summary = {"docs": len(rows), "seed": a.seed, "spec": spec.__dict__,
               "pairs_written": len(truth.a), "min_pair": a.min_pair, **truth.summary()}
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
