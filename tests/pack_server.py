"""A pack server on 127.0.0.1 for pull tests: a hub-shaped tree, archives, and hostile tricks.

Runs ``http.server`` in a daemon thread of the test process, bound to the loopback address
only. Paths:

- ``/OWNER/REPO/resolve/REVISION/FILE``: the Hugging Face hub's file URLs (what ``hf:``
  sources fetch), with the ``X-Repo-Commit`` header the hub sends;
- anything else added with :meth:`PackServer.add` (archives, plain pack folders).

Each path may get a trick (:meth:`PackServer.trick`): ``cut-once`` (declare the whole length,
send half, close; later requests are served whole, with Range support), ``short`` (always
half), ``no-length`` (no Content-Length, close-delimited), ``endless`` (no Content-Length,
zeros until the client hangs up), ``huge-length`` (declares 10^12 bytes), ``redirect-loop``,
``redirect`` (to ``target``), ``ignore-range`` (always 200 whole), ``long`` (the file,
then junk past the Content-Length it declares), ``range-long`` (a 206 whose body runs past
the Content-Range it declares), ``raw`` (``target`` is the whole response, sent as it is:
any header, status line or body a test wants), ``drip`` (the file one byte every 0.2 s),
``endless-continue`` (``100 Continue`` lines forever), ``endless-trailers`` (a chunked body
whose trailer never ends), ``slow-once`` (the first response pauses 1 s halfway).
Every request is recorded with its headers. The handler also acts as an HTTP proxy: a
request whose path is an absolute ``http://`` URL is served as that URL's path and recorded
as proxied, ``CONNECT host:port`` (to the loopback address only) opens a tunnel, and
``HEAD`` answers with a GET's headers.
"""

from __future__ import annotations

import hashlib
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    proxied: bool = False
    method: str = "GET"


@dataclass
class PackServer:
    files: dict[str, bytes] = field(default_factory=dict)
    tricks: dict[str, tuple[str, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    commits: dict[str, str] = field(default_factory=dict)
    cuts: dict[str, int] = field(default_factory=dict)

    def start(self, tls: tuple[Path, Path] | None = None) -> PackServer:
        """Serve on 127.0.0.1; with ``tls`` (certificate, key), over https."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._serve(self)

            def do_CONNECT(self) -> None:
                server._tunnel(self)

            def do_HEAD(self) -> None:  # what huggingface_hub asks first
                server._serve(self, head=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)  # quick shutdown
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def add_folder(self, prefix: str, folder: Path) -> None:
        for item in sorted(folder.iterdir()):
            if item.is_file():
                self.add(f"{prefix}/{item.name}", item.read_bytes())

    def add_hub(self, repo: str, revision: str, folder: Path | Mapping[str, bytes], commit: str = "c0ffee" * 6 + "beef") -> None:
        items = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if isinstance(folder, Path) else dict(folder)
        for name, data in items.items():
            path = f"/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{name}"
            self.files[path] = data
            self.commits[path] = commit

    def trick(self, path: str, kind: str, target: str = "") -> None:
        self.tricks[path] = (kind, target)

    def requests_for(self, suffix: str) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith(suffix)]

    def _serve(self, h: BaseHTTPRequestHandler, head: bool = False) -> None:
        path, proxied = h.path, False
        if path.startswith("http://"):
            path, proxied = urllib.parse.urlsplit(path).path, True
        path = path.split("?")[0]
        self.seen.append(Seen(path, dict(h.headers.items()), proxied, "HEAD" if head else "GET"))
        kind, target = self.tricks.get(path, ("", ""))
        if head and not kind.startswith("redirect"):  # a trick plays on the body: HEAD gets the honest headers
            kind, target = "", ""
        if kind == "redirect-loop":
            return self._redirect(h, path)
        if kind == "redirect":
            return self._redirect(h, target)
        if kind == "redirect-chain":  # /x -> /x/1 -> /x/1/1 -> ... forever, never repeating
            self.tricks[path + "/1"] = ("redirect-chain", "")
            return self._redirect(h, path + "/1")
        if kind in ("raw", "endless-continue", "endless-trailers"):
            return self._raw(h, kind, target)
        if path not in self.files:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data = self.files[path]
        if kind == "endless":
            h.send_response(200)
            h.end_headers()
            try:
                for _ in range(4096):  # at most 256 MiB, far past any limit a test sets
                    h.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            return
        if kind == "huge-length":
            h.send_response(200)
            h.send_header("Content-Length", str(10**12))
            h.end_headers()
            try:
                h.wfile.write(data)
            except OSError:
                pass
            return
        start = 0
        ranged = h.headers.get("Range")
        if ranged and kind != "ignore-range" and ranged.startswith("bytes=") and ranged.endswith("-"):
            start = int(ranged[6:-1])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("ETag", '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
        if path in self.commits:
            h.send_header("X-Repo-Commit", self.commits[path])
        if kind not in ("no-length", "long", "range-long"):
            h.send_header("Content-Length", str(len(body)))
        elif kind == "long":
            h.send_header("Content-Length", str(len(body)))  # the true size; the junk comes on top
        elif kind == "range-long":
            h.send_header("Content-Length", str(len(body) + (4096 if start else 0)))
        h.end_headers()
        if head:
            return
        if kind == "long" or (kind == "range-long" and start):
            body += b"junk" * 1024
        if kind == "short" or (kind == "cut-once" and path not in self.cuts):
            self.cuts[path] = len(body) // 2
            body = body[: len(body) // 2]
        try:
            if kind == "drip":
                for i in range(len(body)):
                    h.wfile.write(body[i : i + 1])
                    time.sleep(0.2)
            elif kind == "slow-once" and path not in self.cuts:
                self.cuts[path] = len(body) // 2
                h.wfile.write(body[: len(body) // 2])
                time.sleep(1.0)
                h.wfile.write(body[len(body) // 2 :])
            else:
                h.wfile.write(body)
        except OSError:
            pass
        h.close_connection = True

    @staticmethod
    def _raw(h: BaseHTTPRequestHandler, kind: str, target: str) -> None:
        h.close_connection = True
        try:
            if kind == "raw":
                h.wfile.write(target.encode("latin-1"))
            elif kind == "endless-continue":
                for _ in range(100_000):  # about 30 s of them at most
                    h.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    time.sleep(0.0003)
            else:
                h.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n")
                for _ in range(100_000):
                    h.wfile.write(b"X-Trailer: more\r\n")
                    time.sleep(0.0003)
        except OSError:
            pass

    def _tunnel(self, h: BaseHTTPRequestHandler) -> None:
        """CONNECT: bytes both ways between the client and a loopback port, unread."""
        self.seen.append(Seen(h.path, dict(h.headers.items()), True, "CONNECT"))
        host, _, port = h.path.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            h.send_error(403)
            return
        upstream = socket.create_connection((host, int(port)), timeout=10)
        h.send_response(200, "Connection established")
        h.end_headers()
        ends = [h.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(ends, [], [], 10)
                if not ready:
                    return
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is h.connection else h.connection).sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()
            h.close_connection = True

    @staticmethod
    def _redirect(h: BaseHTTPRequestHandler, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
