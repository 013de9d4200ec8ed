"""The compiled MinHash kernel (stages/dedup/minhash_kernel.c, minhash_native.py) against
its reference, the numpy path of stages/dedup/minhash_core.py: the same signatures, bit
for bit, on real multilingual and web text, crafted edge cases and generated strings,
under every normalization option. ``make install`` builds the kernel, so a checkout where
it is missing fails here rather than silently testing the numpy path twice."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from conftest import DATA, REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.dedup import minhash_core as core
from stages.dedup import minhash_native as native
from stages.dedup.minhash_core import MinHashSpec

SENTENCES = [json.loads(line)["text"] for line in
             (DATA / "lid" / "lingua-sentences-12lang.jsonl").read_text("utf-8").splitlines()]
UDHR = [json.loads(line)["text"] for line in
        (DATA / "multilingual" / "udhr-9lang.jsonl").read_text("utf-8").splitlines()]
with gzip.open(DATA / "quality" / "filter-docs.jsonl.gz", "rt", encoding="utf-8") as _f:
    WEB = [json.loads(line)["text"] for line in _f][:300]
CRAFTED = [
    "", " ", "!!!", "\u200b", "a", "a b", "a b c d", "a b c d e", "a b c d e f",
    "Hello, World! ２０１９ Ｃｕｐ\u00a0time", "  leading and trailing  ",
    "日本語のテキスト and english 混合 text", "ไทย ภาษา test ລາວ ខ្មែរ မြန်မာ",
    "zero\u200bwidth joi\u200dner soft\u00adhyphen\ufeffbom", "日\u200b本 語",
    "Σίσυφος ΣΊΣΥΦΟΣ ς straße STRASSE İstanbul ǅ ﬁne", "e\u0301 é ｶﾞ ㍿ ①②",
    "emoji 😀 🎉 and 𠀀𠀁 (plane 2) and \U000e0041 tag", "\ud800 lone surrogate \udfff",
    "tabs\tand\nnew\r\nlines\u2028here", "x" * 5000, "word " * 3000,
]
OPTIONS = [dict(), dict(lowercase=False), dict(punctuation_as_space=False),
           dict(normalize_digits=False), dict(unicode="none"), dict(unicode="NFC"),
           dict(unicode="NFD"), dict(unicode="NFKD"), dict(collapse_whitespace=False),
           dict(lowercase=False, punctuation_as_space=False, unicode="none",
                collapse_whitespace=False)]


def test_the_kernel_is_built_and_loaded():
    assert native.LIBRARY.exists(), "run `make install` (it compiles minhash_kernel.c)"
    assert native.available()


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in
                                                                    o.items()) or "default")
@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_word_signatures_equal_the_numpy_path(options, n):
    spec = MinHashSpec(n=n, bands=7, rows=3, seed=11, **options)
    texts = CRAFTED + SENTENCES[:200] + UDHR + WEB[:100]
    assert np.array_equal(core.signatures(texts, spec), core.signatures_numpy(texts, spec))


def test_fineweb_parameters_on_web_text_equal_the_numpy_path():
    spec = MinHashSpec(n=5, bands=14, rows=8, seed=1)
    sigs = core.signatures(WEB, spec)
    assert np.array_equal(sigs, core.signatures_numpy(WEB, spec))
    assert core.nonempty(sigs).sum() > 250  # real documents, not empty rows


def test_batches_larger_than_one_kernel_call_give_the_same_rows(monkeypatch):
    spec = MinHashSpec()
    whole = core.signatures(WEB, spec)
    monkeypatch.setattr(core, "_CHARS", 5000)  # many kernel calls, some of one long text
    assert np.array_equal(core.signatures(WEB, spec), whole)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet=st.sampled_from(
    list("ab AB.,!?-\t\n0123") + ["\u00a0", "\u200b", "\u00ad", "日", "本", "ไ", "ท",
                                  "ｅ", "Σ", "ς", "\u0301", "é", "😀", "ﬁ", "①"]),
    max_size=40), max_size=12), st.integers(1, 6), st.sampled_from(OPTIONS))
def test_generated_texts_equal_the_numpy_path(texts, n, options):
    spec = MinHashSpec(n=n, bands=4, rows=2, **options)
    assert np.array_equal(core.signatures(texts, spec), core.signatures_numpy(texts, spec))


def _column(texts: list[str | None], large: bool = False) -> pa.ChunkedArray:
    """``texts`` as an Arrow column of several chunks, one of them a slice (offset > 0)."""
    kind = pa.large_string() if large else pa.string()
    third = len(texts) // 3
    padded = pa.array(["not this one", *texts[third:2 * third]], kind).slice(1)
    return pa.chunked_array([pa.array(texts[:third], kind), padded,
                             pa.array(texts[2 * third:], kind)], kind)


VALID = [t for t in CRAFTED if "\ud800" not in t]  # Arrow strings hold no lone surrogate
MARKS = ["u\u0308ber fu\u0308r", "\u1100\u1161\u11a8 \u1100\u1161 \uac00\u11a8 jamo",
         "a\u0323\u0301 a\u0301\u0323 q\u0307\u0323", "ｶﾞｷﾞ ｶ\uff9e halfwidth voiced",
         "\u0958 \u0915\u093c nukta", "\u0cc6\u0cc2 \u0cca kannada", "\u212b \u0344 singles",
         "e\u0301 " * 400, "\u0f73 \u0f71\u0f72 tibetan", "\u09c7\u09be \u09cb bengali"]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in
                                                                    o.items()) or "default")
@pytest.mark.parametrize("n", [1, 5])
def test_signatures_from_arrow_utf8_equal_the_numpy_path(options, n):
    spec = MinHashSpec(n=n, bands=7, rows=3, seed=11, **options)
    texts = VALID + MARKS + SENTENCES[:200] + UDHR + WEB[:100]
    texts[3] = None  # a null is an empty text
    expected = core.signatures_numpy([t or "" for t in texts], spec)
    for large in (False, True):
        assert np.array_equal(core.column_signatures(_column(texts, large), spec), expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet=st.sampled_from(
    list("ab AB.,0") + ["\u00a0", "\u200b", "ｅ", "ς", "\u0301", "\u0323", "\u0308", "é",
                       "\u093c", "\u0915", "\u0929", "\u1100", "\u1161", "\u11a8", "\uac00",
                       "\u0cc6", "\u0cc2", "\uff76", "\uff9e", "\u212b", "\u0344", "\u0f73",
                       "😀", "ﬁ"]), max_size=30), min_size=1, max_size=10),
    st.integers(1, 4), st.sampled_from(OPTIONS))
def test_generated_marks_from_arrow_utf8_equal_the_numpy_path(texts, n, options):
    """Marks that compose, reorder or block one another: the quick check says Yes only
    where the text is in the form already."""
    spec = MinHashSpec(n=n, bands=4, rows=2, **options)
    expected = core.signatures_numpy(texts, spec)
    assert np.array_equal(core.column_signatures(pa.array(texts), spec), expected)
    assert np.array_equal(core.signatures(texts, spec), expected)


def test_the_composition_table_holds_every_primary_composite_of_the_code_space():
    """The whole code space: every primary composite is a pair of _Compositions (which
    scans planes 0-1), and its second character a Maybe of the quick check."""
    comp = native._compositions()
    pairs = dict(zip(comp.keys.tolist(), comp.values.tolist()))
    found = {}
    for c in range(0x110000):
        d = unicodedata.decomposition(chr(c))
        if d and d[0] != "<" and len(d.split()) == 2 \
                and unicodedata.normalize("NFC", chr(c)) == chr(c):
            first, second = (int(x, 16) for x in d.split())
            found[first << 21 | second] = c
    assert found == pairs and len(pairs) > 900
    assert {k & 0x1FFFFF for k in found} | {0x1161, 0x11A8, 0x11C2} <= comp.seconds


@pytest.mark.parametrize("form", ["NFC", "NFKC", "NFD", "NFKD"])
def test_every_character_normalizes_as_unicodedata_does(form):
    """Each code point of planes 0-1 alone, after a letter and before two marks (which
    reorder, compose or block) and after Hangul jamo: the kernel's normalization is
    unicodedata's."""
    spec = MinHashSpec(n=1, bands=2, rows=2, unicode=form, lowercase=False,
                       punctuation_as_space=False, normalize_digits=False,
                       collapse_whitespace=False)
    chars = [chr(c) for c in range(0x20000) if not 0xD800 <= c < 0xE000]
    texts = chars + ["a" + c + "\u0301\u0323" for c in chars] + ["\u1100" + c for c in chars] \
        + ["\u1100\u1161" + c for c in chars]
    expected = core.signatures_numpy(texts, spec)
    assert np.array_equal(core.column_signatures(pa.array(texts), spec), expected)
    assert np.array_equal(core.signatures(texts, spec), expected)  # from str: the same code


