"""Build the decontamination test set: two evaluation-style sets and a web corpus in which
some of their items are planted, verbatim or edited, with a label per document.

- ``wiki-passages.jsonl`` (80 items, fields ``title``, ``context``): reading-comprehension
  style passages, the way SQuAD takes Wikipedia paragraphs: runs of 50-150 words of whole
  sentences without ``<unk>`` from paragraphs of WikiText-2's test split
  (../quality/wikitext-2-test.txt.xz), detokenised;
- ``inaugural-cloze.jsonl`` (80 items, fields ``context``, ``target``): LAMBADA-style cloze
  items, three consecutive sentences of a US inaugural address (nltk's ``inaugural``
  corpus, public domain) whose last word is the ``target``;
- ``corpus.jsonl.gz`` (320 documents): real web text (../quality/filter-docs.jsonl.gz, cut
  to 2,500 characters) into which, at a line end, is planted one of:

  ``verbatim`` the whole item; ``partial`` a window of 20-30 of its words; ``light`` the
  whole item lightly edited (case, punctuation and line breaks changed, one word in 25
  replaced): contaminated, and findable with 13-grams; ``paraphrase`` one word in 5
  replaced or dropped: contaminated in intent, but no 13 words in a row survive, so
  13-gram matching is expected to miss it (it is reported as its own row); ``same_article``
  a paragraph of the same WikiText article that is *not* an evaluation item (same names
  and topic, a hard negative); ``clean`` nothing.

  Each document carries ``category``, ``eval_set`` and ``item_id`` (null when clean).

Run from the repository root: ``python tests/data/decontam/make_decontam_set.py``
(deterministic; needs /work/shared/data/quality/nltk-inaugural.zip only to rebuild).
"""

from __future__ import annotations

import gzip
import json
import lzma
import random
import re
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
INAUGURAL = Path("/work/shared/data/quality/nltk-inaugural.zip")
N_ITEMS = 80
N_DOCS = 320
FILLERS = ["new", "great", "many", "other", "small", "local", "early", "public", "several",
           "later", "common", "strong", "open", "young", "recent"]


def detok(line: str) -> str:
    s = line.strip()
    for a, b in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" , ", ", "), (" . ", ". "),
                 (" ; ", "; "), (" : ", ": "), (" 's", "'s"), (" n't", "n't"), ("( ", "("),
                 (" )", ")"), (" ' ", "' ")):
        s = s.replace(a, b)
    s = re.sub(r'" (.*?) "', r'"\1"', s)
    return re.sub(r" ([.,;:!?])", r"\1", s)


def wiki_paragraphs() -> list[tuple[str, str]]:
    """(article title, paragraph) of WikiText-2 test, in order."""
    out, title = [], None
    text = lzma.decompress((DATA / "quality" / "wikitext-2-test.txt.xz").read_bytes()).decode()
    for line in text.splitlines():
        m = re.match(r"^ = ([^=].*) = $", line)
        if m:
            title = m.group(1).strip()
            continue
        if line.strip() and not line.strip().startswith("=") and title:
            out.append((title, clean_run(detok(line))))
    return out


def clean_run(paragraph: str) -> str:
    """The longest run of consecutive sentences without ``<unk>``, at most 150 words."""
    best: list[str] = []
    run: list[str] = []
    for sent in re.split(r"(?<=[.!?]) ", paragraph):
        if "<unk>" in sent:
            run = []
            continue
        run.append(sent)
        while len(" ".join(run).split()) > 150:
            run.pop(0)
        if len(" ".join(run)) > len(" ".join(best)):
            best = list(run)
    return " ".join(best)


def inaugural_items(rng: random.Random) -> list[dict]:
    items = []
    with zipfile.ZipFile(INAUGURAL) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".txt"))
        rng.shuffle(names)
        for name in names:
            text = z.read(name).decode("utf-8", "replace")
            sents = re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text).strip())
            taken: set[int] = set()
            for _ in range(8):
                i = rng.randrange(max(1, len(sents) - 3))
                passage = " ".join(sents[i:i + 3])
                words = passage.rstrip(".!?").split(" ")
                if not 40 <= len(words) <= 110 or not words[-1].isalpha() or \
                        any(abs(i - j) < 3 for j in taken):
                    continue
                taken.add(i)
                items.append({"id": f"{name.split('/')[-1][:-4]}-{i}",
                              "context": " ".join(words[:-1]), "target": words[-1]})
                if len(taken) == 2 or len(items) == N_ITEMS:
                    break
            if len(items) == N_ITEMS:
                break
    return items


