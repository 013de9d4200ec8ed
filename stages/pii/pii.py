"""pii: find e-mail and public IP addresses (and, when switched on, phone numbers, IBANs and
payment-card numbers) and replace each with a placeholder, as FineWeb's last step does.

Detection is a candidate regex per kind followed by a check that the candidate is what it
looks like, so that the traps web text is full of are left alone:

- e-mail: ``local@domain.tld`` with an alphabetic top-level label that is not a file
  extension (``logo@2x.png`` is a retina image name, not an address);
- IPv4: four decimal octets not inside a longer dotted run (``1.2.3.4.5``, SNMP OIDs), not
  written right after a word that makes it a version or a numbered clause (``version
  1.2.3.4``, ``v2.0.1.3``, ``build``, ``section``, ``§``), and public (``ipaddress``'s
  ``is_global``, multicast excluded): private, loopback, link-local and documentation
  ranges are not personal data, and FineWeb leaves them too;
- IPv6: a run of hex groups and colons that ``ipaddress`` parses, in the global unicast
  range 2000::/3 (``std::min``, ``a::b`` and MAC addresses are not);
- phone (``phones: true``): ``+<country> ...`` numbers of 8 to 15 digits, and North
  American ``(555) 123-4567`` / ``555-123-4567`` forms;
- IBAN (``ibans: true``): country code, check digits, 11 to 30 more letters or digits,
  passing the ISO 13616 mod-97 check;
- payment card (``credit_cards: true``): 13 to 19 digits (spaces or dashes between) with a
  card network's prefix and a valid Luhn check digit.

Where candidates overlap the earlier (then the longer) one wins.

Placeholders: ``placeholder: fineweb`` writes the addresses datatrove's ``PIIFormatter``
writes for FineWeb (``email@example.com`` ..., ``22.214.171.124`` ...), choosing among them
by a hash of the address found, so the output does not depend on document order, sharding
or worker count (datatrove cycles through its list in processing order) and one address
gets one placeholder; kinds FineWeb does not handle get the typed tag. ``placeholder:
typed`` writes ``<EMAIL>``, ``<IP_ADDRESS>``, ``<PHONE_NUMBER>``, ``<IBAN>``,
``<CREDIT_CARD>``; ``replacements`` overrides any of them.

Stats: in ``mode: replace`` the matches replaced per kind, in total and per language and
dataset (the stage's ``removed`` stats: ``docs`` with at least one, then one count per
kind), and the documents rewritten per kind (``changed``: ``replaced:<kind>``, sampled
before and after).

Columns: ``<name>_<kind>`` (int32, one per enabled kind; ``count_columns: false`` leaves
them out) counts what was found in each document, so the run's stats carry, per kind,
the histogram of matches per document (and the number of documents with at least one).
In ``mode: annotate`` the text is not changed and ``<name>_spans`` lists every match as
``{kind, start, end}`` (code-point offsets into the text).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import cache
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from pipelines.lazy import lazy_module
from pipelines.schema import TEXT
from pipelines.stage import Params, Stage, require_columns, set_column
from pipelines.stats import StageStats

pa = lazy_module("pyarrow")

KINDS = ("email", "ip", "phone", "iban", "credit_card")

TYPED = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "phone": "<PHONE_NUMBER>",
         "iban": "<IBAN>", "credit_card": "<CREDIT_CARD>"}
# what datatrove's PIIFormatter (FineWeb) writes: example.com/.org are reserved example
# domains; the IPs are the ones its authors picked as unresponsive
FINEWEB = {"email": ("email@example.com", "firstname.lastname@example.org"),
           "ip": ("22.214.171.124", "126.96.36.199", "188.8.131.52", "184.108.40.206",
                  "220.127.116.11", "18.104.22.168")}


@cache
def span_type() -> pa.DataType:
    return pa.struct([("kind", pa.string()), ("start", pa.int32()), ("end", pa.int32())])


class PiiParams(Params):
    mode: Literal["replace", "annotate"] = Field(
        "replace", description="replace: rewrite the text with placeholders; annotate: keep "
                               "the text and list the matches in `<name>_spans`")
    column: str = Field(TEXT, description="text column to scan")
    emails: bool = Field(True, description="find e-mail addresses")
    ips: bool = Field(True, description="find public IPv4 and IPv6 addresses")
    phones: bool = Field(False, description="find phone numbers (international +CC form "
                                            "and North American forms)")
    ibans: bool = Field(False, description="find IBANs (mod-97 checked)")
    credit_cards: bool = Field(False, description="find payment-card numbers (network "
                                                  "prefix and Luhn checked)")
    public_ips_only: bool = Field(True, description="leave private, loopback, link-local, "
                                                    "documentation and other non-global "
                                                    "addresses alone, as FineWeb does")
    placeholder: Literal["fineweb", "typed"] = Field(
        "fineweb", description="fineweb: FineWeb's example addresses (picked by a hash of "
                               "the address, typed tags for other kinds); typed: <EMAIL>, "
                               "<IP_ADDRESS>, <PHONE_NUMBER>, <IBAN>, <CREDIT_CARD>")
    replacements: dict[str, str] = Field(
        {}, description="kind -> placeholder, overriding `placeholder` for that kind "
                        "(kinds: email, ip, phone, iban, credit_card)")
    count_columns: bool = Field(True, description="write `<name>_<kind>`, the matches per "
                                                  "document of each enabled kind")

    @field_validator("replacements")
    @classmethod
    def _known_kinds(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - set(KINDS))
        if bad:
            raise ValueError(f"unknown kind(s) {', '.join(bad)}; kinds: {', '.join(KINDS)}")
        return v


# ----------------------------------------------------------------------------- detection
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+'-])"
    r"([A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*)"  # local part: dot-separated atoms
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))"
    r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])")
# names that end like a domain but are files: retina images (a@2x.png), assets, archives
FILE_EXTENSIONS = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff avif heic css js mjs ts json xml html htm "
    "php asp aspx jsp pdf doc docx xls xlsx ppt pptx txt csv zip gz tgz rar mp3 mp4 wav "
    "webm mov avi ttf otf woff woff2 eot map md yml yaml".split())

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\w)")
# a word right before the number that makes it a version, not an address
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\b(?:v|ver|vers|version|versions|release|rel|build|update|firmware|fw|kernel|"
    r"driver|sdk|api|patch|revision|rev|edition|section|sections|sec|clause|chapter|"
    r"article|art|paragraph|para|no|nr|§)\.?\s*[:#]?\s*|\bv|§\s*)$")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|"
                   rf"{_OCTET}(?:\.{_OCTET}){{3}})?(?:%[\w.]+)?(?![\w:]|\.\w)")
_GLOBAL_V6 = ipaddress.ip_network("2000::/3")

_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,6}"
                         r"(?!\w|[.-]\d)")
_PHONE_NANP = re.compile(r"(?<![\w(+.-])(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?!\w|[.-]\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w]|[.-]\d)")


@dataclass(frozen=True, order=True)
class Match:
    start: int
    end: int
    kind: str
    value: str


def _emails(text: str) -> list[Match]:
    if "@" not in text:
        return []
    return [Match(m.start(), m.end(), "email", m.group(0)) for m in _EMAIL.finditer(text)
            if m.group(3).lower() not in FILE_EXTENSIONS]


def _ipv4(text: str, public_only: bool) -> list[Match]:
    out = []
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text, max(0, m.start() - 24), m.start()):
            continue
        ip = ipaddress.IPv4Address(m.group(0))
        if public_only and not (ip.is_global and not ip.is_multicast):
            continue
        out.append(Match(m.start(), m.end(), "ip", m.group(0)))
    return out


def _ipv6(text: str, public_only: bool) -> list[Match]:
    if "::" not in text and text.count(":") < 7:
        return []
    out = []
    for m in _IPV6.finditer(text):
        s = m.group(0)
        if not any(c not in ":" for c in s):
            continue
        try:
            ip = ipaddress.IPv6Address(s.split("%", 1)[0])
        except ValueError:
            continue
        if public_only and not (ip in _GLOBAL_V6 and ip.is_global):
            continue
        if not public_only and ip.is_unspecified:
            continue
        out.append(Match(m.start(), m.end(), "ip", s))
    return out


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _phones(text: str) -> list[Match]:
    out = []
    for m in _PHONE_INTL.finditer(text):
        if 8 <= len(_digits(m.group(0))) <= 15:
            out.append(Match(m.start(), m.end(), "phone", m.group(0)))
    for m in _PHONE_NANP.finditer(text):
        d = _digits(m.group(0))
        if d[0] not in "01" and d[3] not in "01":  # NANP area code and exchange rules
            out.append(Match(m.start(), m.end(), "phone", m.group(0)))
    return out


def iban_ok(s: str) -> bool:
    s = s.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ibans(text: str) -> list[Match]:
    return [Match(m.start(), m.end(), "iban", m.group(0)) for m in _IBAN.finditer(text)
            if iban_ok(m.group(0))]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network_ok(d: str) -> bool:
    n = len(d)
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if d[:2] in ("34", "37"):
        return n == 15  # American Express
    if "51" <= d[:2] <= "55" or "2221" <= d[:4] <= "2720":
        return n == 16  # Mastercard
    if d.startswith("6011") or d.startswith("65") or "644" <= d[:3] <= "649":
        return 16 <= n <= 19  # Discover
    if "3528" <= d[:4] <= "3589":
        return 16 <= n <= 19  # JCB
    return False


def _cards(text: str) -> list[Match]:
    out = []
    for m in _CARD.finditer(text):
        d = _digits(m.group(0))
        if 13 <= len(d) <= 19 and card_network_ok(d) and luhn_ok(d):
            out.append(Match(m.start(), m.end(), "credit_card", m.group(0)))
    return out


def find_pii(text: str, *, emails: bool = True, ips: bool = True, phones: bool = False,
             ibans: bool = False, credit_cards: bool = False,
             public_ips_only: bool = True) -> list[Match]:
    """Every match in ``text``, in order, none overlapping (earlier, then longer, wins)."""
    found: list[Match] = []
    if emails:
        found += _emails(text)
    if ips:
        found += _ipv4(text, public_ips_only) + _ipv6(text, public_ips_only)
    if ibans:
        found += _ibans(text)
    if credit_cards:
        found += _cards(text)
    if phones:
        found += _phones(text)
    found.sort(key=lambda m: (m.start, -m.end, KINDS.index(m.kind)))
    out: list[Match] = []
    for m in found:
        if not out or m.start >= out[-1].end:
            out.append(m)
    return out


def placeholder_for(kind: str, value: str, style: str, overrides: dict[str, str]) -> str:
    if kind in overrides:
        return overrides[kind]
    if style == "fineweb" and kind in FINEWEB:
        options = FINEWEB[kind]
        h = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return options[int.from_bytes(h, "big") % len(options)]
    return TYPED[kind]


def replace(text: str, matches: list[Match], style: str = "fineweb",
            overrides: dict[str, str] | None = None) -> str:
    parts, pos = [], 0
    for m in matches:
        parts += [text[pos:m.start], placeholder_for(m.kind, m.value, style, overrides or {})]
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts)


# ----------------------------------------------------------------------------- the stage
class Pii(Stage):
    """Replaces e-mail and public IP addresses (optionally phone numbers, IBANs and card
    numbers) with placeholders, or lists them (`mode: annotate`). Never drops a document.

    Columns: `<name>_<kind>` (int32 matches per document, per enabled kind) and, in
    annotate mode, `<name>_spans` (list of {kind, start, end}). See docs/pii.md."""

    Params: ClassVar[type[Params]] = PiiParams
    params: PiiParams

    def kinds(self) -> list[str]:
        p = self.params
        on = {"email": p.emails, "ip": p.ips, "phone": p.phones, "iban": p.ibans,
              "credit_card": p.credit_cards}
        return [k for k in KINDS if on[k]]

    def input_columns(self) -> tuple[str, ...]:
        return (self.params.column,)

    def output_columns(self) -> dict[str, pa.DataType | None]:
        out: dict[str, pa.DataType | None] = {}
        if self.params.mode == "replace":
            out[self.params.column] = "string"
        if self.params.count_columns:
            out.update({f"{self.name}_{k}": "int32" for k in self.kinds()})
        if self.params.mode == "annotate":
            out[f"{self.name}_spans"] = pa.list_(span_type())
        return out

    def process(self, table: pa.Table, stats: StageStats) -> pa.Table:
        p = self.params
        require_columns(self, table, (p.column,))
        kinds = self.kinds()
        texts = table.column(p.column).to_pylist()
        counts: dict[str, list[int]] = {k: [] for k in kinds}
        new_texts: list[str | None] = []
        spans: list[list[dict] | None] = []
        for text in texts:
            if not text:
                matches = []
            else:
                matches = find_pii(text, emails=p.emails, ips=p.ips, phones=p.phones,
                                   ibans=p.ibans, credit_cards=p.credit_cards,
                                   public_ips_only=p.public_ips_only)
            for k in kinds:
                counts[k].append(0)
            for m in matches:
                counts[m.kind][-1] += 1
            if p.mode == "annotate":
                spans.append([{"kind": m.kind, "start": m.start, "end": m.end}
                              for m in matches] if text is not None else None)
            else:
                new_texts.append(replace(text, matches, p.placeholder, p.replacements)
                                 if matches else text)
        if p.mode == "replace":
            for k in kinds:  # documents rewritten, per kind: counted, and sampled before/after
                rows = [i for i, n in enumerate(counts[k]) if n and new_texts[i] != texts[i]]
                stats.change_rows(f"replaced:{k}", table, rows, [texts[i] for i in rows],
                                  [new_texts[i] for i in rows])
            # matches replaced, per kind, in total and per language / dataset (`removed`)
            rows = [i for i in range(len(texts)) if any(counts[k][i] for k in kinds)]
            stats.count_removed(table, rows, {"docs": [1] * len(rows),
                                              **{k: [counts[k][i] for i in rows]
                                                 for k in kinds}})
            table = set_column(table, p.column, new_texts, pa.string())
        if p.count_columns:
            for k in kinds:
                table = set_column(table, f"{self.name}_{k}", counts[k], pa.int32())
        if p.mode == "annotate":
            table = set_column(table, f"{self.name}_spans", spans, pa.list_(span_type()))
        return table
