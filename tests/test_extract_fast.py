"""stages/extraction/extract_fast.py against the library it speeds up: ``trafilatura.extract``.

The reference is trafilatura itself, called directly (outside ``extract_fast.fast()`` its
dispatchers call the original XPath objects and parser). Pages: every HTML response of
the real WARCs in tests/data/warc (177 pages, so a fresh clone checks them too) and, when
present, every HTML page of the extraction sets in ../shared/data (trafilatura eval,
Mozilla Readability, ScrapingHub; 1,343 more), decoded as the WARC reader decodes them.
``check()`` mode also compares every compiled expression's elements with its XPath's, and
each parsed tree with trafilatura's, on the same pages.
"""

from __future__ import annotations

import os
import re
import sys
from html import escape

import pytest
from conftest import REPO, SHARED, WARC_DIR, require_shared
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lh

from stages.extraction import extract_fast
from stages.extraction.xpath_subset import REGEXP_NS, Unsupported, compile_xpath

RECIPE = {"favor_precision": True, "include_comments": False}  # docs/benchmarks.md's recipe
STAGE_DEFAULTS = {"include_comments": False}  # `extract` with no parameters
OTHER_OPTIONS = [
    {},  # trafilatura's own defaults: comments on (the comment expressions run)
    {"favor_recall": True, "include_comments": False},
    {"favor_precision": True, "include_links": True, "include_formatting": True,
     "output_format": "markdown"},
    {"fast": True, "include_comments": False, "include_tables": False},
]


def _warc_pages() -> list[tuple[str, str | None, str]]:
    from pipelines.config import WarcInput
    from pipelines.io.readers import make_reader
    from pipelines.stats import StageStats

    files = sorted(WARC_DIR.glob("*.warc.gz"))
    files = [f for f in files if not f.name.endswith((".wet.gz", ".wat.gz"))]
    reader = make_reader(WarcInput(paths=[str(f) for f in files], root=str(WARC_DIR)))
    out = []
    for f in files:
        for table in reader.read(f, f.name, StageStats()):
            out += [(r["id"], r["url"], r["html"]) for r in table.to_pylist()]
    return out


def _shared_pages() -> list[tuple[str, str | None, str]]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_bench_warc import all_pages, http_content_type

    from pipelines.io.html_charset import decode_html

    return [(f"shared:{i}", url, decode_html(body, http_content_type(body))[0])
            for i, (url, body) in enumerate(all_pages())]


def _have_shared() -> bool:
    return (SHARED / "extraction").is_dir()


@pytest.fixture(scope="module")
def pages() -> list[tuple[str, str | None, str]]:
    """The bundled WARC pages, then the shared pages when they are there."""
    out = _warc_pages()
    assert len(out) >= 177
    if _have_shared():
        shared = _shared_pages()
        assert len(shared) >= 1343
        out += shared
    return out


# pages with text out of each set (133 of 177 and 1,333 of 1,343 under the recipe): most
# pages really extract, the comparison is not between two Nones
MIN_EXTRACTED = {"warc": 125, "shared": 1290}


def test_the_shared_extraction_pages_are_there():
    """Without them the tests above check the bundled WARC pages only: said, not silent
    (THRESHER_REQUIRE_SHARED=1, set by .ci/run, makes it a failure)."""
    require_shared(SHARED / "extraction")
    assert _have_shared()


def _run(extract, pages, options: dict) -> list[str | None]:
    from trafilatura.deduplication import LRUCache

    cache = LRUCache(maxsize=2**20)  # one per run, as the stage keeps one per task
    return [extract(html, url=url, deduplicate=cache, **options) for _, url, html in pages]


def test_everything_that_should_compile_does():
    fast, kept = extract_fast.report()
    for name in ("OVERALL_DISCARD_XPATH[0]", "OVERALL_DISCARD_XPATH[1]", "BODY_XPATH[0]",
                 "REMOVE_COMMENTS_AND_LISTS_XPATH[0]", "RAW_TREE_PRUNE_XPATH[0]",
                 "PRECISION_DISCARD_XPATH[1]", "baseline.BASIC_CLEAN_XPATH",
                 "core.load_html", "external.fromstring_bytes"):
        assert name in fast, (name, kept.get(name))
    # the metadata expressions (absolute //, unused without with_metadata) stay XPath
    assert all(k.startswith(("AUTHOR", "CATEGORIES", "TAGS", "TITLE", "htmlprocessing."))
               for k in kept), kept


