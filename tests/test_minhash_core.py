"""The MinHash core (stages/dedup/minhash_core.py, stages/text/normalize.py).

References: datasketch 2.0.0 for the Jaccard estimates and the (bands, rows) choice,
a plain union-find for connected components, exact Jaccard on shingle sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.dedup import minhash_core as core
from stages.dedup.minhash_core import MinHashSpec
from stages.text import normalize as tn
from stages.text import unicode_data

SPEC = MinHashSpec()
SENTENCES = [json.loads(line)["text"] for line in
             (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text("utf-8").splitlines()]


# ---------------------------------------------------------------- spec and parameters
@pytest.mark.parametrize("kwargs", [dict(unit="token"), dict(n=0), dict(bands=0), dict(rows=-1),
                                    dict(n=2.5), dict(seed=-1), dict(seed=1 << 64),
                                    dict(unicode="NFX"), dict(n=True)])
def test_spec_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MinHashSpec(**kwargs)


def test_spec_is_hashable_and_counts_permutations():
    assert hash(MinHashSpec()) == hash(MinHashSpec())
    assert MinHashSpec(bands=9, rows=13).num_perm == 117


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("num_perm", [64, 128])
def test_params_for_threshold_match_datasketch(threshold, num_perm):
    from datasketch.lsh import _optimal_param

    assert core.params_for_threshold(threshold, num_perm) == \
        _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_params_for_threshold_weights_and_errors():
    from datasketch.lsh import _optimal_param

    assert core.params_for_threshold(0.8, 112, 0.2, 0.8) == _optimal_param(0.8, 112, 0.2, 0.8)
    for bad in [dict(threshold=0.0), dict(threshold=1.0), dict(num_perm=0),
                dict(fp_weight=-1.0), dict(fp_weight=0.0, fn_weight=0.0)]:
        with pytest.raises(ValueError):
            core.params_for_threshold(**{"threshold": 0.8, "num_perm": 112, **bad})


# ---------------------------------------------------------------- normalization, tokens
@pytest.mark.parametrize("text,expected", [
    ("", ""),
    ("   \t\n", ""),
    ("!!! ... ???", ""),
    (" a  b ", "a b"),
    ("Ｔｈｅ  2019 Cup!", "the 0000 cup"),                # NFKC fullwidth, digits, punctuation
    ("wo\u00adrd zero\u200bwidth \ufeffbom", "word zerowidth bom"),  # format chars deleted
    ("x \u200b y", "x y"),                              # a deleted char does not keep 2 spaces
    ("“Quoted” — dash; ﬁne", "quoted dash fine"),           # curly quotes, em dash, ligature
    ("A\u00a0B\u2003C\r\nD", "a b c d"),                # no-break and em spaces, CRLF
    ("Café ＣＡＦÉ cafe\u0301", "café café café"),       # composed, fullwidth, combining
    ("٣ apples ३", "0 apples 0"),                      # Arabic-Indic, Devanagari digits
    ("a_b", "a b"),
    ("ΣΊΣΥΦΟΣ σίσυφος İstanbul Straße", "σίσυφοσ σίσυφοσ istanbul straße"),  # case fold
])
def test_normalize_default(text, expected):
    assert core.normalize(text, SPEC) == expected


def test_normalize_options_off():
    raw = MinHashSpec(lowercase=False, punctuation_as_space=False, normalize_digits=False,
                      unicode="none", collapse_whitespace=False)
    text = " Ａb,\u200b  12! "
    assert core.normalize(text, raw) == text
    assert core.tokens(text, raw) == ["Ａb,\u200b", "12!"]  # split on whitespace only
    assert core.normalize("Ａ b", MinHashSpec(unicode="NFC")) == "ａ b"  # NFC keeps width


def test_normalize_batch_equals_one_by_one():
    texts = ["", "  Hello,  World! ", "!!!", "日本語のテキスト", "x\u200b y ", " ", "a"] + \
        SENTENCES[::37]
    norm = tn.normalize_batch(texts, SPEC)
    assert [norm.text(i) for i in range(len(texts))] == [core.normalize(t, SPEC) for t in texts]


def _normalized_first(texts: list[str], spec: MinHashSpec) -> list[str]:
    import unicodedata

    pre = [unicodedata.normalize(spec.unicode, t) for t in texts]
    return [core.normalize(t, spec) for t in pre]


@pytest.mark.parametrize("form", ["NFKC", "NFC", "NFD", "NFKD"])
def test_normal_form_is_skipped_only_when_it_would_change_nothing(form):
    spec = MinHashSpec(unicode=form)
    texts = SENTENCES + ["e\u0301", "\u09c7\u09be", "\u1100\u1161\u11a8", "ｶﾞ", "ﬁ", "한국어"]
    assert [core.normalize(t, spec) for t in texts] == _normalized_first(texts, spec)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_normal_form_skip_on_random_text(text):
    assert core.normalize(text, SPEC) == _normalized_first([text], SPEC)[0]


def test_words_split_scripts_without_spaces_per_character():
    assert core.tokens("日本語のテキスト、Hello world!", SPEC) == \
        ["日", "本", "語", "の", "テ", "キ", "ス", "ト", "hello", "world"]
    assert core.tokens("สวัสดี ผม", SPEC)[:3] == ["ส", "ว", "ั"]
    assert core.tokens("नमस्ते दुनिया", SPEC) == ["नमस्ते", "दुनिया"]  # vowel signs stay in words
    assert core.tokens("l'été, c’est ça", SPEC) == ["l", "été", "c", "est", "ça"]


def test_char_unit_shingles_include_spaces():
    spec = MinHashSpec(unit="char", n=3)
    assert core.tokens(" Ab,  c ", spec) == ["a", "b", " ", "c"]
    assert len(core.shingle_hashes(" Ab,  c ", spec)) == 2
    assert len(core.shingle_hashes("ab", spec)) == 1  # shorter than n: one shingle


def _eager_tables(options: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The reference: whole tables of every code point, built in one loop as
    stages/text/normalize.py did before it filled them in as code points occur."""
    import unicodedata

    cls = np.full(0x110000, tn.WORD, np.uint8)
    for cp in (*range(0x40000), *range(0xE0000, 0xF0000)):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if ch.isspace():
            cls[cp] = tn.SPACE
        elif cat[0] in "PS" or cat == "Cc":
            cls[cp] = tn.PUNCT
        elif cat == "Cf":
            cls[cp] = tn.FORMAT
        elif cat == "Nd":
            cls[cp] = tn.DIGIT
    for lo, hi in unicode_data._NO_SPACE_SCRIPTS:
        block = cls[lo:hi + 1]
        block[block == tn.WORD] = tn.SOLO
    lowercase, punctuation_as_space, normalize_digits, delete_format, collapse = options
    cp = np.arange(0x110000, dtype=np.uint32)
    if lowercase:
        for c in range(0x20000):
            ch = chr(c)
            fold = ch.casefold()
            low = fold if len(fold) == 1 else ch.lower()
            if low != ch:
                cp[c] = ord(low[0])
    if normalize_digits:
        cp[cls == tn.DIGIT] = ord("0")
    cls[cls == tn.DIGIT] = tn.WORD
    if punctuation_as_space:
        cp[cls == tn.PUNCT] = ord(" ")
        cls[cls == tn.PUNCT] = tn.SPACE
    if collapse:
        cp[cls == tn.SPACE] = ord(" ")
    if not delete_format:
        cls[cls == tn.FORMAT] = tn.WORD
    return cp, cls