def test_bytes_that_are_not_utf8_fail_as_reading_them_would():
    data = b"fine text\xed\xa0\x80 a surrogate"
    column = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(
        np.array([0, 9, len(data)], np.int32).tobytes()), pa.py_buffer(data)])
    with pytest.raises(UnicodeDecodeError):
        column.to_pylist()
    with pytest.raises(UnicodeDecodeError):
        core.column_signatures(column, MinHashSpec())


def test_permutation_minima_equal_the_numpy_path():
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 40, 300)
    counts[::7] = 0  # documents with no shingle get EMPTY rows
    sh = rng.integers(0, 2**64, int(counts.sum()), dtype=np.uint64, endpoint=False)
    spec = MinHashSpec(bands=14, rows=8)
    got = core._minhash(sh, counts, spec)
    assert np.array_equal(got, core._minhash_numpy(sh, counts, spec))
    assert (got[counts == 0] == core.EMPTY).all()


def test_a_library_older_than_its_source_is_not_used(tmp_path, monkeypatch, caplog):
    edited = tmp_path / "minhash_kernel.c"
    edited.write_bytes(native.SOURCE.read_bytes() + b"/* edited */\n")
    monkeypatch.setattr(native, "SOURCE", edited)
    native.kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert native.kernel() is None
        assert "built from another version" in caplog.text
        spec = MinHashSpec()
        assert np.array_equal(core.signatures(WEB[:20], spec),
                              core.signatures_numpy(WEB[:20], spec))
    finally:
        monkeypatch.undo()
        native.kernel.cache_clear()
    assert native.available()