def test_outside_fast_mode_the_library_is_untouched():
    import trafilatura.xpaths as xp

    extract_fast.install()
    tree = lh.fromstring("<html><body><div class='sidebar'>x</div><p>y</p></body></html>")
    disp = xp.OVERALL_DISCARD_XPATH[0]
    assert isinstance(disp, extract_fast._XPathDispatch)
    calls = []

    class Spy:
        path = disp.xpath.path

        def __call__(self, node, **kw):
            calls.append(node)
            return []

    original, disp.xpath = disp.xpath, Spy()
    try:
        disp(tree)  # not in fast mode: the original object answers
        assert calls == [tree]
        with extract_fast.fast():
            assert [e.get("class") for e in disp(tree)] == ["sidebar"]
        assert calls == [tree]
    finally:
        disp.xpath = original


# CI keeps the suite short: every other page with the recipe, every fourth of the others
# with the stage's defaults (three quarters of the pages under one of the two);
# THRESHER_FULL_CHECKS=1: every page with both, and every page in check mode under every
# option set (about 15 minutes).
FULL = os.environ.get("THRESHER_FULL_CHECKS") == "1"


@pytest.mark.slow
@pytest.mark.parametrize("options,stride,offset", [(RECIPE, 1 if FULL else 2, 0),
                                                   (STAGE_DEFAULTS, 1 if FULL else 4, 1)],
                         ids=["recipe", "stage-defaults"])
def test_text_is_byte_identical_on_every_page(pages, options, stride, offset):
    import trafilatura

    if not _have_shared():
        stride, offset = 1, 0  # the bundled pages only: all of them
    least = (MIN_EXTRACTED["warc"] + MIN_EXTRACTED["shared"] * _have_shared()) // stride - 5
    pages = pages[offset::stride]
    ref = _run(trafilatura.extract, pages, options)
    ours = _run(extract_fast.extract, pages, options)
    diff = [pid for (pid, _, _), a, b in zip(pages, ref, ours) if a != b]
    assert not diff, f"{len(diff)} pages differ, e.g. {diff[:5]}"
    extracted = sum(t is not None for t in ref)
    assert extracted > least, (extracted, least)  # real extractions, not all None


@pytest.mark.slow
@pytest.mark.parametrize("options", [RECIPE, STAGE_DEFAULTS, *OTHER_OPTIONS],
                         ids=lambda o: ",".join(o) or "defaults")
def test_every_call_checked_against_the_library(pages, options):
    """In check mode every compiled expression's elements are compared with its XPath's
    and every parsed tree with trafilatura's, call by call, on a spread of the pages."""
    import trafilatura

    def checked(html, **kw):
        with extract_fast.check():
            return trafilatura.extract(html, **kw)

    # about 170 pages with the two main option sets, 55 with the others
    sample = pages[::1 if FULL else max(1, len(pages) // (170 if options in (
        RECIPE, STAGE_DEFAULTS) else 55))]
    assert len(sample) >= 55
    assert _run(checked, sample, options) == _run(trafilatura.extract, sample, options)


def test_the_stage_uses_the_fast_path(warc_dir):
    """The `extract` stage's text equals plain trafilatura's on the bundled WARCs."""
    import trafilatura
    from trafilatura.deduplication import LRUCache

    from pipelines.stats import StageStats
    from stages.extraction.extract import Extract, ExtractParams

    docs = _warc_pages()[:60]
    import pyarrow as pa

    table = pa.table({"id": [d[0] for d in docs], "url": [d[1] for d in docs],
                      "source": ["x"] * len(docs), "html": [d[2] for d in docs]})
    stage = Extract(ExtractParams(favor_precision=True, deduplicate=True))
    stage.setup()
    stage.begin_task(None)
    out = stage.process(table, StageStats())
    cache = LRUCache(maxsize=2**20)
    ref = {d[0]: trafilatura.extract(d[2], url=d[1], favor_precision=True,
                                     include_comments=False, deduplicate=cache) for d in docs}
    got = dict(zip(out.column("id").to_pylist(), out.column("text").to_pylist()))
    assert got == {k: v for k, v in ref.items() if v and v.strip()}
    assert len(got) > 30


# ----------------------------------------------------------------------------- self-check

