"""HTTP for pulls: GET with the checks a hostile server calls for, and resumable downloads.

Built on ``http.client`` so that every hop is NAT's to check and the runtime needs no HTTP
library: each URL, redirects included, passes :func:`~.sources.check_url` before it is
contacted; at most ``MAX_REDIRECTS`` redirects and no loops; a bearer token goes only to its
own host over https (or plain http on the loopback address, which never goes through a
proxy); sizes are checked from the headers before reading and counted while reading. A
:class:`Deadline` covers the whole pull: when it passes, a watchdog shuts the socket down,
whatever ``http.client`` is blocked in (a server dripping bytes, endless ``100 Continue``
lines or chunk trailers).

Proxies: ``https://`` goes through ``HTTPS_PROXY`` (``NO_PROXY`` honoured) as a CONNECT
tunnel, so the proxy sees the host name and nothing else; plain ``http://`` (the loopback
address only) never uses a proxy.

Downloads land in ``.part`` files that only this module opens, never through a symbolic
link and only if they are regular files; an interrupted download is continued with a Range
request (``If-Range`` with the ETag kept beside it, so a changed file comes whole).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import socket
import ssl
import stat
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import OutputError
from .sources import PullError, check_url, parse_url, printable, short

TIMEOUT_S = 60.0  # per socket operation
DEADLINE_S = 3600.0  # a whole pull, by default
MAX_REDIRECTS = 10
BLOCK = 1 << 16
REDIRECTS = (301, 302, 303, 307, 308)
NUMBER = re.compile(r"[0-9]{1,19}\Z")  # a byte count; int() of thousands of digits is refused by Python itself

Progress = Callable[[str, int, "int | None"], None]  # (file, bytes so far, bytes in all if known)


class Deadline:
    """The time a pull may take in all."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.end, self.passed = seconds, time.monotonic() + seconds, False

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.passed or self.left() <= 0:
            self.passed = True
            raise PullError(f"{what}: not finished within the {self.seconds:g} s a pull may take (--timeout); run the same command again to resume")