def light_edit(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for i in range(len(words)):
        r = rng.random()
        if r < 0.04:
            words[i] = rng.choice(FILLERS)
        elif r < 0.10:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].lower()
        elif r < 0.14:
            words[i] = words[i].strip(",.;:") + rng.choice(["", ",", " -", ";"])
    out = " ".join(words)
    return out.replace(". ", ".\n", 2)


def paraphrase(text: str, rng: random.Random) -> str:
    """Every fifth word replaced or dropped: at most four original words in a row."""
    out = []
    for i, w in enumerate(text.split(" ")):
        if i % 5 == 2:
            if rng.random() < 0.6:
                out.append(rng.choice(FILLERS))
        else:
            out.append(w)
    return " ".join(out)


def base_texts() -> list[str]:
    out = []
    with gzip.open(DATA / "quality" / "filter-docs.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            if len(t) < 600:
                continue
            cut = t.rfind("\n", 0, 2500) if len(t) > 2500 else len(t)
            out.append(t[:cut if cut > 300 else 2500])
    return out


def plant(text: str, sentence: str, rng: random.Random) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines) + 1)
    return "\n".join(lines[:i] + [sentence] + lines[i:])


def main() -> None:
    rng = random.Random(18)
    paras = wiki_paragraphs()
    good = [i for i, (_, p) in enumerate(paras) if 50 <= len(p.split()) <= 150]
    chosen = sorted(rng.sample(good, N_ITEMS))
    wiki = [{"id": f"wiki-{k:03d}", "title": paras[i][0], "context": paras[i][1]}
            for k, i in enumerate(chosen)]
    chosen_set = set(chosen)
    titles = {paras[i][0] for i in chosen}
    siblings = [p for i, (t, p) in enumerate(paras) if t in titles and i not in chosen_set and
                len(p.split()) >= 40]
    cloze = inaugural_items(rng)
    for name, rows in (("wiki-passages.jsonl", wiki), ("inaugural-cloze.jsonl", cloze)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    bases = base_texts()
    rng.shuffle(bases)
    cats = (["clean"] * 120 + ["same_article"] * 30 + ["verbatim"] * 45 + ["partial"] * 45 +
            ["light"] * 45 + ["paraphrase"] * 35)
    rng.shuffle(cats)
    docs = []
    for n, (cat, base) in enumerate(zip(cats, bases)):
        row = {"id": f"doc-{n:04d}", "category": cat, "eval_set": None, "item_id": None}
        text = base
        if cat == "same_article":
            text = plant(base, rng.choice(siblings), rng)
        elif cat != "clean":
            if rng.random() < 0.5:
                item = rng.choice(wiki)
                row["eval_set"], full = "wiki", item["context"]
            else:
                item = rng.choice(cloze)
                row["eval_set"], full = "cloze", f"{item['context']} {item['target']}."
            row["item_id"] = item["id"]
            words = full.split(" ")
            if cat == "verbatim":
                piece = full
            elif cat == "partial":
                s = rng.randrange(max(1, len(words) - 30))
                piece = " ".join(words[s:s + rng.randint(20, 30)])
            elif cat == "light":
                piece = light_edit(full, rng)
            else:
                piece = paraphrase(full, rng)
            text = plant(base, piece, rng)
        row["text"] = text
        docs.append(row)
    with gzip.GzipFile(HERE / "corpus.jsonl.gz", "wb", mtime=0) as gz:
        for d in docs:
            gz.write((json.dumps(d, ensure_ascii=False) + "\n").encode())
    print(f"{len(wiki)} wiki passages, {len(cloze)} cloze items, {len(docs)} documents")


if __name__ == "__main__":
    main()
