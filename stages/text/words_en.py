"""English word splitting that makes spaCy's splits, without spaCy.

datatrove's Gopher, C4 and FineWeb filters count words with spaCy's blank English
tokenizer, which is slow (docs/benchmarks.md). To make the same keep/drop
decisions at a fraction of the cost, this module follows the same procedure as that
tokenizer, with its own patterns and its own table of special cases:

1. split the text on whitespace into chunks;
2. peel prefixes (opening punctuation, quotes, currency signs) and suffixes
   (closing punctuation, quotes, ``'s``, a final period after a lowercase letter,
   a digit or punctuation, units and currencies after a number) until nothing
   changes or a special case (``don't`` -> ``do n't``, ``Mr.``) remains;
3. keep what is left whole if it is a special case or a URL, else split it on
   infixes (hyphens and ``/:<>=`` before a letter, ``.`` between a lowercase and
   an uppercase letter, ``,`` between letters, ellipses, symbols).

Each chunk's result is memoised: text repeats its words, so most chunks are
dictionary hits. ``sentence_count`` reproduces spaCy's rule-based sentencizer on
these tokens, for C4's five-sentence rule. How close this is to spaCy, token by
token and decision by decision, is measured by tests/test_datatrove_parity.py.
Letter classes are Unicode categories, which matches spaCy for Latin, Greek and
Cyrillic; rarer scripts may differ on a few characters.
"""

from __future__ import annotations

import unicodedata
from itertools import chain

from pipelines.lazy import lazy_module

regex = lazy_module("regex")

# ---------------------------------------------------------------- character classes

_OPEN_CLOSE = r"…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·।،۔؛٪"
_QUOTES = "'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉\u2329\u232a⟦⟧"
_CURRENCY = r"US\$|C\$|A\$|[$£€¥฿₽﷼₠-₿]"
_UNITS = "|".join(sorted((
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb "
    "oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % "
    "км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар "
    "Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб").split(), key=len, reverse=True))
# Letters as spaCy's English tokenizer sees them: cased Latin, Greek and Cyrillic, plus
# whole blocks of some uncased scripts (marks and digits included) counting as both cases.
_UNCASED = "".join(rf"\p{{Script={name}}}" for name in (
    "Arabic Hebrew Devanagari Bengali Tamil Telugu Kannada Sinhala Ethiopic Hangul Hiragana "
    "Katakana Han").split()) + r"\u3000-\u303F\u3200-\u33FF\uFE30-\uFE4F"
_CASED = r"\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}"
_LOWER = rf"[\p{{Ll}}&&[{_CASED}]]{_UNCASED}"
_UPPER = rf"[\p{{Lu}}&&[{_CASED}]]{_UNCASED}"
_ALPHA = rf"[\p{{L}}&&[{_CASED}]]{_UNCASED}"
_HYPHEN = r"-|–|—|--|---|——|~"

_PREFIX_SOURCE = (
    rf"^(?:[§%=—–]|\+(?![0-9])|\.\.+|{_CURRENCY}|[{_OPEN_CLOSE}{_QUOTES}]|\p{{So}})")
_SUFFIX_SOURCE = (
    rf"(?:[{_OPEN_CLOSE}{_QUOTES}—–]|……|\.\.+|\p{{So}}|['’][sS]"
    rf"|(?<=[0-9])\+|(?<=°[FfCcKk])\."
    rf"|(?<=[0-9])(?:{_CURRENCY})|(?<=[0-9])(?:{_UNITS})"
    rf"|(?<=[0-9{_LOWER}%²\-+{_OPEN_CLOSE}{_QUOTES}(?:])\.|(?<=[{_UPPER}][{_UPPER}])\.)$")
_INFIX_SOURCE = (
    rf"\.\.+|…|\p{{So}}|(?<=[0-9])[+\-*^](?=[0-9-])"
    rf"|(?<=[{_LOWER}{_QUOTES}])\.(?=[{_UPPER}{_QUOTES}])|(?<=[{_ALPHA}]),(?=[{_ALPHA}])"
    rf"|(?<=[{_ALPHA}0-9])(?:{_HYPHEN})(?=[{_ALPHA}])|(?<=[{_ALPHA}0-9])[:<>=/](?=[{_ALPHA}])")