class _Watchdog:
    """Shuts the connection's socket down when the deadline passes."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline, self.sock, self.stop = deadline, None, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()

    def _watch(self) -> None:
        if self.stop.wait(max(0.0, self.deadline.left())):
            return
        self.deadline.passed = True
        while not self.stop.is_set():  # connect() may still be making the socket
            sock = self.sock  # the connection drops its own reference once the response has it
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.stop.wait(0.05)


class Response:
    """An open response: status, headers (lower-case names) and the body to read."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, watchdog: _Watchdog) -> None:
        self.raw, self.conn, self.watchdog = raw, conn, watchdog
        self.status = raw.status
        self.headers = {k.lower(): v for k, v in raw.getheaders()}

    def close(self) -> None:
        self.watchdog.__exit__()
        self.raw.close()  # the connection hands its socket to a response that closes the connection
        self.conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Http:
    """GET with the hop-by-hop checks pulling needs, within one :class:`Deadline`."""

    def __init__(self, deadline: Deadline, token_host: str | None = None, token: str | None = None, progress: Progress | None = None, user_agent: str = "nat") -> None:
        self.deadline = deadline
        self.token_host, self.token = token_host, token
        self.progress = progress
        self.user_agent = user_agent

    def open(self, url: str, headers: dict[str, str], what: str) -> Response:
        """The first response that is not a redirect. HTTP errors raise, except 416 to a Range request."""
        seen: list[str] = []
        while True:
            parsed = check_url(url)
            if url in seen:
                raise PullError(f"redirect loop at {short(url)}; refused")
            if len(seen) > MAX_REDIRECTS:
                raise PullError(f"more than {MAX_REDIRECTS} redirects from {short(seen[0])}; refused")
            seen.append(url)
            sent = {"User-Agent": self.user_agent, **headers}
            if self.token and parsed.netloc == self.token_host:
                sent["Authorization"] = f"Bearer {self.token}"
            response = self._request(parsed, sent, what)
            if response.status in REDIRECTS and "location" in response.headers:
                location = response.headers["location"]
                response.close()
                try:
                    url = urllib.parse.urljoin(url, location)
                except ValueError:
                    raise PullError(f"{short(url)}: redirected to a malformed URL {printable(repr(location))}; refused") from None
                continue
            if response.status >= 400 and not (response.status == 416 and "Range" in headers):
                response.close()
                hint = " (private or gated? set HF_TOKEN)" if response.status in (401, 403) and self.token_host and not self.token else ""
                raise PullError(f"{short(url)}: HTTP {response.status} {printable(response.raw.reason, 80)}{hint}")
            return response

    def _request(self, parsed: urllib.parse.SplitResult, headers: dict[str, str], what: str) -> Response:
        self.deadline.check(what)
        host, port = parsed.hostname or "", parsed.port
        timeout = max(0.1, min(TIMEOUT_S, self.deadline.left()))
        if parsed.scheme == "https":
            proxy = _https_proxy(host)
            if proxy is None:
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
            else:  # TLS to the server through the proxy's tunnel: the proxy sees host and port only
                conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout, context=ssl.create_default_context())
                conn.set_tunnel(host, port or 443, headers=proxy[2])
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)  # loopback only (check_url): no proxy
        target = urllib.parse.urlunsplit(("", "", parsed.path or "/", parsed.query, ""))
        watchdog = _Watchdog(self.deadline).__enter__()
        try:
            conn.connect()
            watchdog.sock = conn.sock
            self.deadline.check(what)
            conn.request("GET", target, headers=headers)
            raw = conn.getresponse()
        except (OSError, http.client.HTTPException, ValueError, UnicodeError) as exc:
            watchdog.__exit__()
            conn.close()
            self.deadline.check(what)
            reason = getattr(exc, "reason", None) or exc
            raise PullError(f"cannot reach {host}: {printable(' '.join(str(reason).split()) or type(exc).__name__)}") from None
        return Response(raw, conn, watchdog)

    def fetch_small(self, url: str, limit: int, what: str) -> tuple[bytes, dict[str, str]]:
        """A small file (the manifest) whole, into memory, refusing more than ``limit`` bytes."""
        with self.open(url, {"Accept-Encoding": "identity"}, what) as response:
            declared = content_length(response.headers, what)
            if declared is not None and declared > limit:
                raise PullError(f"{what}: {declared} bytes declared, more than {limit}; refused")
            chunks, size = [], 0
            for block in self._blocks(response, what, size):
                chunks.append(block)
                size += len(block)
                if size > limit:
                    raise PullError(f"{what}: more than {limit} bytes; refused")
        data = b"".join(chunks)
        if declared is not None and len(data) != declared:
            raise PullError(f"{what}: the body has {len(data)} bytes, the server declared {declared}; refused")
        return data, response.headers

    def download(self, url: str, part: Path, limit: int, what: str) -> None:
        """``url`` into ``part``, continuing an existing ``part`` with a Range request."""
        have = part_size(part)
        headers = {"Accept-Encoding": "identity"}
        validator = _read_validator(part)
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator
        with self.open(url, headers, what) as response:
            total = None
            if response.status == 416 and have:
                if _range_total(response.headers.get("content-range")) == have:
                    return  # the part was already complete
                discard_part(part)  # the file changed size: start again, whole
                response.close()
                return self.download(url, part, limit, what)
            if response.status == 206 and have:
                start, total = _range_start_total(response.headers.get("content-range"), what)
                if start != have:
                    raise PullError(f"{what}: asked for bytes from {have}, the server sent from {start}; refused")
            elif response.status == 200:
                have = 0
                _write_validator(part, response.headers)
            else:
                raise PullError(f"{what}: unexpected HTTP {response.status}")
            length = content_length(response.headers, what)
            expected = have + length if length is not None else total
            if total is not None and length is not None and have + length != total:
                raise PullError(f"{what}: Content-Range and Content-Length disagree; refused")
            if expected is not None and expected > limit:
                raise PullError(f"{what}: {expected} bytes declared, more than the {limit} a pack file may have; refused")
            self._stream(response, part, have, limit, expected, what)

    def _blocks(self, response: Response, what: str, got: int):
        """The body in blocks; a connection cut short ends it (the caller compares sizes), a failure raises."""
        try:
            while True:
                self.deadline.check(what)
                try:
                    block = response.raw.read(BLOCK)
                except http.client.IncompleteRead as exc:  # the connection closed early
                    block = b""
                    if exc.partial:
                        yield exc.partial
                if not block:
                    self.deadline.check(what)  # the watchdog's shutdown looks like an early close
                    return
                got += len(block)
                yield block
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.deadline.check(what)
            raise PullError(f"{what}: the connection failed after {got} bytes ({printable(' '.join(str(exc).split()) or type(exc).__name__)}); run the same command again to resume") from None

    def _stream(self, response: Response, part: Path, have: int, limit: int, expected: int | None, what: str) -> None:
        got = have
        fd = open_part(part, append=bool(have))
        try:
            if self.progress:
                self.progress(what, got, expected)
            for block in self._blocks(response, what, got):
                got += len(block)
                if got > limit:
                    os.close(fd)
                    fd = -1
                    discard_part(part)
                    raise PullError(f"{what}: more than the {limit} bytes a pack file may have; refused")
                _write_all(fd, block, part)
                if self.progress:
                    self.progress(what, got, expected)
        finally:
            if fd >= 0:
                os.close(fd)
        if expected is not None and got < expected:
            raise PullError(f"{what}: the server sent {got} of {expected} bytes; run the same command again to resume")
        if expected is not None and got > expected:
            discard_part(part)
            raise PullError(f"{what}: the server sent {got} bytes, more than the {expected} it declared; refused")