@pytest.mark.parametrize("prefill", [True, False])
@pytest.mark.parametrize("options", [(True, True, True, True, True),
                                     (False, False, False, False, False)])
def test_tables_filled_as_code_points_occur_equal_whole_tables(options, prefill):
    """Every code point of planes 0-3 and 14, and every 97th of the rest, in batches
    (so code points are met both new and already looked up); tables started from the
    installed Unicode data (planes 0-3) or from nothing."""
    want_cp, want_cls = _eager_tables(options)
    everything = np.concatenate([np.arange(0x40000), np.arange(0xE0000, 0xF0000),
                                 np.arange(0x40000, 0x110000, 97)]).astype(np.uint32)
    lookup = tn._Tables(*options, prefill=prefill)
    for batch in (everything[::7], everything, everything[::-1]):
        cp, cls = lookup(batch)
        assert np.array_equal(cp, want_cp[batch]) and np.array_equal(cls, want_cls[batch])


# ---------------------------------------------------------------- shingles and signatures
def test_many_short_documents_in_one_batch():
    texts = ["a", "b c", "", "d e f g h i", "j k l", "m"] * 50
    flat, sizes = core.shingle_sets(texts, SPEC)
    assert sizes.tolist() == [1, 1, 0, 2, 1, 1] * 50
    for i in range(6):
        assert np.array_equal(np.split(flat, np.cumsum(sizes)[:-1])[i],
                              core.shingle_hashes(texts[i], SPEC))