def test_self_check_passes_on_the_installed_trafilatura():
    """The bundled pages extract to text, the same with and without the fast versions;
    so install() kept them (no version gate: any trafilatura that passes is used)."""
    pages = extract_fast.check_pages()
    assert len(pages) == 3 and all(html.lstrip().startswith("<") for _, _, html in pages)
    assert extract_fast.self_check(pages) is None
    fast, kept = extract_fast.report()
    assert "all" not in kept and "core.load_html" in fast


FAULT = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from lxml import etree
import trafilatura
import trafilatura.xpaths as xp

class Misread(etree.XPath):
    # selects what trafilatura's expression selects, but its text says .//nav: the fast
    # version compiled from that text differs, as one misreading an expression would
    path = property(lambda self: ".//nav")

xp.OVERALL_DISCARD_XPATH[0] = fault = Misread(
    xp.OVERALL_DISCARD_XPATH[0].path, namespaces={"re": "http://exslt.org/regular-expressions"})
from stages.extraction import extract_fast
fast, kept = extract_fast.report()
assert fast == [] and "all" in kept, (fast, kept)
assert xp.OVERALL_DISCARD_XPATH[0] is fault and not any(
    isinstance(v, extract_fast._XPathDispatch) for v in xp.BODY_XPATH)
for name, url, html in extract_fast.check_pages():
    assert extract_fast.extract(html, url=url) == trafilatura.extract(html, url=url)
print("fell back")
"""


def test_a_fast_path_that_differs_falls_back_to_trafilatura_with_one_warning():
    """A trafilatura whose expression the compiler would get wrong (made here by an XPath
    whose text misstates what it selects): the self-check finds the difference at
    install, puts trafilatura's objects back and warns once; extraction runs the library."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", FAULT], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "fell back", proc.stderr
    warned = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 1 and "OVERALL_DISCARD_XPATH[0]" in warned[0], proc.stderr
    assert "trafilatura runs as is" in warned[0]


def test_regex_namespace_is_found_by_its_uri_not_its_name():
    import types

    import trafilatura.settings
    import trafilatura.xpaths

    renamed = types.ModuleType("elsewhere")
    renamed.EXSLT_REGEX = "http://exslt.org/regular-expressions"  # another constant name
    assert extract_fast._regexp_namespaces(renamed) == {"re": REGEXP_NS}
    assert extract_fast._regexp_namespaces(types.ModuleType("none")) == {}
    assert extract_fast._regexp_namespaces(trafilatura.xpaths) == {"re": REGEXP_NS}
    # settings.py writes the URI inline, in BASIC_CLEAN_XPATH's namespaces=
    assert not any(v == REGEXP_NS for v in vars(trafilatura.settings).values())
    assert extract_fast._regexp_namespaces(trafilatura.settings) == {"re": REGEXP_NS}


# ----------------------------------------------------------------------------- the compiler

NS = {"re": REGEXP_NS}
DOC = """<html><body>
  <div id="a" class="post x">one<span class="share-x">s</span><p id="comment-1">c</p></div>
  <section class="comments" id="main">two<div class="post">inner</div></section>
  <div class="Post" style="display:none" aria-hidden="true"><p class="hidden">h</p></div>
  <aside role="Navigation"><h1>t</h1><div class="infinite-scroll"><h1>x</h1></div></aside>
  <div><!-- a comment --><p>p1</p><p class="post">p2</p><p class="post">p3</p></div>
  <main><article><p class="reply-x">r</p></article></main>
</body></html>"""


@pytest.mark.parametrize("path", [
    ".//*[self::div or self::section][@class='post']",
    ".//*[self::div or self::p][re:test(@id|@class, '^comment')]",
    ".//*[re:test(@class|@id, 'main|post')]",
    ".//*[starts-with(@class|@id, 'reply-') or contains(@style, 'display:none')]",
    ".//*[contains(translate(@role, 'N', 'n'), 'nav') or @aria-hidden='true']",
    ".//*[@class or @id]",
    ".//*[not(@class)]",
    ".//*[self::div or self::aside][not(.//h1) or re:test(@class, 'infinite')]",
    ".//*[re:test(@class, 'POST', 'i')]",
    ".//*[self::p or self::div][@class='post'][1]",
    ".//*[1]",
    ".//p[1]",
    "(.//*[self::p or self::div][@class='post'])[1]",
    "(.//*[self::p][@id])[1]|(.//main)[1]",
    "(.//main)[1]|(.//*[self::p][@id])[1]",
    ".//header",
    ".//p|.//span",
    ".//aside|.//div[contains(@class|@id, 'post')]|.//*[re:test(@id, '^a$', 'i')]",
])
def test_compiled_expression_equals_xpath(path):
    tree = lh.fromstring(DOC)
    for node in [tree, *tree.iter("div", "section", "body")]:
        ref = etree.XPath(path, namespaces=NS)(node)
        assert compile_xpath(path, NS)(node) == ref, (path, node.tag)


