"""Decode HTML bytes: declared charset (HTTP header, then <meta>), else UTF-8, else a fallback.

Labels are mapped the way browsers do (WHATWG): a page declaring latin-1 or
ascii is decoded as windows-1252, gb2312/gbk as gb18030, and so on.
"""

from __future__ import annotations

import codecs
import re

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_:.\-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_:.\-]+)", re.IGNORECASE)

_WHATWG = {
    "latin1": "cp1252", "latin-1": "cp1252", "iso-8859-1": "cp1252", "iso8859-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "iso_8859-1": "cp1252",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "shift-jis": "cp932", "shift_jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "iso-8859-9": "cp1254", "tis-620": "cp874",
    "utf8": "utf-8", "unicode": "utf-8",
}


# Python codecs no browser knows as a charset: bytes-to-bytes codecs (base64, hex, zlib...)
# are excluded by _is_text_encoding; these are text codecs that raise on any input
# (undefined), cannot decode with errors="replace" (idna) or are not charsets at all.
_NOT_CHARSETS = {"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape",
                 "utf-7"}


def normalize_charset(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _WHATWG.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def declared_charset(body: bytes, content_type: str | None) -> str | None:
    if content_type:
        m = _HEADER_CHARSET.search(content_type)
        if m and (cs := normalize_charset(m.group(1))):
            return cs
    m = _META_CHARSET.search(body[:4096])
    if m:
        cs = normalize_charset(m.group(1).decode("ascii", "ignore"))
        # a <meta> that could be read as ASCII cannot be UTF-16 (WHATWG: use UTF-8)
        return "utf-8" if cs in ("utf-16", "utf-16-le", "utf-16-be") else cs
    return None


def decode_html(body: bytes, content_type: str | None, fallback: str = "cp1252") -> tuple[str, str]:
    """(text, charset used). Never raises on bad bytes: they become U+FFFD."""
    cs = declared_charset(body, content_type)
    if cs is not None:
        try:
            return body.decode(cs), cs
        except UnicodeDecodeError:
            if cs != "utf-8":
                try:
                    return body.decode("utf-8"), "utf-8"
                except UnicodeDecodeError:
                    pass
            return body.decode(cs, errors="replace"), cs
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        fb = normalize_charset(fallback) or "utf-8"
        return body.decode(fb, errors="replace"), fb
