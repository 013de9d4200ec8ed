"""trafilatura's extraction, faster, with byte-identical output.

Where trafilatura 2.3 spends its time on our bench pages (docs/benchmarks.md,
"Extraction"), and what this module changes, without touching what it computes:

- About half of it goes to a dozen XPath expressions whose predicates call EXSLT
  ``re:test``, which lxml runs as a Python callback per element and attribute.
  ``stages.extraction.xpath_subset`` compiles each of them, from its own text, into a walk with
  lxml's C-level tag filter and one generated Python predicate (same elements, same
  order).
- Every element proxy lxml creates asks ``lxml.html``'s class lookup, a Python method,
  which class to use. The page is parsed here by a copy of trafilatura's own parser
  whose lookup gives the same classes (``HtmlElement``, and ``FormElement`` & co. for
  their five tag names) from C: ``ElementNamespaceClassLookup`` with those five
  registered, falling back to ``ElementDefaultClassLookup``.

``install()`` puts a *dispatcher* where trafilatura keeps each of these objects (the
XPath lists of ``trafilatura.xpaths``, ``BASIC_CLEAN_XPATH``, the ``load_html`` and
``fromstring_bytes`` that ``core``, ``baseline`` and ``external`` imported). A
dispatcher runs the fast version only inside ``fast()`` / ``extract()`` (a context
variable, so per thread); everywhere else it calls the original object, so a plain
``trafilatura.extract`` call, as the tests make for the reference, runs the library
unchanged. What does not compile keeps its XPath in both modes (``report()``).

``check()`` runs both versions on every call and raises ``Mismatch`` on any
difference (elements selected, or the parsed tree's serialization and element
classes); the tests use it on real pages on top of comparing the text byte for byte.

Which trafilatura this works with is not decided by its version: the first
``install()`` in a process runs a *self-check*. It extracts the bundled pages
(``check_pages/``, three real pages, with three option sets) with plain trafilatura and
with the fast versions, and once more in ``check()`` mode; on any difference, or any
error, it puts trafilatura's own objects back and logs one warning saying why, and the
process extracts with the library as it is. Its cost, once per process, is in
docs/benchmarks.md ("Extraction"). The regex namespace of trafilatura's expressions is
recognised by its URI (EXSLT regular expressions), not by the name of the constant
that holds it.

``THRESHER_TRAFILATURA_REFERENCE=1`` in the environment makes ``extract()`` call plain
``trafilatura.extract`` (to measure the difference, or to rule this module out).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import types
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

from stages.extraction.xpath_subset import REGEXP_NS, Unsupported, compile_xpath, forget

log = logging.getLogger(__name__)

_OFF, _FAST, _CHECK = 0, 1, 2
_MODE: contextvars.ContextVar[int] = contextvars.ContextVar("thresher_fast_trafilatura",
                                                            default=_OFF)
_LOCK = threading.Lock()
_INSTALLED: dict[str, Any] = {}
_SKIPPED: dict[str, str] = {}
_ORIGINALS: list[tuple[Any, int | str, Any]] = []  # (container, index or name, original)
#: the self-check's option sets: the stage's defaults, docs/benchmarks.md's recipe, and
#: trafilatura's own defaults (comments on: the comment expressions run)
CHECK_OPTIONS = ({"include_comments": False},
                 {"favor_precision": True, "include_comments": False}, {})


class Mismatch(AssertionError):
    """A fast version disagreed with the original (check mode only)."""


def _module(name: str):
    # by module path: trafilatura's package namespace exports a *function* named baseline
    return import_module(f"trafilatura.{name}")


# ----------------------------------------------------------------------------- XPath

class _XPathDispatch:
    """Stands where trafilatura keeps a compiled ``lxml.etree.XPath``."""

    __slots__ = ("name", "xpath", "fast", "path")

    def __init__(self, name: str, xpath: Any, fast: Callable[[Any], list]):
        self.name, self.xpath, self.fast, self.path = name, xpath, fast, xpath.path

    def __call__(self, node, **variables):
        mode = _MODE.get()
        if mode == _OFF or variables:
            return self.xpath(node, **variables)
        if mode == _FAST:
            return self.fast(node)
        ours, ref = self.fast(node), self.xpath(node)
        if len(ours) != len(ref) or any(a is not b for a, b in zip(ours, ref)):
            raise Mismatch(f"{self.name}: {len(ours)} elements vs XPath's {len(ref)}")
        return ref

    def __str__(self) -> str:  # trafilatura logs str(expr)
        return str(self.xpath)

    def __repr__(self) -> str:
        return f"<fast {self.name}>"


def _xpath_targets() -> Iterator[tuple[str, Any, Any, Any, int | str]]:
    """(name, module, container, XPath, index or attribute) of every expression worth
    compiling: the lists in trafilatura.xpaths and the module-level XPaths trafilatura
    imports (``module``: where the expression was written)."""
    from lxml.etree import XPath

    xpaths = _module("xpaths")
    for name in sorted(vars(xpaths)):
        value = getattr(xpaths, name)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, (XPath, _XPathDispatch)):
                    yield f"{name}[{i}]", xpaths, value, item, i
    for module in map(_module, ("settings", "baseline", "htmlprocessing")):
        for name in sorted(vars(module)):
            value = getattr(module, name)
            if name.isupper() and isinstance(value, (XPath, _XPathDispatch)):
                yield f"{module.__name__.rsplit('.', 1)[-1]}.{name}", module, module, value, name


def _regexp_namespaces(module) -> dict[str, str]:
    """``{"re": EXSLT regexps}`` if ``module`` writes the EXSLT regular-expressions URI,
    as a constant of any name or inline (an XPath object does not tell its namespaces;
    ``compile_xpath`` refuses ``re:`` without it, and the self-check would catch a
    different binding)."""
    import inspect

    if any(v == REGEXP_NS for v in vars(module).values() if isinstance(v, str)):
        return {"re": REGEXP_NS}
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {}
    return {"re": REGEXP_NS} if REGEXP_NS in source else {}


def _put(container, where: int | str, value) -> None:
    if isinstance(where, int):
        container[where] = value
    else:
        setattr(container, where, value)


def _install_xpaths() -> None:
    namespaces: dict[str, dict[str, str]] = {}
    compiled: dict[int, _XPathDispatch] = {}  # one dispatcher per XPath object
    for name, module, container, xp, where in list(_xpath_targets()):
        if isinstance(xp, _XPathDispatch):
            continue
        if module.__name__ not in namespaces:
            namespaces[module.__name__] = _regexp_namespaces(module)
        if id(xp) not in compiled:
            try:
                compiled[id(xp)] = _XPathDispatch(name, xp, compile_xpath(
                    xp.path, namespaces[module.__name__]))
            except Unsupported as exc:
                _SKIPPED[name] = str(exc)
                continue
        _ORIGINALS.append((container, where, xp))
        _put(container, where, compiled[id(xp)])
        _INSTALLED[name] = compiled[id(xp)]


# ----------------------------------------------------------------------------- parser

def _c_lookup():
    """The classes ``lxml.html.HtmlElementClassLookup`` gives, chosen in C."""
    from lxml import etree
    from lxml import html as lh

    lookup = etree.ElementNamespaceClassLookup(etree.ElementDefaultClassLookup(
        element=lh.HtmlElement, comment=lh.HtmlComment, pi=lh.HtmlProcessingInstruction,
        entity=lh.HtmlEntity))
    registry = lookup.get_namespace(None)
    for tag, cls in lh.HtmlElementClassLookup._default_element_classes.items():
        registry[tag] = cls
    return lookup


class _FunctionDispatch:
    """Stands where trafilatura imported one of its parsing functions."""

    __slots__ = ("name", "original", "fast", "__wrapped__")

    def __init__(self, name: str, original: Callable, fast: Callable):
        self.name, self.original, self.fast, self.__wrapped__ = name, original, fast, original

    def __call__(self, *args, **kwargs):
        mode = _MODE.get()
        if mode == _OFF:
            return self.original(*args, **kwargs)
        ours = self.fast(*args, **kwargs)
        if mode == _CHECK:
            _same_tree(self.name, ours, self.original(*args, **kwargs))
        return ours


def _same_tree(name: str, ours, ref) -> None:
    from lxml import etree

    if (ours is None) != (ref is None):
        raise Mismatch(f"{name}: {ours!r} vs {ref!r}")
    if ours is None or ours is ref:
        return
    if etree.tostring(ours) != etree.tostring(ref):
        raise Mismatch(f"{name}: the trees differ")
    for a, b in zip(ours.iter(), ref.iter()):
        if type(a) is not type(b):
            raise Mismatch(f"{name}: <{a.tag}> is a {type(a).__name__}, not {type(b).__name__}")


def _install_parser() -> None:
    """Clones of trafilatura's ``load_html`` and ``fromstring_bytes`` (its own code
    objects) whose module globals name a copy of ``HTML_PARSER`` with the C lookup."""
    utils = _module("utils")
    parser = utils.HTML_PARSER.copy()  # same options
    parser.set_element_class_lookup(_c_lookup())
    scope = dict(vars(utils), HTML_PARSER=parser)
    clones = {}
    for fname in ("fromstring_bytes", "load_html"):
        fn = getattr(utils, fname)
        clone = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                                   fn.__closure__)
        clone.__kwdefaults__ = fn.__kwdefaults__
        scope[fname] = clones[fname] = clone
    for modname in ("core", "baseline", "external"):
        module = _module(modname)
        for fname, clone in clones.items():
            current = getattr(module, fname, None)
            if current is getattr(utils, fname):
                _ORIGINALS.append((module, fname, current))
                setattr(module, fname, _FunctionDispatch(f"{modname}.{fname}", current, clone))
                _INSTALLED[f"{modname}.{fname}"] = getattr(module, fname)


# ----------------------------------------------------------------------------- self-check

def check_pages() -> list[tuple[str, str, str]]:
    """(file, url, html) of the bundled pages (check_pages/NOTICE), decoded as the WARC
    reader decodes them."""
    import gzip
    import json
    from importlib import resources

    from pipelines.io.html_charset import decode_html

    folder = resources.files("stages.extraction") / "check_pages"
    urls = json.loads((folder / "pages.json").read_text(encoding="utf-8"))
    return [(name, url, decode_html(gzip.decompress((folder / name).read_bytes()),
                                    "text/html")[0]) for name, url in urls.items()]


def _extract_as(mode: int, html: str, url: str, options: dict) -> str | None:
    import trafilatura

    forget()
    token = _MODE.set(mode)
    try:
        return trafilatura.extract(html, url=url, **options)
    finally:
        _MODE.reset(token)


def self_check(pages: list[tuple[str, str, str]] | None = None) -> str | None:
    """Why the installed fast versions are not trafilatura's own on ``pages`` (default:
    the bundled ones) under ``CHECK_OPTIONS``, or None: the text of plain and fast
    extraction must be the same, and ``check()`` mode must find no element or tree that
    differs (on the first option set)."""
    pages = check_pages() if pages is None else pages
    extracted = 0
    for i, options in enumerate(CHECK_OPTIONS):
        for name, url, html in pages:
            try:
                ref = _extract_as(_OFF, html, url, options)
                if _extract_as(_FAST, html, url, options) != ref:
                    return f"{name} with {options}: the text differs"
                if i == 0 and _extract_as(_CHECK, html, url, options) != ref:
                    return f"{name} with {options}: the text differs in check mode"
            except Exception as exc:  # Mismatch, or a fast version that fails
                return f"{name} with {options}: {type(exc).__name__}: {exc}"
            extracted += ref is not None
    if not extracted:
        return "trafilatura extracts nothing from the bundled pages"
    return None


def _uninstall() -> None:
    """Put trafilatura's own objects back where the dispatchers stood."""
    for container, where, original in reversed(_ORIGINALS):
        _put(container, where, original)
    _ORIGINALS.clear()
    _INSTALLED.clear()


