"""Build pii-labelled.jsonl.gz: real web text with planted, labelled PII and false-positive traps.

Base texts: documents of ../quality/filter-docs.jsonl.gz (real extracted web pages, see
../NOTICE.md) in which a broad net finds nothing PII-like (no '@', no dotted quad, no '::',
no '+digit', no phone- or card-like digit groups), cut to at most 2,500 characters at a
line end, so that every address in a document is one planted here and labelled.

Into each document 1 to 4 items are planted at line ends, each inside a sentence that
a web page would carry (contact lines, server logs, download pages, forum posts):

- positives (``spans``): e-mail addresses (names, plus-addressing, subdomains, country
  and new TLDs, upper case, a few obfuscated "name (at) domain (dot) com" ones that no
  regex here is meant to find, kept so recall is honest), public IPv4 (bare, with a port,
  in a URL, at a sentence end) and IPv6 addresses, and, for the opt-in kinds, phone
  numbers, IBANs (valid check digits) and card numbers (valid Luhn, real network prefixes);
- traps (``traps``, not PII): 4-part version numbers after "version"/"v"/"build", section
  numbers, SNMP OIDs (1.3.6.1.4.1...), retina image names (logo@2x.png), private, loopback,
  documentation and link-local addresses (FineWeb leaves them alone), dates, times, MAC
  addresses, C++ ``std::`` names, ISBNs, order numbers that fail Luhn, IBAN-like strings
  that fail mod-97.

Run from the repository root: ``python tests/data/pii/make_pii_set.py`` (deterministic).
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "quality" / "filter-docs.jsonl.gz"
OUT = HERE / "pii-labelled.jsonl.gz"
N_DOCS = 320
MAX_CHARS = 2500
NET = re.compile(r"@|\d+\.\d+\.\d+\.\d+|::|\+\d|\d{3}[-. )]\s?\d{3}[-. ]\d{4}|\d{4}[ -]\d{4}"
                 r"[ -]\d{4}|[A-Z]{2}\d{2} ?[A-Z0-9]{4}|\d{13,19}|(?:[0-9a-f]{1,4}:){3}", re.I)

FIRST = ["anna", "jonas", "marie", "peter", "sofia", "lukas", "emma", "david", "laura", "felix",
         "chen", "olga", "ahmed", "lucia", "mark", "ines", "tomasz", "yuki", "carla", "ben"]
LAST = ["mueller", "schmidt", "dubois", "garcia", "rossi", "novak", "kowalski", "smith", "jones",
        "berger", "lefevre", "wagner", "martin", "silva", "tanaka", "weber", "brown", "costa"]
DOMAINS = ["gmail.com", "yahoo.co.uk", "web.de", "gmx.net", "outlook.com", "orange.fr",
           "mail.ru", "uni-heidelberg.de", "stadtwerke-bonn.de", "ph.ed.ac.uk", "kanzlei-weber.de",
           "bakery-studio.photography", "hotmail.it", "cs.stanford.edu", "example-shop.com.br",
           "posteo.de", "icloud.com", "proton.me", "firma.at", "nhs.net"]


def rand_email(rng: random.Random) -> str:
    f, last, d = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    local = rng.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{rng.randint(1, 99)}",
                        f"{f}+newsletter", f"{last}", "info", "kontakt", "support",
                        f"{f}.{last}".upper() if rng.random() < 0.1 else f"{f}-{last}"])
    return f"{local}@{d}"


def rand_public_v4(rng: random.Random) -> str:
    import ipaddress
    while True:
        ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        if ipaddress.IPv4Address(ip).is_global and not ipaddress.IPv4Address(ip).is_multicast:
            return ip


def rand_public_v6(rng: random.Random) -> str:
    prefix = rng.choice(["2001:4860", "2a00:1450", "2606:4700", "2a02:8108", "2001:1af8",
                         "2400:cb00", "2604:a880"])
    groups = [f"{rng.randint(0, 0xffff):x}" for _ in range(rng.choice([2, 3, 6]))]
    if len(groups) == 6:
        return prefix + ":" + ":".join(groups)
    return prefix + ":" + ":".join(groups[:1]) + "::" + ":".join(groups[1:])


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, c in enumerate(reversed(digits)):
            d = int(c)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError


def iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    raw = f"{country}{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def grouped(d: str, sep: str) -> str:
    if len(d) == 15:
        return sep.join([d[:4], d[4:10], d[10:]])
    return sep.join(d[i:i + 4] for i in range(0, len(d), 4))


# (kind, template); {x} is the item; the label covers exactly {x}
def positives(rng: random.Random) -> list[tuple[str, str, str]]:
    e, v4, v6 = rand_email(rng), rand_public_v4(rng), rand_public_v6(rng)
    port = rng.choice([22, 80, 443, 8080, 3306])
    phone_intl = rng.choice([f"+49 {rng.randint(30, 89)} {rng.randint(1000000, 9999999)}",
                             f"+44 20 {rng.randint(7000, 8999)} {rng.randint(1000, 9999)}",
                             f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} "
                             f"{rng.randint(10, 99)} {rng.randint(10, 99)}",
                             f"+1 ({rng.randint(201, 989)}) {rng.randint(200, 999)}-"
                             f"{rng.randint(1000, 9999)}"])
    phone_us = f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    card = grouped(luhn_complete(rng.choice(["4", "51", "55", "6011"]),
                                 16, rng), rng.choice([" ", "-"]))
    amex = grouped(luhn_complete("37", 15, rng), " ")
    ib = rng.choice([iban("DE", f"{rng.randint(10**17, 10**18 - 1)}"),
                     iban("FR", f"{rng.randint(10**22, 10**23 - 1)}"),
                     iban("GB", "NWBK" + f"{rng.randint(10**13, 10**14 - 1)}")])
    obf = rand_email(rng).replace("@", " (at) ").replace(".", " (dot) ")
    return [
        ("email", "email", "For questions please contact {x}."),
        ("email", "email", "Send your application to {x} by the end of the month."),
        ("email", "email", "Kontakt: {x}"),
        ("email", "email", "Posted by <{x}> on the mailing list."),
        ("email", "email", "Reply-To: {x}"),
        ("email", "email", "(mailto:{x})"),
        ("ip", "ipv4", "Server IP: {x}"),
        ("ip", "ipv4", f"Failed password for root from {{x}} port {port} ssh2"),
        ("ip", "ipv4", "My router keeps connecting to {x}."),
        ("ip", "ipv4", "{x} - - [12/Mar/2021:10:14:02 +0100] \"GET /index.html HTTP/1.1\" 200"),
        ("ip", "ipv4", "Open http://{x}/admin in your browser."),
        ("ip", "ipv4_port", f"The game server runs on {{x}}:{port} again."),
        ("ip", "ipv6", "Our mail host answers on {x} as well."),
        ("ip", "ipv6", "inet6 {x}/64 scope global"),
        ("phone", "phone_intl", "Telefon: {x}"),
        ("phone", "phone_us", "Call us at {x} for a free quote."),
        ("iban", "iban", "Bankverbindung: IBAN {x}, BIC GENODEF1S02"),
        ("credit_card", "card", "I paid with the card {x} and it was charged twice."),
        ("credit_card", "card_amex", "Card number: {x}"),
        ("email_obfuscated", "email_obfuscated", "write to {x} if the form does not work"),
    ], {"email": e, "ipv4": v4, "ipv4_port": v4, "ipv6": v6, "phone_intl": phone_intl,
        "phone_us": phone_us, "iban": ib, "card": card, "card_amex": amex,
        "email_obfuscated": obf}


def traps(rng: random.Random) -> list[tuple[str, str]]:
    a, b, c, d = (rng.randint(0, 20) for _ in range(4))
    priv = rng.choice([f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"])
    card_bad = luhn_complete("4", 16, rng)
    card_bad = card_bad[:-1] + str((int(card_bad[-1]) + 1) % 10)
    return [
        ("version", f"Update to version {a}.{b}.{c}.{d} before installing the plugin."),
        ("version", f"Changelog for v{a}.{b}.{c}.{d}: fixed a crash on startup."),
        ("version", f"Windows build {a}.{b}.{c}.{d} is now available."),
        ("section", f"The requirements are listed in section {a + 1}.{b}.{c}.{d}."),
        ("oid", f"Query the OID 1.3.6.1.4.1.{rng.randint(100, 40000)}.1.{a} with snmpget."),
        ("retina", "Replace logo@2x.png and icon@3x.webp in the theme folder."),
        ("retina", "background-image: url(images/hero-banner@2x.jpg);"),
        ("private_ip", f"Set the gateway to {priv} in the router menu."),
        ("loopback", "The service listens on 127.0.0.1 only."),
        ("documentation_ip", f"For example 192.0.2.{rng.randint(1, 254)} or "
                             f"2001:db8::{rng.randint(1, 999)}."),
        ("link_local", "The interface got fe80::1ff:fe23:4567:890a and 169.254.10.3."),
        ("date", f"Published on {rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}."
                 f"{rng.randint(1995, 2024)} and updated 2023-10-{rng.randint(10, 28)}."),
        ("time", f"The race started at {rng.randint(10, 23)}:{rng.randint(10, 59)}:"
                 f"{rng.randint(10, 59)} local time."),
        ("mac", "MAC address 00:1A:2B:3C:4D:5E was blocked."),
        ("cpp", "Use std::vector<int> and std::sort from the standard library."),
        ("isbn", f"ISBN 978-3-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-"
                 f"{rng.randint(0, 9)}"),
        ("order_number", f"Order number {card_bad} has shipped."),
        ("iban_like", "Reference DE12 3456 7890 1234 5678 90 is not a valid account."),
        ("localhost_email", "Messages to root@localhost are discarded."),
        ("handle", "Follow @stadtwerke_bonn for updates."),
        ("price", f"Total: {rng.randint(1, 9)} 499.00 EUR, ref. {rng.randint(1000, 9999)}-"
                  f"{rng.randint(10, 99)}"),
    ]


def base_texts() -> list[dict]:
    docs = []
    with gzip.open(SOURCE, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            text = d["text"]
            if NET.search(text) or len(text) < 600:
                continue
            if len(text) > MAX_CHARS:
                cut = text.rfind("\n", 0, MAX_CHARS)
                text = text[:cut if cut > 300 else MAX_CHARS]
            docs.append({"base_id": d["id"], "text": text})
    return docs


def plant(text: str, sentences: list[str], rng: random.Random) -> tuple[str, list[int]]:
    """Insert each sentence as its own line after a random line; return new text and the
    offset where each sentence starts."""
    lines = text.split("\n")
    slots = sorted(rng.randrange(len(lines) + 1) for _ in sentences)
    out, offsets, pos, j = [], [0] * len(sentences), 0, 0
    order = list(range(len(sentences)))
    for i in range(len(lines) + 1):
        while j < len(slots) and slots[j] == i:
            offsets[order[j]] = pos
            out.append(sentences[order[j]])
            pos += len(sentences[order[j]]) + 1
            j += 1
        if i < len(lines):
            out.append(lines[i])
            pos += len(lines[i]) + 1
    return "\n".join(out), offsets


def main() -> None:
    rng = random.Random(18)
    bases = base_texts()
    rng.shuffle(bases)
    rows = []
    for n, base in enumerate(bases[:N_DOCS]):
        items = []  # (sentence, label or None, trap category or None)
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.55:
                templates, values = positives(rng)
                kind, sub, tpl = rng.choice(templates)
                items.append((tpl, values[sub], kind, sub))
            else:
                cat, sentence = rng.choice(traps(rng))
                items.append((sentence, None, None, cat))
        sentences = [tpl.replace("{x}", v) if v is not None else tpl
                     for tpl, v, _, _ in items]
        text, offsets = plant(base["text"], sentences, rng)
        spans, trap_list = [], []
        for (tpl, value, kind, sub), off in zip(items, offsets):
            if value is None:
                trap_list.append({"category": sub, "sentence": tpl})
                continue
            start = off + tpl.index("{x}")
            assert text[start:start + len(value)] == value
            spans.append({"kind": kind, "sub": sub, "start": start, "end": start + len(value),
                          "value": value})
        rows.append({"id": f"pii-{n:04d}", "base_id": base["base_id"], "text": text,
                     "spans": sorted(spans, key=lambda s: s["start"]), "traps": trap_list})
    with gzip.GzipFile(OUT, "wb", mtime=0) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode())
    print(f"{OUT}: {len(rows)} documents, {sum(len(r['spans']) for r in rows)} planted "
          f"items, {sum(len(r['traps']) for r in rows)} traps")


if __name__ == "__main__":
    main()
