"""The Unicode properties ``make install`` computes (stages/text/unicode_data.py): tables
started from them equal the tables filled code point by code point from ``unicodedata``
(what a process without the file does), for every code point they cover."""

from __future__ import annotations

import numpy as np
import pytest

from stages.dedup import minhash_native as mn
from stages.text import normalize as tn
from stages.text import unicode_data as ud

ALL = np.arange(ud.END)


def test_the_installed_file_is_used():
    """make install builds it; without it every process looks code points up one by one
    (same output, slower), which the suite must not let pass unnoticed."""
    assert ud.installed() is not None, (
        f"{ud.PATH} is missing or stale: `make install` (or `python -m "
        "stages.text.unicode_data`) builds it")


@pytest.mark.parametrize("options", [(True, True, True, True, True),
                                     (False, False, False, False, False),
                                     (True, False, True, False, True),
                                     (False, True, False, True, False)])
def test_normalization_tables(options):
    pre, looked_up = tn._Tables(*options), tn._Tables(*options, prefill=False)
    assert (looked_up.cls[: ud.END] == tn.UNKNOWN).all()
    looked_up.fill(ALL)
    assert (pre.cp == looked_up.cp).all() and (pre.cls == looked_up.cls).all()
    assert (pre.cls[ud.END:] == tn.UNKNOWN).all()  # beyond planes 0-3: looked up later


@pytest.mark.parametrize("form", ["NFC", "NFKC", "NFD", "NFKD"])
def test_quick_check_tables(form):
    pre, looked_up = mn._QuickCheckTable(form), mn._QuickCheckTable(form, prefill=False)
    looked_up.fill(ALL)
    assert (pre.table == looked_up.table).all()


@pytest.mark.parametrize("form", ["NFD", "NFKD"])
def test_decomposition_tables(form):
    """Filled in code point order, the looked-up table numbers its expansions as the
    prefilled one does: every array is the same."""
    pre, looked_up = mn._FormTable(form), mn._FormTable(form, prefill=False)
    looked_up.fill(ALL)
    assert (pre.table == looked_up.table).all()
    assert pre._expansions == looked_up._expansions and len(pre._expansions) > 10_000
    for a, b in zip(pre.expansions[:3], looked_up.expansions[:3]):
        assert (a == b).all()
    assert pre.expansions[3] == looked_up.expansions[3]


def test_combining_classes_and_compositions():
    pre, looked_up = mn._CombiningClasses(), mn._CombiningClasses(prefill=False)
    looked_up.fill(ALL)
    assert (pre.table == looked_up.table).all()
    pre, scanned = mn._Compositions(), mn._Compositions(prefill=False)
    assert len(pre.keys) > 900 and (pre.keys == scanned.keys).all()
    assert (pre.values == scanned.values).all() and (pre.pair == scanned.pair).all()
    assert pre.seconds == scanned.seconds


def test_a_file_from_other_code_or_none_is_not_used(tmp_path, monkeypatch):
    data = ud.installed()
    assert data is not None
    path = tmp_path / "u.npz"
    assert ud.read(path) is None  # missing
    ud.write(data, path)
    assert ud.read(path) is not None
    monkeypatch.setattr(ud, "source_tag", lambda: "another")  # e.g. normalize.py edited
    assert ud.read(path) is None