_HOST = (r"(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
         r"\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])"
         r"|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?"
         rf"[A-Za-z0-9\u00a1-\uffff]\.)+[{_LOWER}]{{2,63}})")
_URL_TAIL = r"(?::\d{2,5})?(?:[/?#]\S*)?$"
_SCHEME = r"^(?:[\w+\-.]{2,}://)?"
_URL_SOURCE = _SCHEME + _HOST + _URL_TAIL
_URL_USER_SOURCE = _SCHEME + r"(?:\S+(?::\S*)?@)?" + _HOST + _URL_TAIL
# letters then , ; : ! ? -- or lowercase letters then a period: the suffix splits off
_WORD_PUNCT_SOURCE = rf"^(?:(\p{{L}}+)[,;:!?]|(\p{{L}}*[{_LOWER}])\.)$"


# ---------------------------------------------------------------- special cases

def _contractions() -> dict[str, tuple[str, ...]]:
    """English contractions, with straight and curly apostrophes and without one."""
    forms: list[tuple[str, ...]] = []
    pronouns = "you he she it we they who what where when why how there that this these those"
    for p in ["i", *pronouns.split()]:
        ends = ["'d", "'d've", "'ll", "'ll've", "'ve"]
        if p == "i":
            ends.append("'m")
            forms.append(("i", "'m", "a"))
        if p not in ("i", "he", "she", "it", "that", "this"):
            ends.append("'re")
        if p not in ("i", "you", "we", "they", "these", "those"):
            ends.append("'s")
        forms += [(p, *_clitics(e)) for e in ends]
    negatives = ("ai are ca could dare did does do had has have is may might must need ought sha "
                 "should was were wo would")
    for a in negatives.split():
        forms.append((a, "n't"))
        if a not in ("ai", "are", "dare", "has", "have", "is", "was", "were"):
            forms.append((a, "n't", "'ve"))
    forms += [(m, "'ve") for m in "could might must should would not".split()]
    forms += [("let", "'s"), ("c'm", "on"), ("how", "'d", "'y")]
    no_apostrophe_clash = {"hell", "well", "were", "ill", "its", "shell", "shed", "whore", "lets",
                           "cmon", "howdy", "wholl"}
    out: dict[str, tuple[str, ...]] = {}
    for parts in forms:
        for apo in ("'", "’"):
            toks = tuple(t.replace("'", apo) for t in parts)
            _add_cased(out, toks)
        bare = tuple(t.replace("'", "") for t in parts)
        if "".join(bare) not in no_apostrophe_clash and all(bare):
            _add_cased(out, bare)
    for parts in [("can", "not"), ("gon", "na"), ("got", "ta")]:
        _add_cased(out, parts)
    out.update({"y'all": ("y'", "all"), "y’all": ("y’", "all"), "yall": ("y", "all")})
    return out


def _clitics(end: str) -> list[str]:
    return ["'" + c for c in end.split("'") if c]


def _add_cased(table: dict, toks: tuple[str, ...]) -> None:
    table["".join(toks)] = toks
    title = (toks[0][:1].upper() + toks[0][1:], *toks[1:])
    table.setdefault("".join(title), title)


_ABBREVIATIONS = (
    # months, titles, companies, Latin, US states: a period that does not end a sentence
    "Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. "
    "Mr. Mrs. Ms. Dr. Prof. Rev. Gen. Gov. Sen. Rep. Adm. St. Mt. Jr. Messrs. "
    "Co. co. Corp. Inc. Ltd. Bros. e.g. E.g. E.G. i.e. I.e. I.E. vs. v.s. a.m. p.m. Ph.D. "
    "Ak. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ia. Id. Ill. Ind. Kan. Kans. Ky. "
    "La. Mass. Md. Mich. Minn. Miss. Mo. Mont. Neb. Nebr. Nev. Okla. Ore. Pa. Tenn. Va. Wash. "
    "Wis. D.C. N.C. N.D. N.H. N.J. N.M. N.Y. S.C. ä. ö. ü."
).split() + [c + "." for c in "abcdefghijklmnopqrstuvwxyz"]

