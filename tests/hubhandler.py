"""The HTTP side of the test Hub: a threading server per origin that tracks its connections (so
`HubServer.stop` can cut them), and the request handler that reads a request (chunked bodies
included), routes it, applies the next queued fault of its kind and writes or cuts the reply.
"""

from __future__ import annotations

import contextlib
import socket
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from hubhttp import HubError, Reply, Request
from hubroutes import route

if TYPE_CHECKING:
    from hubserver import HubServer


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # several client processes connect at once

    def __init__(self, address: tuple[str, int], hub: HubServer, cdn: bool) -> None:
        self.hub, self.cdn = hub, cdn
        self.connections: set[socket.socket] = set()
        super().__init__(address, HubHandler)

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[override]
        self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.connections.clear()

    def handle_error(self, request, client_address) -> None:  # a cut connection is expected here
        pass


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        hub, split = self.server.hub, urlsplit(self.path)
        body = self._read_body()
        req = Request(
            method=self.command,
            segs=[unquote(s) for s in split.path.split("/")[1:]],
            query=parse_qs(split.query, keep_blank_values=True),
            body=body,
            headers=self.headers,
            user=None,
            hub_url=hub.url,
            cdn_url=hub.cdn_url,
            can_write=hub._can_write,
            lfs_threshold=hub.lfs_threshold,
            page_size=hub.page_size,
        )
        kinds, answer = route(hub.store, hub.pending_uploads, hub.orgs, req, self.server.cdn)
        fault = hub._take_fault(kinds)
        with hub._lock:
            hub.counts.update(kinds)
        if fault is not None and fault.mode == "drop" and fault.before:
            return self._write(Reply(0), kinds, keep=0)
        if fault is not None and fault.mode == "error":
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            reply = HubError(
                fault.status, f"Injected fault: HTTP {fault.status}", headers=headers
            ).reply()
        else:
            reply = self._answer(hub, answer, req)
        if fault is not None and fault.mode == "slow" and hub._stopping.wait(fault.seconds):
            return self._write(reply, kinds, keep=0)  # stopped while waiting
        self._write(
            reply,
            kinds,
            keep=len(reply.body) // 2 if fault is not None and fault.mode == "drop" else None,
        )

    def _answer(self, hub: HubServer, answer: Callable[[], Reply], req: Request) -> Reply:
        try:
            if not self.server.cdn:  # the storage origin authorises by signed URL, not by token
                req.user = self._user(hub)
            with hub.store.lock:
                return answer()
        except HubError as e:
            return e.reply()
        except Exception as e:  # a bug of the test Hub or a request it does not understand
            hub.errors.append(f"{self.command} {self.path}: {traceback.format_exc()}")
            return HubError(500, f"test Hub error: {type(e).__name__}: {e}").reply()

    def _user(self, hub: HubServer) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return hub.tokens[token]

    def _write(self, reply: Reply, kinds: tuple[str, ...], keep: int | None = None) -> None:
        """Send `reply`; with `keep`, send only that many body bytes and cut the connection (status
        0 in the log). Nothing at all is sent when `keep` is 0 or the request is a HEAD."""
        with self.server.hub._lock:
            self.server.hub.log.append(
                (kinds, self.command, self.path, reply.status if keep is None else 0)
            )
        if keep is None or (keep > 0 and self.command != "HEAD"):
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                # header values are latin-1 on the wire; messages may quote any path
                self.send_header(key, value.encode("latin-1", "replace").decode("latin-1"))
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body if keep is None else reply.body[:keep])
        if keep is not None:
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
