"""``hf:`` sources through huggingface_hub, the hub's own client (the optional ``[hub]`` extra).

The client gives what the hub defines: the file URL of a repository, revision and file
(``hf_hub_url``, with its quoting of ``refs/pr/1``), and the token (``get_token``: ``HF_TOKEN``,
else the one ``hf auth login`` stored). ``HF_ENDPOINT`` is read when the pull starts.
The bytes then come through NAT's transport (packs/transport.py), which checks every hop,
size and the deadline; huggingface_hub's own downloader does none of that (docs/distribution.md).
Imported only when an ``hf:`` source is pulled: the runtime does not need it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass

from .sources import HF_ENDPOINT, PullError, Source

INSTALL_HINT = "pip install 'neural-audio-tokenizer[hub]'"
COMMIT = re.compile(r"[0-9a-f]{40}\Z")
TOKEN = re.compile(r"[\x21-\x7e]{1,1024}\Z")


@dataclass(frozen=True)
class Hub:
    """One hub repository at one revision, as huggingface_hub addresses it."""

    repo: str
    revision: str
    endpoint: str
    token: str | None

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).netloc

    def url(self, file: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo, file, revision=self.revision, endpoint=self.endpoint)


def client_missing() -> PullError:
    return PullError(f"hf: sources need the Hugging Face hub client: {INSTALL_HINT} (https:// URLs, archives and folders need nothing more)")


def hub_for(source: Source) -> Hub:
    """The repository of an ``hf:`` source; PullError if huggingface_hub is not installed."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        raise client_missing() from None
    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or HF_ENDPOINT
    token = get_token()
    if token is not None and not TOKEN.match(token):
        raise PullError("HF_TOKEN: not a token (printable ASCII without spaces); refused")
    assert source.revision is not None
    return Hub(source.repo, source.revision, endpoint, token)


def commit_of(headers: dict[str, str]) -> str | None:
    """The hub's ``X-Repo-Commit``, if it is a commit hash (a mirror's header is not trusted further)."""
    value = headers.get("x-repo-commit", "").strip().lower()
    return value if COMMIT.match(value) else None