_SINGLE = (
    "'s 'S ’s ’S 's 'd 'll 're 'em ’em 'bout ’bout 'cause ’cause 'nuff ’nuff nuff "
    "'Cause 'cause ’Cause ’cause 'Cos 'cos 'Coz 'coz 'Cuz 'cuz ol' ol’ Ol' Ol’ "
    "' '' ’ ’’ and/or w/o C++ o'clock O'clock o’clock O’clock ma'am Ma'am ma’am Ma’am "
    # emoticons
    ":) :-) :)) :))) :-)) :-))) :( :-( :(( :((( :-(( :-((( ;) ;-) :D :-D ;D :P :-P :p :-p "
    ":/ :-/ :| :-| :o :O :-o :-O :o) :0 :3 :> "
    ":] :-] :} :* :-* :x :X :1 :'( :') <3 </3 ^_^ -_- XD xD 8) 8-) 8D (: ): (; (= =) =( =/ =3 =D "
    "=[ =] =| [: [= ]= [-: (-: )-: (-; o.O O.o O_O o_o 0_o 0.o >.< <.< >.> ;_; @_@"
).split()


def _build_specials() -> dict[str, tuple[str, ...]]:
    table = _contractions()
    for word in _ABBREVIATIONS + _SINGLE:
        table[word] = (word,)
    for stem in "doin goin havin lovin nothin nuthin somethin".split():
        for word in (stem, stem.title()):
            for end in ("", "'", "’"):
                table[word + end] = (word + end,)
    for unit in "CFKcfk":  # a degree sign, a unit, a period
        table[f"°{unit}."] = ("°", unit, ".")
    for hour in range(1, 13):
        for suffix in ("am", "pm", "a.m.", "p.m."):
            table[f"{hour}{suffix}"] = (str(hour), suffix)
    return table


SPECIALS: dict[str, tuple[str, ...]] = _build_specials()


# ---------------------------------------------------------------- splitting

# Compiled by _compile() on the first split: compiling costs tens of milliseconds, which
# an import (``thresher validate`` of a chain with a Gopher or C4 filter) need not pay.
_PREFIX = _SUFFIX = _INFIX = _URL = _URL_USER = _WORD_PUNCT = _HAS_DIGIT = None
_MERGE: dict[tuple[str, ...], tuple[str, ...]] | None = None
_MERGE_MAX = 0


def _compile() -> None:
    """Compile the patterns, then the merge table (which splits with them)."""
    global _PREFIX, _SUFFIX, _INFIX, _URL, _URL_USER, _WORD_PUNCT, _HAS_DIGIT, _MERGE, \
        _MERGE_MAX
    _PREFIX = regex.compile(_PREFIX_SOURCE, regex.V1).match
    _SUFFIX = regex.compile(_SUFFIX_SOURCE, regex.V1).search
    _INFIX = regex.compile(_INFIX_SOURCE, regex.V1).finditer
    _URL = regex.compile(_URL_SOURCE, regex.V1).match
    _URL_USER = regex.compile(_URL_USER_SOURCE, regex.V1).match
    _WORD_PUNCT = regex.compile(_WORD_PUNCT_SOURCE, regex.V1).match
    _HAS_DIGIT = regex.compile("[0-9]").search
    _MERGE, _MERGE_MAX = _merge_table()


def _may_end_in_suffix(s: str) -> bool:
    """False when no suffix pattern can match: saves a regex search on most words."""
    last = s[-1]
    if not last.isalnum():
        return True
    return (last in "sS" and s[-2:-1] in ("'", "’")) or _HAS_DIGIT(s) is not None


