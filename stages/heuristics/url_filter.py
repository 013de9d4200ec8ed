"""Drop documents whose URL is on a blocklist (domains, their subdomains, or exact pages).

The list is a plain text file, one entry per line, ``#`` starting a comment:

    example.com                  # blocks example.com and every *.example.com
    ads.example.org              # blocks that host and its subdomains only
    example.net/some/page.html   # blocks that page (any scheme, with or without www.)

Lists like UT1's blacklists (``domains`` and ``urls`` files, as shipped in
datatrove's assets) can be passed as they are. A list may be a URL (s3://, gs://, hf://,
https://), fetched once into the model cache (pipelines/io/models.py); nothing else is
downloaded.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from pipelines.errors import UserError
from pipelines.io.models import local_model, model_hashes
from pipelines.schema import URL
from pipelines.stage import Filter, FilterParams, Params


class UrlFilterParams(FilterParams):
    blocklist_file: str | Annotated[list[str], Field(min_length=1)] = Field(
        description="blocklist file(s), paths or URLs: one domain or URL per line, "
                    "'#' comments")
    drop_missing_url: bool = Field(
        False, description="drop documents without a parseable URL (reason no_url) instead "
                           "of keeping them")


def _host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def url_key(url: str) -> str | None:
    """A URL reduced to host (without www.) + path + query, for exact-page matching."""
    if "://" not in url[:12]:
        url = "http://" + url
    try:
        parts = urlsplit(url.strip())
        host = _host(parts.hostname or "")
    except ValueError:
        return None
    if not host:
        return None
    host = host.removeprefix("www.")
    path = parts.path.rstrip("/")
    return host + path + (f"?{parts.query}" if parts.query else "")


def load_blocklist(paths: list[str], stage: str) -> tuple[frozenset[str], frozenset[str]]:
    """(blocked domains, blocked URL keys) from the given files."""
    domains: set[str] = set()
    urls: set[str] = set()
    for path in paths:
        try:
            local = local_model(path, what=f"stage {stage}: cannot read blocklist_file")
            text = local.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise UserError(f"stage {stage}: cannot read blocklist_file {path}: "
                            f"{e.strerror}") from None
        for line in text.splitlines():
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if "/" in entry.split("://", 1)[-1]:
                key = url_key(entry)
                if key:
                    urls.add(key)
            else:
                domains.add(_host(entry.split("://", 1)[-1]).removeprefix("*.").lstrip("."))
    if not domains and not urls:
        raise UserError(f"stage {stage}: blocklist_file {', '.join(paths)} has no entries")
    return frozenset(domains), frozenset(urls)


class UrlFilter(Filter):
    """Drops documents whose URL's host (or a parent domain) or page is on a blocklist."""

    Params: ClassVar[type[Params]] = UrlFilterParams
    params: UrlFilterParams
    columns: ClassVar[tuple[str, ...]] = ("id", URL)
    required: ClassVar[tuple[str, ...]] = (URL,)

    def setup(self) -> None:
        files = self.params.blocklist_file
        files = [files] if isinstance(files, str) else list(files)
        self._domains, self._urls = load_blocklist(files, self.name)
        self._sha256 = model_hashes(files)

    def model_files(self) -> dict[str, str]:
        """The blocklists decide the output: the manifest records them with the models."""
        return self._sha256

    def check(self, doc: dict[str, Any]) -> str | None:
        url = doc[URL]
        try:
            host = _host(urlsplit(url).hostname or "") if url else ""
        except ValueError:
            host = ""
        if not host:
            return "no_url" if self.params.drop_missing_url else None
        labels = host.split(".")
        if any(".".join(labels[i:]) in self._domains for i in range(len(labels))):
            return "blocked_domain"
        if self._urls and url_key(url) in self._urls:
            return "blocked_url"
        return None
