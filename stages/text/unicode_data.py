"""The Unicode properties dedup's tables read, for planes 0-3, computed once at install.

The normalization tables (``normalize.tables``) and the MinHash kernel's tables (quick
check, decompositions, combining classes, composition pairs: ``minhash_native``) are
filled from the running Python's ``unicodedata``. Filled as code points first occur, a
process paid a Python call per new code point and per table (and ran the documents that
held one twice): about 0.13 s on 2,000 generated documents and 0.27 s on 20,000, a sixth
and a tenth of those MinHash runs. ``make install`` writes these properties for every
code point below ``END`` to ``_unicode_data.npz`` (``python -m stages.text.unicode_data``),
and the tables start from it; code points beyond stay looked up as they occur.

The file records the ``unicodedata`` version and a hash of the code that computes it
(this module, which also defines the character classes normalize.py uses): one from
another Python or older than that code is not used (the tables then fill as before: same
output, slower), and tests/test_unicode_data.py holds prefilled and looked-up tables equal
for every code point.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipelines.io.files import read_bytes, write_bytes_atomic
from pipelines.lazy import lazy_module

np = lazy_module("numpy")

log = logging.getLogger(__name__)

WORD, SPACE, PUNCT, FORMAT, DIGIT, SOLO = range(6)  # character classes (normalize.py)
_NO_SPACE_SCRIPTS = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF),
                     (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F))
END = 0x40000  # planes 0-3: the BMP, the SMP and the CJK ideographs of planes 2 and 3
FORMS = ("NFC", "NFKC", "NFD", "NFKD")
DECOMPOSED = ("NFD", "NFKD")
PATH = Path(__file__).with_name("_unicode_data.npz")


def source_tag() -> str:
    """What the file must record to be used: the unicodedata version and a hash of the
    code computing it."""
    h = hashlib.sha256(unicodedata.unidata_version.encode())
    h.update(read_bytes(Path(__file__)))
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class UnicodeData:
    """Per code point below ``END``: ``char_class`` and ``case_fold`` (below),
    ``combining`` (canonical combining class), ``own[form]`` (the character is its own
    normal form), ``decomposed[form]`` for NFD and NFKD as (lengths, concatenated code
    points); and the primary composites as sorted (first << 21 | second) ``pair_keys``
    with their ``pair_values``."""

    char_class: np.ndarray   # uint8
    case_fold: np.ndarray    # uint32
    combining: np.ndarray    # uint8
    own: dict                # form -> bool array
    decomposed: dict         # NFD/NFKD -> (uint8 lengths, uint32 code points)
    pair_keys: np.ndarray    # uint64
    pair_values: np.ndarray  # uint32

    def decomposition_starts(self, form: str) -> np.ndarray:
        lens, _ = self.decomposed[form]
        return np.cumsum(lens) - lens


def char_class(cp: int) -> int:
    """The class of one code point (WORD, SPACE, ...: normalize.py), from ``unicodedata``.

    Planes 4-13 have no assigned characters and 15-16 are private use: word characters.
    """
    if not (cp < 0x40000 or 0xE0000 <= cp < 0xF0000):
        return WORD
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if ch.isspace():
        return SPACE
    if cat[0] in "PS" or cat == "Cc":
        return PUNCT
    if cat == "Cf":
        return FORMAT
    if cat == "Nd":
        return DIGIT
    if any(lo <= cp <= hi for lo, hi in _NO_SPACE_SCRIPTS):
        return SOLO
    return WORD


def case_fold(cp: int) -> int:
    """Case fold of one code point to one code point (only planes 0-1 have case).

    Context-free, unlike str.lower: Σ and ς both become σ, İ becomes i (its combining
    dot is dropped); the one-character case folding where there is one, else the
    first character of the lowercase (ß stays ß).
    """
    if cp >= 0x20000:
        return cp
    ch = chr(cp)
    fold = ch.casefold()
    return ord((fold if len(fold) == 1 else ch.lower())[0])


def build() -> UnicodeData:
    """Compute every property from ``unicodedata`` (about a second)."""
    chars = [chr(c) for c in range(END)]
    own, decomposed = {}, {}
    for form in FORMS:
        normal = [unicodedata.normalize(form, ch) for ch in chars]
        own[form] = np.fromiter((n == ch for n, ch in zip(normal, chars)), bool, END)
        if form in DECOMPOSED:
            lens = np.fromiter(map(len, normal), np.uint8, END)  # at most 18
            cps = np.frombuffer("".join(normal).encode("utf-32-le", "surrogatepass"),
                                np.uint32)
            decomposed[form] = (lens, cps)
    keys, values = primary_composites()
    return UnicodeData(
        char_class=np.fromiter(map(char_class, range(END)), np.uint8, END),
        case_fold=np.fromiter(map(case_fold, range(END)), np.uint32, END),
        combining=np.fromiter(map(unicodedata.combining, chars), np.uint8, END),
        own=own, decomposed=decomposed,
        pair_keys=keys, pair_values=values)


def primary_composites() -> tuple[np.ndarray, np.ndarray]:
    """The primary composites (a canonical decomposition in two that NFC keeps composed):
    sorted (first << 21 | second) keys and their composite code points. All are in planes
    0 and 1 (tests/test_minhash_native.py checks the rest of the code space)."""
    pairs = {}
    decomposition, normalize = unicodedata.decomposition, unicodedata.normalize
    for c in range(0x20000):
        d = decomposition(chr(c))
        if d and d[0] != "<":
            parts = d.split()
            if len(parts) == 2 and normalize("NFC", chr(c)) == chr(c):
                pairs[int(parts[0], 16) << 21 | int(parts[1], 16)] = c
    keys = sorted(pairs)
    return np.array(keys, np.uint64), np.array([pairs[k] for k in keys], np.uint32)


def write(data: UnicodeData, path: Path = PATH) -> None:
    arrays = {"tag": np.array(source_tag()), "char_class": data.char_class,
              "case_fold": data.case_fold, "combining": data.combining,
              "pair_keys": data.pair_keys, "pair_values": data.pair_values}
    for form in FORMS:
        arrays[f"own_{form}"] = data.own[form]
    for form in DECOMPOSED:
        arrays[f"len_{form}"], arrays[f"cps_{form}"] = data.decomposed[form]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def read(path: Path) -> UnicodeData | None:
    """The data in ``path``, or None (with the reason logged) if it is missing or was
    computed by another Python or older code."""
    if not path.is_file():
        log.info("%s is not built (`make install` builds it): Unicode tables fill as code "
                 "points occur (same output, slower start)", path)
        return None
    with np.load(path) as z:
        if str(z["tag"]) != source_tag():
            log.warning("%s was computed by another Python or older code: not used "
                        "(same output, slower start); `make install` rebuilds it", path)
            return None
        return UnicodeData(
            char_class=z["char_class"], case_fold=z["case_fold"], combining=z["combining"],
            own={f: z[f"own_{f}"] for f in FORMS},
            decomposed={f: (z[f"len_{f}"], z[f"cps_{f}"]) for f in DECOMPOSED},
            pair_keys=z["pair_keys"], pair_values=z["pair_values"])


@cache
def installed() -> UnicodeData | None:
    """The installed data (read once per process), or None."""
    return read(PATH)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else PATH
    write(build(), out)
    print(f"wrote {out}")