def _affix_split(chunk: str, specials: dict[str, tuple[str, ...]]) -> list[str]:
    """Peel prefixes and suffixes, then split the rest on infixes (unless special or a URL)."""
    s = chunk
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = -1
    while s and len(s) != last:
        if s in specials:
            break
        last = len(s)
        m = _PREFIX(s)
        pre = m.end() if m else 0
        if pre and s[pre:] in specials:
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        m = _SUFFIX(s[pre:]) if _may_end_in_suffix(s) else None
        suf = m.end() - m.start() if m else 0
        if suf and s[:-suf] in specials:
            suffixes.append(s[-suf:])
            s = s[:-suf]
            break
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
    out = prefixes
    if s:
        special = specials.get(s)
        if special is not None:
            out.extend(special)
        elif "." in s and (_URL_USER(s) if "@" in s else _URL(s)):
            out.append(s)
        else:
            start = 0
            for m in _INFIX(s):
                a, b = m.span()
                if a == 0:
                    continue
                if a != start:
                    out.append(s[start:a])
                if a != b:
                    out.append(s[a:b])
                start = b
            if s[start:]:
                out.append(s[start:])
    out.extend(reversed(suffixes))
    return out


def _merge_table() -> tuple[dict[tuple[str, ...], tuple[str, ...]], int]:
    """Token runs that spell a special case once affixes are split (``z`` ``.`` -> ``z.``).

    spaCy re-joins these after splitting; so do we.
    """
    table = {}
    for word, toks in SPECIALS.items():
        plain = tuple(_affix_split(word, {}))
        if len(plain) > 1 and plain != toks:
            table[plain] = toks
    return table, max(map(len, table))


def split_chunk(chunk: str) -> tuple[str, ...]:
    """Tokens of one whitespace-free chunk, as spaCy's English tokenizer makes them."""
    special = SPECIALS.get(chunk)
    if special is not None:
        return special
    if chunk.isalpha() or chunk.isdigit():  # no affix or infix can apply
        return (chunk,)
    if _MERGE is None:
        _compile()
    m = _WORD_PUNCT(chunk)
    if m and (m[1] or m[2]) not in SPECIALS:  # a word and a comma, period, ...: common
        word = m[1] or m[2]
        return (word, chunk[len(word):])
    toks = _affix_split(chunk, SPECIALS)
    if len(toks) > 1:
        i = 0
        while i < len(toks) - 1:
            for n in range(min(_MERGE_MAX, len(toks) - i), 1, -1):
                merged = _MERGE.get(tuple(toks[i:i + n]))
                if merged is not None:
                    toks[i:i + n] = merged
                    i += len(merged) - 1
                    break
            i += 1
    return tuple(toks)


# Chunk -> tokens. When full, the cache keeps what it has (the frequent chunks come
# early in any corpus) and new chunks are split every time: no thrashing, bounded memory.
# The filters empty it at the start of each task (words.clear_word_caches).
_CACHE: dict[str, tuple[str, ...]] = {}
_CACHE_MAX = 300_000


def clear_chunk_cache() -> None:
    _CACHE.clear()


def split_words(text: str) -> list[str]:
    """Words and punctuation tokens of ``text`` (whitespace dropped), as spaCy splits them."""
    chunks = text.split()
    cache = _CACHE
    try:  # the common case, every chunk seen before: one pass in C
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))
    except KeyError:
        pass
    out: list[str] = []
    room = _CACHE_MAX - len(cache)
    for chunk in chunks:
        toks = cache.get(chunk)
        if toks is None:
            toks = split_chunk(chunk)
            if room > 0:
                cache[chunk] = toks
                room -= 1
        out += toks
    return out


# ---------------------------------------------------------------- sentences