def test_short_and_empty_documents():
    five = MinHashSpec(n=5)
    assert len(core.shingle_hashes("one two three", five)) == 1
    assert np.array_equal(core.shingle_hashes("One, two; THREE!", five),
                          core.shingle_hashes("one two three", five))
    assert not np.array_equal(core.shingle_hashes("one two three", five),
                              core.shingle_hashes("one two", five))
    assert len(core.shingle_hashes("a b c d e f", five)) == 2
    texts = ["", "...", "   ", "one two three", "one two three", "!!"]
    sigs = core.signatures(texts, five)
    assert core.nonempty(sigs).tolist() == [False, False, False, True, True, False]
    assert np.all(sigs[[0, 1, 2, 5]] == core.EMPTY)
    band, key, doc = core.band_rows(sigs, np.arange(len(texts), dtype=np.uint64) + 100, five)
    assert set(doc.tolist()) == {103, 104}
    assert core.candidate_edges(band, key, doc).tolist() == [[103, 104]]
    assert core.estimate_jaccard(sigs[0], sigs[1]) == 0.0
    assert core.jaccard(np.zeros(0, np.uint64), np.zeros(0, np.uint64)) == 0.0


def test_signatures_are_the_same_for_any_batching(monkeypatch):
    texts = SENTENCES[:120] + ["", "short", "!!!"]
    whole = core.signatures(texts, SPEC)
    # tiny internal chunks: many normalization and permutation chunks per call
    monkeypatch.setattr(core, "_CHARS", 700)
    monkeypatch.setattr(core, "_CHUNK", 64)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, len(texts)), 9, replace=False))
    parts = [core.signatures(list(p), SPEC) for p in np.split(np.array(texts, object), cuts)]
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(core.signatures(texts[5:6], SPEC)[0], whole[5])