def _https_proxy(host: str) -> tuple[str, int, dict[str, str]] | None:
    """(host, port, CONNECT headers) of the proxy for an https request to ``host``, if any."""
    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    try:
        raw = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        user = None if raw.username is None else f"{urllib.parse.unquote(raw.username)}:{urllib.parse.unquote(raw.password or '')}"
    except ValueError:
        raw, user = None, None
    parsed = parse_url(urllib.parse.urlunsplit((raw.scheme, raw.netloc.rpartition("@")[2], "", "", ""))) if raw else None
    if parsed is None or parsed.scheme != "http" or not parsed.hostname:
        raise PullError("HTTPS_PROXY: expected http://[USER:PASSWORD@]HOST:PORT (a CONNECT proxy)")
    headers = {"Proxy-Authorization": "Basic " + base64.b64encode(user.encode()).decode()} if user is not None else {}
    return parsed.hostname, parsed.port or 80, headers


def content_length(headers: dict[str, str], what: str) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not NUMBER.match(value.strip()):
        raise PullError(f"{what}: unreadable Content-Length {printable(repr(value), 40)}; refused")
    return int(value)


def _range_start_total(value: str | None, what: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19}|\*)", (value or "").strip())
    if not match:
        raise PullError(f"{what}: a partial response without a valid Content-Range ({printable(repr(value), 60)}); refused")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _range_total(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes \*/([0-9]{1,19})", (value or "").strip())
    return int(match.group(1)) if match else None


# --- .part files: regular files only, never through a link ---------------------------------

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _not_regular(part: Path) -> OutputError:
    return OutputError(f"{part} is not a regular file (a link, FIFO or folder put there?); remove it or the folder {part.parent}; nothing changed")


def part_size(part: Path) -> int:
    """Bytes already downloaded into ``part`` (0 if none)."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(part)
    return info.st_size


def open_part(part: Path, append: bool) -> int:
    """A descriptor for writing ``part``: appended to, or created/truncated."""
    flags = os.O_WRONLY | os.O_CREAT | NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(part, flags, 0o644)
    except OSError as exc:
        if isinstance(exc, IsADirectoryError) or exc.errno in (getattr(os, "ELOOP", -1), getattr(os, "ENXIO", -1)):
            raise _not_regular(part) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_regular(part)
    return fd


def part_sha256(part: Path) -> str:
    """The sha256 of a regular ``part`` file."""
    try:
        fd = os.open(part, os.O_RDONLY | NOFOLLOW)
    except OSError as exc:
        if exc.errno in (getattr(os, "ELOOP", -1), getattr(os, "ENXIO", -1)):
            raise _not_regular(part) from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(part)
        digest = hashlib.sha256()
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def discard_part(part: Path) -> None:
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


def _write_all(fd: int, data: bytes, part: Path) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".etag")


def _read_validator(part: Path) -> str | None:
    path = _validator_path(part)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text and URL_SAFE.match(text) else None


URL_SAFE = re.compile(r"[\x20-\x7e]{1,256}\Z")


def _write_validator(part: Path, headers: dict[str, str]) -> None:
    """The ETag (or Last-Modified) a resumed request sends as If-Range: a changed file comes whole."""
    value = (headers.get("etag") or headers.get("last-modified") or "").strip()
    path = _validator_path(part)
    path.unlink(missing_ok=True)
    if value and not value.startswith("W/") and URL_SAFE.match(value):  # weak ETags are not valid for If-Range
        fd = open_part(path, append=False)
        try:
            _write_all(fd, value.encode("ascii"), path)
        finally:
            os.close(fd)