# Unicode's Sentence_Terminal characters (spaCy's sentencizer uses a subset of them), as
# code point ranges: \p{Sentence_Terminal} of the `regex` module (2026.11.15, its own
# Unicode data) written out, because finding them by matching all of Unicode took 0.05-0.1 s
# of every import of this module (``thresher validate`` of a chain with a Gopher or C4
# filter among them). tests/test_segmenters.py checks the table against that property.
_SENTENCE_TERMINAL = (
    (0x0021, 0x0021), (0x002E, 0x002E), (0x003F, 0x003F), (0x0589, 0x0589),
    (0x061D, 0x061F), (0x06D4, 0x06D4), (0x0700, 0x0702), (0x07F9, 0x07F9),
    (0x0837, 0x0837), (0x0839, 0x0839), (0x083D, 0x083E), (0x0964, 0x0965),
    (0x104A, 0x104B), (0x1362, 0x1362), (0x1367, 0x1368), (0x166E, 0x166E),
    (0x1735, 0x1736), (0x17D4, 0x17D5), (0x1803, 0x1803), (0x1809, 0x1809),
    (0x1944, 0x1945), (0x1AA8, 0x1AAB), (0x1B4E, 0x1B4F), (0x1B5A, 0x1B5B),
    (0x1B5E, 0x1B5F), (0x1B7D, 0x1B7F), (0x1C3B, 0x1C3C), (0x1C7E, 0x1C7F),
    (0x2024, 0x2024), (0x203C, 0x203D), (0x2047, 0x2049), (0x2CF9, 0x2CFB),
    (0x2E2E, 0x2E2E), (0x2E3C, 0x2E3C), (0x2E53, 0x2E54), (0x2E60, 0x2E61),
    (0x3002, 0x3002), (0xA4FF, 0xA4FF), (0xA60E, 0xA60F), (0xA6F3, 0xA6F3),
    (0xA6F7, 0xA6F7), (0xA876, 0xA877), (0xA8CE, 0xA8CF), (0xA92F, 0xA92F),
    (0xA9C8, 0xA9C9), (0xAA5D, 0xAA5F), (0xAAF0, 0xAAF1), (0xABEB, 0xABEB),
    (0xFE12, 0xFE12), (0xFE15, 0xFE16), (0xFE52, 0xFE52), (0xFE56, 0xFE57),
    (0xFF01, 0xFF01), (0xFF0E, 0xFF0E), (0xFF1F, 0xFF1F), (0xFF61, 0xFF61),
    (0x10A56, 0x10A57), (0x10F55, 0x10F59), (0x10F86, 0x10F89), (0x11047, 0x11048),
    (0x110BE, 0x110C1), (0x11141, 0x11143), (0x111C5, 0x111C6), (0x111CD, 0x111CD),
    (0x111DE, 0x111DF), (0x11238, 0x11239), (0x1123B, 0x1123C), (0x112A9, 0x112A9),
    (0x113D4, 0x113D5), (0x1144B, 0x1144C), (0x115C2, 0x115C3), (0x115C9, 0x115D7),
    (0x11641, 0x11642), (0x1173C, 0x1173E), (0x11944, 0x11944), (0x11946, 0x11946),
    (0x11A42, 0x11A43), (0x11A9B, 0x11A9C), (0x11C41, 0x11C42), (0x11EF7, 0x11EF8),
    (0x11F43, 0x11F44), (0x16A6E, 0x16A6F), (0x16AF5, 0x16AF5), (0x16B37, 0x16B38),
    (0x16B44, 0x16B44), (0x16D6E, 0x16D6F), (0x16E98, 0x16E98), (0x1BC9F, 0x1BC9F),
    (0x1DA88, 0x1DA88),
)
SENTENCE_END = frozenset(chr(c) for a, b in _SENTENCE_TERMINAL for c in range(a, b + 1))


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(ch).startswith("P") for ch in token)


def sentence_count(tokens: list[str]) -> int:
    """Sentences in a token list by spaCy's sentencizer rule.

    A sentence ends at a sentence-ending punctuation token; the next sentence
    starts at the first following token that is not punctuation.
    """
    count = 1 if tokens else 0
    seen_end = False
    for tok in tokens:
        if tok in SENTENCE_END:
            seen_end = True
        elif seen_end and not _is_punct(tok):
            count += 1
            seen_end = False
    return count