# ----------------------------------------------------------------------------- API

def install() -> dict[str, str]:
    """Put the dispatchers in place (idempotent). Returns {expression: why it keeps its
    XPath} for the expressions that do not compile."""
    with _LOCK:
        if not (_INSTALLED or _SKIPPED):
            for part, installer in (("xpaths", _install_xpaths), ("parser", _install_parser)):
                try:
                    installer()
                except Exception as exc:  # another trafilatura layout: run the library as is
                    _SKIPPED[part] = f"{type(exc).__name__}: {exc}"
                    log.warning("extract_fast: %s left to trafilatura (%s)", part,
                                _SKIPPED[part])
            problem = self_check() if _INSTALLED else None
            if problem is not None:
                _uninstall()
                version = getattr(import_module("trafilatura"), "__version__", "?")
                _SKIPPED["all"] = (f"differs from trafilatura {version} on a bundled page "
                                   f"({problem}): trafilatura runs as is")
                log.warning("extract_fast: %s", _SKIPPED["all"])
            elif _SKIPPED:
                log.debug("trafilatura expressions kept as XPath: %s", _SKIPPED)
        return dict(_SKIPPED)


def report() -> tuple[list[str], dict[str, str]]:
    """(what runs fast, {expression kept as XPath: why})."""
    install()
    return sorted(_INSTALLED), dict(_SKIPPED)


@contextlib.contextmanager
def _mode(value: int) -> Iterator[None]:
    install()
    token = _MODE.set(value)
    try:
        yield
    finally:
        _MODE.reset(token)


def fast() -> contextlib.AbstractContextManager[None]:
    """Inside: trafilatura runs with the fast versions."""
    return _mode(_FAST)


def check() -> contextlib.AbstractContextManager[None]:
    """Inside: both versions run, ``Mismatch`` on any difference (for tests)."""
    return _mode(_CHECK)


REFERENCE_ENV = "THRESHER_TRAFILATURA_REFERENCE"


def extract(html: str, **kwargs) -> str | None:
    """``trafilatura.extract(html, **kwargs)``: the same string, faster."""
    import trafilatura

    install()
    if os.environ.get(REFERENCE_ENV) == "1" or "all" in _SKIPPED:  # or the self-check failed
        return trafilatura.extract(html, **kwargs)
    forget()  # per-page memos: a worker's memory does not grow with the pages it saw
    with fast():
        return trafilatura.extract(html, **kwargs)
