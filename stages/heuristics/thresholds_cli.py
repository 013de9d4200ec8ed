"""The options of ``thresher thresholds`` (stages/heuristics/derive.py does the work).

Kept apart from derive.py so that building the ``thresher`` command line imports no
stage code.
"""

from __future__ import annotations

import argparse

LANGUAGE = "language"
# stage kind -> parameters derived by default (see the module docstring)
DEFAULT_PARAMS = {
    "gopher_quality": ("min_avg_word_length", "max_avg_word_length", "min_alpha_words_ratio"),
    "langid": ("min_score",),  # FineWeb-2's formula, not a quantile (derive.lid_min_score)
}
ALL_PARAMS = {
    "langid": DEFAULT_PARAMS["langid"],
    "gopher_quality": DEFAULT_PARAMS["gopher_quality"],
    "gopher_repetition": ("max_dup_line_ratio", "max_top_ngram_char_ratio",
                          "max_dup_ngram_char_ratio"),
    "fineweb_quality": ("min_terminal_punct_line_ratio", "max_newline_word_ratio"),
}

def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of ``thresher thresholds`` and ``python -m stages.heuristics.derive``."""
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--reference", metavar="GLOB",
                     help="reference files: Parquet or JSONL(.gz/.zst) with text and the --by "
                          "column, or plain text (.txt[.gz]: one language a file, named by "
                          "it, e.g. de.txt); local or a URL (s3://bucket/wiki/*.parquet)")
    src.add_argument("--bundled", action="store_true",
                     help="the multilingual text in tests/data (Leipzig sentences of 75 "
                          "languages, the UDHR in km, lo, my, bo)")
    ap.add_argument("--by", default=LANGUAGE, metavar="COLUMN",
                    help="the language column of Parquet/JSONL references (default: language)")
    ap.add_argument("--quantile", type=float, default=0.05,
                    help="share of the reference each rule may fail (default 0.05)")
    ap.add_argument("--params", default=None,
                    help="kind:param,... to derive (default: the layout-free ones); 'all' for "
                         + "; ".join(f"{k}: {', '.join(v)}" for k, v in ALL_PARAMS.items()))
    ap.add_argument("--stop-words", type=int, default=8, help="stop words per language (0: none)")
    ap.add_argument("--lines-per-doc", type=int, default=None, metavar="N",
                    help="plain-text references: a document every N lines (default: blocks "
                         "separated by blank lines)")
    ap.add_argument("--output", "-o", "--out", dest="out", default="-", metavar="FILE",
                    help="output JSON file (default: stdout)")