@pytest.mark.parametrize("path", [
    "//div", ".//*[local-name()='x']", ".//*[last()]", ".//*[@a > 1]", ".//div/p",
    ".//*[re:test(@class, 'x', 'm')]", ".//*[rel='me']", ".//*[2]",
])
def test_unsupported_xpath_is_refused(path):
    with pytest.raises(Unsupported):
        compile_xpath(path, NS)


def test_re_needs_the_exslt_namespace():
    with pytest.raises(Unsupported):
        compile_xpath(".//*[re:test(@class, 'x')]", {"re": "urn:other"})


def _trafilatura_expressions() -> list[str]:
    extract_fast.install()
    import trafilatura.xpaths as xp

    lists = [v for _, v in sorted(vars(xp).items()) if isinstance(v, list)]
    return [e.path for lst in lists for e in lst if isinstance(e, extract_fast._XPathDispatch)]


def _vocabulary() -> list[str]:
    """Attribute values made of the expressions' own literals and regex fragments."""
    words = set()
    for path in _trafilatura_expressions():
        for lit in re.findall(r"'([^']*)'", path):
            words.update(w for w in re.split(r"[|()?:^$\\\[\]{}*+\s]+", lit) if w)
            words.add(lit)
    return sorted(words) + ["", " ", "Comment", "commentary", "ad", "x ad y", "hide-x"]


TAGS = ["div", "p", "section", "span", "list", "item", "article", "main", "aside", "ol",
        "ul", "details", "h1", "header", "figure"]
ATTRS = ["id", "class", "style", "role", "aria-hidden", "data-component", "itemprop",
         "data-lp-replacement-content"]


@st.composite
def trees(draw):
    vocab = _vocabulary()
    values = st.lists(st.sampled_from(vocab), min_size=1, max_size=3).map(" ".join)

    def element(depth: int) -> str:
        tag = draw(st.sampled_from(TAGS))
        names = draw(st.lists(st.sampled_from(ATTRS), max_size=3, unique=True))
        attrs = "".join(f' {n}="{escape(draw(values))}"' for n in names)
        kids = "".join(element(depth + 1) for _ in range(draw(
            st.integers(0, 3 if depth < 3 else 0))))
        return f"<{tag}{attrs}>t{kids}</{tag}>tail"

    return lh.fromstring(f"<html><body>{''.join(element(0) for _ in range(3))}</body></html>")


@given(trees())
def test_trafilatura_expressions_on_generated_trees(tree):
    for path in _trafilatura_expressions():
        ref = etree.XPath(path, namespaces=NS)(tree)
        assert compile_xpath(path, NS)(tree) == ref, path


def test_trafilatura_expressions_on_every_vocabulary_word_in_both_attribute_orders():
    """Each word of the expressions as id, class, style or role, next to another attribute
    in both orders (``@id|@class`` takes the first in document order)."""
    words = _vocabulary()
    rows = []
    for i, w in enumerate(words):
        other = words[(i * 7 + 3) % len(words)]
        for a, b in (("id", "class"), ("class", "id"), ("style", "id"), ("role", "class")):
            for tag in ("div", "section", "span", "list", "p"):
                rows.append(f'<{tag} {a}="{escape(w)}" {b}="{escape(other)}">t<h1>h</h1></{tag}>')
    tree = lh.fromstring(f"<html><body>{''.join(rows)}</body></html>")
    for path in _trafilatura_expressions():
        assert compile_xpath(path, NS)(tree) == etree.XPath(path, namespaces=NS)(tree), path


def test_reference_switch_calls_the_library(monkeypatch):
    import trafilatura

    seen = []
    monkeypatch.setattr(trafilatura, "extract", lambda html, **kw: seen.append(
        extract_fast._MODE.get()) or "x")
    extract_fast.extract("<html><body><p>a</p></body></html>")
    monkeypatch.setenv(extract_fast.REFERENCE_ENV, "1")
    extract_fast.extract("<html><body><p>a</p></body></html>")
    assert seen == [extract_fast._FAST, extract_fast._OFF]