def test_the_numpy_path_can_be_chosen_and_a_missing_library_is_said_once(tmp_path):
    code = ("import logging; logging.basicConfig()\n"
            "from stages.dedup import minhash_native as n, minhash_core as c\n"
            "import sys; from pathlib import Path\n"
            "if len(sys.argv) > 1: n.LIBRARY = Path(sys.argv[1])\n"
            "print(n.available()); c.signatures(['a b c d e f'], c.MinHashSpec()); "
            "print(n.available())\n")
    env = {**os.environ, "THRESHER_MINHASH_KERNEL": "numpy"}
    chosen = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.split() == ["False", "False"] and chosen.stderr == ""
    missing = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none.so")], cwd=REPO,
                             capture_output=True, text=True, check=True)
    assert missing.stdout.split() == ["False", "False"]
    assert missing.stderr.count("not built") == 1


def test_threads_filling_the_tables_at_once_get_the_numpy_signatures():
    """ctypes runs the kernel without the GIL: table lookups of new code points by one
    thread must not fail or change another's signatures (fresh tables: a subprocess)."""
    code = ("import json, sys\n"
            "from concurrent.futures import ThreadPoolExecutor\n"
            "import numpy as np\n"
            "from stages.dedup import minhash_core as c\n"
            "texts = [json.loads(l)['text'] for l in open(sys.argv[1], encoding='utf-8')]\n"
            "spec = c.MinHashSpec()\n"
            "chunks = [texts[i::8] for i in range(8)]\n"
            "import pyarrow as pa\n"
            "def sigs(i):  # the str path and the UTF-8 path at once\n"
            "    t = chunks[i]\n"
            "    if i % 2:\n"
            "        return c.signatures(t, spec)\n"
            "    return c.column_signatures(pa.array(t), spec)\n"
            "with ThreadPoolExecutor(8) as pool:\n"
            "    got = list(pool.map(sigs, range(8)))\n"
            "ok = all(np.array_equal(g, c.signatures_numpy(t, spec))\n"
            "         for g, t in zip(got, chunks))\n"
            "print(ok)\n")
    out = subprocess.run([sys.executable, "-c", code,
                          str(DATA / "lid" / "lingua-sentences-12lang.jsonl")],
                         cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.parametrize("arch", ["x86-64", "x86-64-v3", "x86-64-v4"])
def test_every_instruction_set_gives_the_same_bits(arch, tmp_path, monkeypatch):
    """A cluster's nodes may pick different clones (target_clones): build each level on its
    own and compare its signatures with the numpy path's."""
    import platform
    import shutil

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-64 instruction levels")
    flags = set(open("/proc/cpuinfo").read().split()) if os.path.exists("/proc/cpuinfo") else set()
    needs = {"x86-64-v3": {"avx2", "bmi2", "fma"}, "x86-64-v4": {"avx512f", "avx512dq"}}
    if not needs.get(arch, set()) <= flags:
        pytest.skip(f"this CPU cannot run {arch} code")
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    assert cc, "no C compiler: `make install` needs one for the kernel"
    lib = tmp_path / f"kernel-{arch}.so"
    subprocess.run([cc, "-O3", "-fPIC", "-shared", f"-march={arch}", "-DTHR_NO_CLONES",
                    f'-DTHR_SOURCE="{native.source_tag()}"', "-o", str(lib),
                    str(native.SOURCE)], check=True, capture_output=True)
    monkeypatch.setattr(native, "LIBRARY", lib)
    native.kernel.cache_clear()
    try:
        assert native.available()
        texts = CRAFTED + SENTENCES[:300] + UDHR + WEB
        for spec in (MinHashSpec(), MinHashSpec(n=3, bands=9, rows=13, unicode="NFC")):
            expected = core.signatures_numpy(texts, spec)
            assert np.array_equal(core.signatures(texts, spec), expected)
            valid = [t for t in texts if "\ud800" not in t]
            assert np.array_equal(core.column_signatures(pa.array(valid), spec),
                                  core.signatures_numpy(valid, spec))
    finally:
        monkeypatch.undo()
        native.kernel.cache_clear()