def test_hashes_do_not_depend_on_the_process():
    """No Python hash(): another interpreter with another hash seed gives the same bits."""
    text = SENTENCES[0] + " " + SENTENCES[200]
    code = ("import sys; from stages.dedup import minhash_core as c; "
            f"print(c.signatures([{text!r}], c.MinHashSpec())[0].tolist())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True).stdout
    assert json.loads(out) == core.signatures([text], SPEC)[0].tolist()


def test_signature_bits_are_pinned():
    """Changing these bits changes every stored dedup decision: do it on purpose only."""
    sig = core.signatures(["The quick brown fox jumps over the lazy dog again"], SPEC)[0]
    assert sig.shape == (112,)
    assert [hex(v) for v in sig[:3].tolist()] == \
        ["0x32b0155603f3df1b", "0x1eaee8a41094d1de", "0x3803c9d312f2efed"]


def _pairs(n_pairs: int, seed: int) -> list[tuple[str, str]]:
    """Overlapping windows of real sentences: true Jaccard spread over [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_pairs):
        start = int(rng.integers(0, len(SENTENCES) - 60))
        size = int(rng.integers(5, 30))
        shift = int(rng.integers(0, size + 1))
        out.append((" ".join(SENTENCES[start:start + size]),
                    " ".join(SENTENCES[start + shift:start + shift + size])))
    return out


def test_jaccard_estimates_agree_with_datasketch_and_exact():
    from datasketch import MinHash

    spec = MinHashSpec(n=3)
    exact, ours, theirs = [], [], []
    for a, b in _pairs(300, seed=1):
        sa, sb = core.shingle_hashes(a, spec), core.shingle_hashes(b, spec)
        exact.append(core.jaccard(sa, sb))
        sig = core.signatures_from_shingles([sa, sb], spec)
        ours.append(core.estimate_jaccard(sig[0], sig[1]))
        ma, mb = MinHash(num_perm=spec.num_perm, seed=1), MinHash(num_perm=spec.num_perm, seed=1)
        ma.update_batch([h.tobytes() for h in sa])
        mb.update_batch([h.tobytes() for h in sb])
        theirs.append(ma.jaccard(mb))
    exact, ours, theirs = map(np.array, (exact, ours, theirs))
    assert exact.min() < 0.1 and exact.max() > 0.9 and np.mean((exact > 0.3) & (exact < 0.7)) > 0.2
    sd = np.sqrt(exact * (1 - exact) / spec.num_perm)  # binomial standard deviation
    # unbiased, the binomial spread, and as close to the truth as datasketch
    assert abs(np.mean(ours - exact)) < 0.01
    assert np.sqrt(np.mean((ours - exact) ** 2)) < 1.2 * np.sqrt(np.mean(sd ** 2))
    assert np.sqrt(np.mean((ours - exact) ** 2)) < 1.2 * np.sqrt(np.mean((theirs - exact) ** 2))
    assert np.mean(np.abs(ours - exact) > 3 * sd + 1e-9) < 0.02
    assert np.mean(np.abs(ours - theirs)) < 0.06
    # identical sets estimate exactly 1, disjoint sets exactly 0 for ours
    sig = core.signatures(["alpha beta gamma delta", "alpha beta gamma delta", "x y z w"], spec)
    assert core.estimate_jaccard(sig[0], sig[1]) == 1.0
    assert core.estimate_jaccard(sig[0], sig[2]) == 0.0


def test_exact_jaccard():
    a = np.array([1, 2, 3, 4], np.uint64)
    assert core.jaccard(a, np.array([3, 4, 5, 6, 3], np.uint64)) == pytest.approx(2 / 6)
    assert core.jaccard(a, a) == 1.0
    with pytest.raises(ValueError):
        core.estimate_jaccard(np.zeros(3, np.uint64), np.zeros(4, np.uint64))


# ---------------------------------------------------------------- bands and buckets
def test_band_keys():
    sigs = core.signatures(["a b c d e f g", "a b c d e f g", "a b c d e f h", ""], SPEC)
    keys = core.band_keys(sigs, SPEC)
    assert keys.shape == (4, SPEC.bands) and keys.dtype == np.uint64
    assert np.array_equal(keys[0], keys[1])
    # equal minima in two bands still give two different keys
    same = np.zeros((1, SPEC.num_perm), np.uint64)
    assert len(set(core.band_keys(same, SPEC)[0].tolist())) == SPEC.bands
    # a band's key changes when any one of its minima changes
    for j in range(SPEC.rows):
        other = same.copy()
        other[0, j] = 1
        assert core.band_keys(other, SPEC)[0, 0] != core.band_keys(same, SPEC)[0, 0]
        assert core.band_keys(other, SPEC)[0, 1] == core.band_keys(same, SPEC)[0, 1]


def test_bucket_partition_is_a_function_of_the_key():
    keys = core.band_keys(core.signatures(SENTENCES, SPEC), SPEC)
    part = core.bucket_partition(keys, 7)
    assert part.shape == keys.shape and part.min() >= 0 and part.max() < 7
    assert np.array_equal(core.bucket_partition(keys[::-1], 7), part[::-1])
    counts = np.bincount(part.reshape(-1), minlength=7)
    assert counts.min() > 0.8 * counts.mean()  # every band spreads over all partitions
    assert len(set(part[:, 0].tolist())) == 7
    with pytest.raises(ValueError):
        core.bucket_partition(keys, 0)


def test_candidate_edges_star_to_the_smallest_document():
    band = np.array([0, 0, 0, 0, 1, 1, 0], np.int32)
    key = np.array([5, 5, 5, 9, 5, 5, 5], np.uint64)
    doc = np.array([30, 10, 20, 40, 20, 30, 10], np.uint64)  # doc 10 twice in one bucket
    edges = core.candidate_edges(band, key, doc)
    assert edges.dtype == np.uint64
    assert edges.tolist() == [[10, 20], [10, 30], [20, 30]]
    assert core.candidate_edges(band[:0], key[:0], doc[:0]).shape == (0, 2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 2**64 - 1)),
                max_size=80),
       st.integers(1, 5), st.randoms(use_true_random=False))
def test_candidate_edges_do_not_depend_on_order_or_partitioning(rows, n_parts, rnd):
    rows = list(dict.fromkeys(rows))  # a document appears once per (band, key)
    band = np.array([r[0] for r in rows], np.int32)
    key = np.array([r[1] for r in rows], np.uint64)
    doc = np.array([r[2] for r in rows], np.uint64)
    whole = core.candidate_edges(band, key, doc)
    order = list(range(len(rows)))
    rnd.shuffle(order)
    assert np.array_equal(core.candidate_edges(band[order], key[order], doc[order]), whole)
    # partitioned by bucket: the union of the partitions' edges, de-duplicated
    part = core.bucket_partition(key ^ band.astype(np.uint64), n_parts)
    pieces = [core.candidate_edges(band[part == p], key[part == p], doc[part == p])
              for p in range(n_parts)]
    merged = np.unique(np.concatenate(pieces), axis=0) if len(whole) else whole
    assert np.array_equal(merged.reshape(-1, 2), whole)
    # same components as all pairs in each bucket
    ref = {}
    for (b, k, d) in rows:
        ref.setdefault((b, k), []).append(d)
    pairs = [(min(g), d) for g in ref.values() for d in g if d != min(g)]
    assert sorted(set(pairs)) == [tuple(e) for e in whole.tolist()]


# ---------------------------------------------------------------- connected components
def _union_find(edges) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for u, v in edges:
        a, b = find(u), find(v)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in parent}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=120),
       st.lists(st.integers(0, 2**64 - 1), min_size=41, max_size=41, unique=True))
def test_connected_components_match_union_find(pairs, ids):
    edges = np.array([(ids[a], ids[b]) for a, b in pairs], np.uint64).reshape(-1, 2)
    nodes, labels = core.connected_components(edges)
    ref = _union_find(edges.tolist())
    assert nodes.tolist() == sorted(ref)
    assert labels.tolist() == [ref[x] for x in nodes.tolist()]
    assert nodes.dtype == labels.dtype == np.uint64


def test_connected_components_on_large_random_graphs_and_long_paths():
    rng = np.random.default_rng(7)
    ids = np.unique(rng.integers(0, 2**64 - 1, 30_000, dtype=np.uint64, endpoint=True))
    edges = ids[rng.integers(0, len(ids), (25_000, 2))]
    nodes, labels = core.connected_components(edges)
    ref = _union_find(edges.tolist())
    assert labels.tolist() == [ref[x] for x in nodes.tolist()]
    # a path visiting 50k nodes in random order: one component labelled by its minimum
    path = rng.permutation(ids)
    nodes, labels = core.connected_components(np.stack([path[:-1], path[1:]], axis=1))
    assert np.array_equal(nodes, np.sort(path)) and set(labels.tolist()) == {int(path.min())}
    empty_nodes, empty_labels = core.connected_components(np.zeros((0, 2), np.uint64))
    assert len(empty_nodes) == len(empty_labels) == 0


def test_near_duplicates_end_to_end_on_real_sentences():
    """Documents built from real sentences: edited copies cluster, unrelated ones do not."""
    rng = np.random.default_rng(3)
    base = [" ".join(SENTENCES[i:i + 12]) for i in range(0, 348, 12)]  # 29 documents
    docs = list(base)
    for i in range(0, len(base), 3):  # a light edit of every third document
        words = base[i].split()
        j = int(rng.integers(0, len(words)))
        docs.append(" ".join(words[:j] + ["inserted"] + words[j:]).upper())
    sigs = core.signatures(docs, SPEC)
    keys = np.arange(len(docs), dtype=np.uint64) * np.uint64(1 << 32)
    edges = core.candidate_edges(*core.band_rows(sigs, keys, SPEC))
    nodes, labels = core.connected_components(edges)
    found = {(int(a) >> 32, int(b) >> 32) for a, b in zip(labels, nodes) if a != b}
    assert found == {(i, len(base) + k) for k, i in enumerate(range(0, len(base), 3))}
