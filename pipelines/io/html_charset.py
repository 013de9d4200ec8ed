"""Decode HTML bytes: a byte-order mark, else the declared charset (HTTP header, then
<meta>), else UTF-8, else a fallback; and tell binary bodies from text.

Labels are mapped the way browsers do (WHATWG): a page declaring latin-1 or
ascii is decoded as windows-1252, gb2312/gbk as gb18030, and so on. As in
browsers, a BOM wins over any declaration (it is the one unambiguous signal).
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


# Python codecs that consume the BOM, so the decoded text does not start with U+FEFF
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def bom_charset(body: bytes) -> str | None:
    """The charset a byte-order mark at the start of ``body`` announces, if any."""
    for bom, cs in _BOMS:
        if body.startswith(bom):
            return cs
    return None


def decode_html(body: bytes, content_type: str | None, fallback: str = "cp1252") -> tuple[str, str]:
    """(text, charset used). Never raises on bad bytes: they become U+FFFD."""
    cs = bom_charset(body)
    if cs is not None:
        return body.decode(cs, errors="replace"), cs
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


# Signatures of formats that are never HTML (images, archives, documents, media)
# (only unambiguous ones; the control-byte test below catches compressed data anyway)
_BINARY_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"%PDF-",
                 b"PK\x03\x04", b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
                 b"\x28\xb5\x2f\xfd", b"Rar!\x1a\x07", b"\x00\x00\x01\x00", b"OggS\x00",
                 b"ID3\x03", b"ID3\x04", b"fLaC\x00", b"\x00asm", b"\x7fELF", b"MZ\x90\x00",
                 b"wOFF", b"wOF2", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
# WHATWG's "binary data bytes": control characters that do not occur in text
_BINARY_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_SNIFF = 1024


def looks_binary(body: bytes, content_type: str | None = None) -> bool:
    """Whether a body labelled as text is really binary (an image, an archive...).

    A known file signature, or more than 5% binary control bytes in the first KiB
    (one stray NUL in a real page stays text). UTF-16/32 text is full of NULs, so a
    BOM or a declared UTF-16/32 charset means text.
    """
    head = body[:_SNIFF]
    if head.startswith(_BINARY_MAGIC):
        return True
    if bom_charset(head) is not None:
        return False
    declared = declared_charset(head, content_type) or ""
    if declared.startswith(("utf-16", "utf-32")):
        return False
    n_binary = len(head) - len(head.translate(None, _BINARY_BYTES))
    return n_binary > 0.05 * len(head)
