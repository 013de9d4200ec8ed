"""A small XPath 1.0 subset compiled to Python, for trafilatura's pruning expressions.

trafilatura selects boilerplate with XPath expressions such as

    .//*[self::div or self::section][re:test(@id, 'a|b') or contains(@class, 'c')]

lxml evaluates EXSLT ``re:test`` by calling back into Python once per element and
attribute, and on our bench pages those calls are about half of trafilatura's CPU time.
``compile_xpath(text)`` turns such an expression into a function ``f(node) -> list`` that
returns the same elements in the same order: it walks the candidates with lxml's C-level
tag filter and evaluates the predicate as one generated Python function (each attribute
read once, regular expressions compiled once, with the flags lxml uses: ``re.UNICODE``,
plus ``re.IGNORECASE`` for the ``'i'`` flag).

Only what trafilatura's expressions use is understood; anything else raises
``Unsupported``, and the caller keeps the XPath. Grammar:

    union     := path ('|' path)*
    path      := './/' nametest pred* | '(' union ')' '[1]'
    nametest  := '*' | NAME
    pred      := '[' or ']' | '[1]' (last)
    or        := and ('or' and)*          and := unary ('and' unary)*
    unary     := 'not' '(' or ')' | '(' or ')' | 'self::' NAME | './/' NAME
               | attrs ('=' LITERAL)? | 're:test(' str ',' LITERAL (',' LITERAL)? ')'
               | 'contains(' str ',' LITERAL ')' | 'starts-with(' str ',' LITERAL ')'
    str       := attrs | 'translate(' str ',' LITERAL ',' LITERAL ')'
    attrs     := '@' NAME ('|' '@' NAME)*

XPath semantics kept: the string value of an absent attribute is ''; of ``@a|@b``, the
first of the two in the element's attribute order (document order); ``.//x[P][1]`` is
the first matching child of each parent; ``(X)[1]`` the first of X in document order; a
union is in document order without duplicates; ``.//`` never includes the node itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lxml import etree

__all__ = ["Unsupported", "compile_xpath", "forget"]

REGEXP_NS = "http://exslt.org/regular-expressions"


class Unsupported(ValueError):
    """The expression uses XPath this module does not compile (keep the XPath)."""


_TOKEN = re.compile(r"""\s*(?:
      (?P<dslash>\.//)
    | (?P<lit>'[^']*'|"[^"]*")
    | (?P<num>\d+(?![\w.-]))
    | (?P<axis>::)
    | (?P<punct>[()\[\]|,=@*])
    | (?P<name>[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)
    )""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


# ----------------------------------------------------------------------------- predicates

class _Pred:
    """One boolean predicate compiled to the source of a Python expression over ``v[i]``
    (attribute values read once per element) and ``el``."""

    def __init__(self) -> None:
        self.attrs: list[str] = []       # attribute names read, in order of first use
        self.consts: dict[str, Any] = {}  # names the generated code refers to
        self.reads_children = False       # uses .//x (not decidable from attributes)

    def attr(self, name: str) -> str:
        if name not in self.attrs:
            self.attrs.append(name)
        return f"a{self.attrs.index(name)}"

    def const(self, value: Any) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = value
        return name


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    # -- token helpers
    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value) or \
                (kind is not None and tok[0] != kind):
            raise Unsupported(f"expected {value or kind}, got {tok}")
        self.i += 1
        return tok[1]

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value and tok[0] != "lit"

    def literal(self) -> str:
        return self.take(kind="lit")[1:-1]

    # -- paths
    def union(self) -> list[dict]:
        paths = [self.path()]
        while self.at("|"):
            self.take("|")
            paths.append(self.path())
        return paths

    def path(self) -> dict:
        if self.at("("):
            self.take("(")
            inner = self.union()
            self.take(")")
            self.take("[")
            if self.take(kind="num") != "1":
                raise Unsupported("only [1] after a parenthesized path")
            self.take("]")
            return {"first_of": inner}
        self.take(kind="dslash")
        tok = self.peek()
        if tok == ("punct", "*"):
            self.take("*")
            name = None
        else:
            name = self.take(kind="name")
            if self.at("(") or self.at("::"):
                raise Unsupported(f"{name}: only a name test after .//")
        preds: list[_Pred] = []
        sources: list[str] = []
        first_child = False
        while self.at("["):
            if first_child:
                raise Unsupported("a predicate after [1]")
            self.take("[")
            if self.peek() and self.peek()[0] == "num":
                if self.take(kind="num") != "1":
                    raise Unsupported("only the positional predicate [1]")
                first_child = True
            else:
                pred = _Pred()
                sources.append(self.or_expr(pred))
                preds.append(pred)
            self.take("]")
        return {"name": name, "preds": list(zip(preds, sources)), "first_child": first_child}

    # -- boolean expressions
    def or_expr(self, p: _Pred) -> str:
        parts = [self.and_expr(p)]
        while self.at("or"):
            self.take("or")
            parts.append(self.and_expr(p))
        return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"

    def and_expr(self, p: _Pred) -> str:
        parts = [self.unary(p)]
        while self.at("and"):
            self.take("and")
            parts.append(self.unary(p))
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def unary(self, p: _Pred) -> str:
        tok = self.peek()
        if tok is None:
            raise Unsupported("unexpected end")
        kind, value = tok
        if kind == "name" and value == "not" and self.peek(1) == ("punct", "("):
            self.take("not")
            self.take("(")
            inner = self.or_expr(p)
            self.take(")")
            return f"(not {inner})"
        if (kind, value) == ("punct", "("):
            self.take("(")
            inner = self.or_expr(p)
            self.take(")")
            return inner
        if kind == "name" and value == "self" and self.peek(1) == ("axis", "::"):
            self.take("self")
            self.take("::")
            return f"(el.tag == {self.take(kind='name')!r})"
        if kind == "dslash":  # .//x inside a predicate: has such a descendant
            self.take(kind="dslash")
            name = self.take(kind="name")
            p.reads_children = True
            return f"(next(el.iterdescendants({name!r}), None) is not None)"
        if (kind, value) == ("punct", "@"):
            names = self.attrs()
            if self.at("="):
                self.take("=")
                lit = self.literal()
                return "(" + " or ".join(f"{p.attr(n)} == {lit!r}" for n in names) + ")"
            return "(" + " or ".join(f"{p.attr(n)} is not None" for n in names) + ")"
        if kind == "name" and self.peek(1) == ("punct", "("):
            return self.function(p)
        raise Unsupported(f"unsupported token {value!r}")

    def attrs(self) -> list[str]:
        names = []
        while True:
            self.take("@")
            names.append(self.take(kind="name"))
            if not (self.at("|") and self.peek(1) == ("punct", "@")):
                return names
            self.take("|")

    def string(self, p: _Pred) -> str:
        """Source of a string expression: an attribute set's string value or translate()."""
        if self.at("translate"):
            self.take("translate")
            self.take("(")
            inner = self.string(p)
            self.take(",")
            src = self.literal()
            self.take(",")
            dst = self.literal()
            self.take(")")
            table: dict[int, str | None] = {}
            for k, ch in enumerate(src):  # XPath: the first occurrence of a char decides
                table.setdefault(ord(ch), dst[k] if k < len(dst) else None)
            return f"{inner}.translate({p.const(table)})"
        if not self.at("@"):
            raise Unsupported("a string argument other than attributes or translate()")
        names = self.attrs()
        if len(names) == 1:
            return f"({p.attr(names[0])} or '')"
        if len(names) == 2:  # the common case inline; _first only when both are present
            a, b = p.attr(names[0]), p.attr(names[1])
            return (f"({b} or '' if {a} is None else {a} if {b} is None else "
                    f"_first(el, {tuple(names)!r}, ({a}, {b})))")
        vals = ", ".join(p.attr(n) for n in names)
        return f"_first(el, {tuple(names)!r}, ({vals},))"

    def function(self, p: _Pred) -> str:
        fname = self.take(kind="name")
        self.take("(")
        if fname in ("re:test", "contains", "starts-with"):
            s = self.string(p)
            self.take(",")
            lit = self.literal()
            flags = ""
            if fname == "re:test" and self.at(","):
                self.take(",")
                flags = self.literal()
            self.take(")")
            if fname == "contains":
                return f"({lit!r} in {s})"
            if fname == "starts-with":
                return f"{s}.startswith({lit!r})"
            if set(flags) - {"i", "g"}:
                raise Unsupported(f"re:test flags {flags!r}")
            rx = re.compile(lit, re.UNICODE | (re.IGNORECASE if "i" in flags else 0))
            return f"{p.const(_Verdicts(rx))}[{s}]"
        raise Unsupported(f"function {fname}()")


class _Verdicts(dict):
    """``verdicts[s]``: whether the regular expression matches somewhere in ``s``, computed
    once per distinct string (class and id values repeat within a page, and the same
    expression runs on several copies of its tree); a plain dict lookup otherwise.
    ``forget()`` empties them all (stages.extraction.extract_fast does, once per page); one is also
    emptied when it reaches ``MAX`` entries, so memory stays bounded."""

    MAX = 1 << 12

    def __init__(self, rx: re.Pattern):
        super().__init__()
        self.search = rx.search
        _MEMOS.append(self)

    def __missing__(self, s: str) -> bool:
        if len(self) >= self.MAX:
            self.clear()
        found = self[s] = self.search(s) is not None
        return found


_MEMOS: list[_Verdicts] = []


def forget() -> None:
    """Empty every regular-expression memo (they only save time: results never change)."""
    for memo in _MEMOS:
        memo.clear()


def _first(el, names: tuple[str, ...], values: tuple) -> str:
    """XPath string value of ``@a|@b``: the first present attribute in document order."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    if len(present) == 1:
        return present[0]
    for key in el.keys():  # attribute order of the element
        if key in names:
            return el.get(key)
    return ""  # pragma: no cover (a present value has a key)


def _predicate(pred: _Pred, source: str) -> Callable[[Any], bool]:
    namespace: dict[str, Any] = {"_first": _first, **pred.consts}
    reads = "".join(f"    a{k} = get({n!r})\n" for k, n in enumerate(pred.attrs))
    if pred.attrs and not pred.reads_children and "el.tag" not in source:
        # decided by the attributes alone: one test for elements that carry none of them
        # (most elements), with the answer the full expression gives for them
        none = " and ".join(f"a{k} is None" for k in range(len(pred.attrs)))
        bare = eval(f"bool({source})", {**namespace, "el": None},  # noqa: S307
                    {f"a{k}": None for k in range(len(pred.attrs))})
        reads += f"    if {none}:\n        return {bare}\n"
    code = f"def pred(el):\n    get = el.get\n{reads}    return bool({source})\n"
    exec(compile(code, "<xpath_subset>", "exec"), namespace)  # noqa: S102
    fn = namespace["pred"]
    fn.source = code  # for debugging
    return fn


# ----------------------------------------------------------------------------- evaluation

def _is_element(el) -> bool:
    return isinstance(el.tag, str)


def _step(path: dict) -> Callable[[Any], list]:
    """``.//name[P]...[1]?`` -> f(node) -> matches in document order."""
    name, preds, first_child = path["name"], list(path["preds"]), path["first_child"]
    # a first predicate made only of self:: tests narrows the walk at C level
    tags: tuple[str, ...] | None = (name,) if name else None
    if name is None and preds:
        m = re.fullmatch(r"\((\(el\.tag == '[^']+'\)(?: or \(el\.tag == '[^']+'\))*)\)|"
                         r"\(el\.tag == '[^']+'\)", preds[0][1])
        if m:
            tags = tuple(re.findall(r"el\.tag == '([^']+)'", preds[0][1]))
            preds = preds[1:]
    fns = [_predicate(p, s) for p, s in preds]
    walk = tags if tags is not None else (etree.Element,)  # no comments, no PIs

    def matches(node) -> list:
        out = []
        for el in node.iterdescendants(*walk):
            for fn in fns:
                if not fn(el):
                    break
            else:
                out.append(el)
        if first_child:  # child::x[P][1] from every context: first match among siblings
            seen: set = set()
            firsts = []
            for el in out:
                parent = el.getparent()
                if parent not in seen:
                    seen.add(parent)
                    firsts.append(el)
            out = firsts
        return out

    def first(node):
        for el in node.iterdescendants(*walk):
            for fn in fns:
                if not fn(el):
                    break
            else:
                return el
        return None

    matches.first = None if first_child else first  # type: ignore[attr-defined]
    return matches


def _doc_key(el) -> list[int]:
    """Position path from the root: sorts elements of one tree in document order."""
    key = []
    parent = el.getparent()
    while parent is not None:
        key.append(parent.index(el))
        el, parent = parent, parent.getparent()
    return key[::-1]


def _merge(lists: list[list]) -> list:
    """Union of element lists in document order, without duplicates."""
    nonempty = [lst for lst in lists if lst]
    if len(nonempty) <= 1:
        return list(nonempty[0]) if nonempty else []
    seen: dict = {}
    for lst in nonempty:
        for el in lst:
            seen.setdefault(el, None)
    return sorted(seen, key=_doc_key)


def _build(paths: list[dict]) -> Callable[[Any], list]:
    fns = []
    for path in paths:
        if "first_of" in path:
            inner = _build(path["first_of"])
            fns.append(_first_of(inner))
        else:
            fns.append(_step(path))
    if len(fns) == 1:
        return fns[0]

    def union(node) -> list:
        return _merge([fn(node) for fn in fns])

    union.first = None  # type: ignore[attr-defined]
    return union


def _first_of(inner: Callable[[Any], list]) -> Callable[[Any], list]:
    first = getattr(inner, "first", None)

    def fn(node) -> list:
        if first is not None:  # stop at the first match
            el = first(node)
            return [] if el is None else [el]
        found = inner(node)
        return found[:1]

    fn.first = None  # type: ignore[attr-defined]
    return fn


def compile_xpath(text: str, namespaces: dict[str, str] | None = None) -> Callable[[Any], list]:
    """``f(node) -> list of elements`` equal to ``lxml.etree.XPath(text)(node)`` for the
    subset above; ``Unsupported`` otherwise. ``re:`` must be bound to EXSLT regexps."""
    if "re:" in text and (namespaces or {}).get("re") != REGEXP_NS:
        raise Unsupported("re: is not the EXSLT regular-expressions namespace")
    parser = _Parser(text)
    paths = parser.union()
    if parser.peek() is not None:
        raise Unsupported(f"trailing {parser.peek()}")
    return _build(paths)
