"""A local Hugging Face Hub for the tests: the part of the Hub HTTP API that l2v-hub uses.

`HubServer` serves two origins on 127.0.0.1, each on its own port: the Hub itself (`url`: the API,
`/resolve`, the git-lfs batch endpoint) and a "CDN" (`cdn_url`) that LFS files redirect to and
that LFS uploads are PUT to, as on the real Hub (its storage is another host, so the client drops
the `Authorization` header there and reads the file's metadata from the 302 itself). Endpoints,
status codes, headers and error codes follow the real Hub: see tests/hubroutes.py.

Pointing the real client at it (what `tests/hub_fixtures.py` does): huggingface_hub reads
`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE`, ... ONCE, at import, into `huggingface_hub.constants`
(`ENDPOINT`, and `HUGGINGFACE_CO_URL_TEMPLATE`, which `hf_hub_url` / `hf_hub_download` use even
when HF_ENDPOINT changed later). Setting the environment variables is therefore not enough inside
an already-running test process: the fixture also patches those constants (and the few modules
that copied them); subprocesses read the environment variables. `HfApi(endpoint=hub.url)` works
regardless. Xet is off (`HF_HUB_DISABLE_XET=1`) and never advertised, so uploads go through LFS.

For tests (faults for issue 7; a request kind is one of `KINDS`):
    hub.fail("commit", status=500, times=1)    # next N requests of that kind answer 500 (before
    hub.fail("resolve", status=429, retry_after=1)  # any effect); 429 carries Retry-After
    hub.drop("download", times=1)               # handled, then the response is cut mid-body
    hub.drop("commit", before=True)             # connection closed without handling it
    hub.slow("info", 3.0, times=1)              # answered after a delay
    hub.counts["download"], hub.log            # requests per kind; (kinds, method, path, status)
    hub.tamper("org/name", "pack.json")         # flip the last stored byte (or data=b"...")
    hub.stop(); hub.start()                     # same ports, same repos
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import hubroutes as routes
from hubroutes import HubError, Reply, Request
from hubstore import LFS_SIZE_THRESHOLD, Store

#: The request kinds faults and counters are keyed by. A GET of a regular file on /resolve is both
#: "resolve" and "download"; a GET on the CDN is "download"; LFS batch/PUT/verify are "upload".
KINDS = ("create", "validate", "preupload", "upload", "commit", "tag", "info", "resolve",
         "download", "list", "other")
TEST_TOKEN = "hf_l2v_test_write_token"
TEST_USER = "l2v-test"


@dataclass
class Fault:
    mode: str  # "error" | "drop" | "slow"
    times: int
    status: int = 500
    retry_after: int | None = None
    seconds: float = 0.0
    before: bool = False


class HubServer:
    """The test Hub. `tokens` maps a bearer token to a user name; `orgs` maps a user to the extra
    namespaces they may write to (None: any namespace)."""

    def __init__(
        self,
        *,
        tokens: dict[str, str] | None = None,
        orgs: dict[str, set[str]] | None = None,
        lfs_threshold: int = LFS_SIZE_THRESHOLD,
        page_size: int = 1000,
    ) -> None:
        self.tokens = dict(tokens) if tokens is not None else {TEST_TOKEN: TEST_USER}
        self.orgs = orgs
        self.lfs_threshold, self.page_size = lfs_threshold, page_size
        self.store = Store()
        self.pending_uploads: dict[str, bytes] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[tuple[str, ...], str, str, int]] = []
        self._faults: dict[str, list[Fault]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._servers: list[_Server] = []
        self._ports: tuple[int, int] = (0, 0)
        self._stopping = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> HubServer:
        """Listen (again) on 127.0.0.1; the first start picks free ports, later ones reuse them."""
        if self._servers:
            return self
        self._stopping.clear()
        self._servers = [_Server(("127.0.0.1", port), self, cdn) for port, cdn in zip(self._ports, (False, True), strict=True)]
        self._ports = (self._servers[0].server_address[1], self._servers[1].server_address[1])
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (a client then sees a refused connection)."""
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
            server.close_connections()
        self._servers = []

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[1]}"

    # --- faults, counters, tampering ------------------------------------------------------------

    def fail(self, kind: str, *, status: int = 500, times: int = 1, retry_after: int | None = None) -> None:
        """The next `times` requests of `kind` answer `status` (with Retry-After when given)."""
        self._add(kind, Fault("error", times, status=status, retry_after=retry_after))

    def drop(self, kind: str, *, times: int = 1, before: bool = False) -> None:
        """The next `times` requests of `kind` are handled (unless `before`) and their response is
        cut off mid-body (a HEAD gets no response at all)."""
        self._add(kind, Fault("drop", times, before=before))

    def slow(self, kind: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` requests of `kind` are answered after `seconds`."""
        self._add(kind, Fault("slow", times, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def _add(self, kind: str, fault: Fault) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}; expected one of {KINDS}")
        with self._lock:
            self._faults[kind].append(fault)

    def _take_fault(self, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for kind in kinds:
                queue = self._faults[kind]
                if queue:
                    fault = queue[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                    return fault
        return None

    def tamper(
        self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model",
        data: bytes | None = None,
    ) -> None:
        """Change the bytes stored for a published file, leaving every hash the Hub reports as it was
        (a corrupted store). By default the last byte is flipped, so the size stays the same."""
        with self.store.lock:
            repo = self.store.repos[(repo_type, repo_id)]
            entry = repo.commits[repo.resolve(revision) or ""].files[path]
            key = entry.sha256 or entry.oid
            old = self.store.blobs[key]
            self.store.blobs[key] = data if data is not None else old[:-1] + bytes([old[-1] ^ 0xFF])

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str | None:
        """The commit sha `revision` points to (None when unknown)."""
        with self.store.lock:
            repo = self.store.repos.get((repo_type, repo_id))
            return repo.resolve(revision) if repo else None

    # --- request handling -----------------------------------------------------------------------

    def _can_write(self, user: str, namespace: str) -> bool:
        return user == namespace or self.orgs is None or namespace in self.orgs.get(user, set())

    def route(self, req: Request, cdn: bool) -> tuple[tuple[str, ...], Callable[[], Reply]]:
        """The kinds of a request and the function answering it."""
        s, store, m = req.segs, self.store, req.method
        if cdn:
            match (m, s):
                case ("GET" | "HEAD", ["lfs", sha]):
                    return ("download",) if m == "GET" else ("resolve",), lambda: routes.cdn_get(store, req, sha)
                case ("PUT", ["upload", oid]):
                    return ("upload",), lambda: routes.cdn_put(store, req, oid, self.pending_uploads)
            return ("other",), lambda: Reply(404, b"Not Found")
        match (m, s):
            case ("GET" | "HEAD", ["datasets", ns, name, "resolve", rev, *path]):
                return self._resolve_kinds(req, "datasets", ns, name, rev, path)
            case ("GET" | "HEAD", [ns, name, "resolve", rev, *path]) if ns != "api":
                return self._resolve_kinds(req, "models", ns, name, rev, path)
            case ("POST", [*pre, ns, git, "info", "lfs", "objects", action]) if git.endswith(".git") and pre in ([], ["datasets"]):
                plural, name = ("datasets" if pre else "models"), git.removesuffix(".git")
                if action == "batch":
                    return ("upload",), lambda: routes.lfs_batch(store, req, plural, ns, name)
                return ("upload",), lambda: routes.lfs_verify(store, req, plural, ns, name, self.pending_uploads)
            case ("POST", ["api", "repos", "create"]):
                return ("create",), lambda: routes.create_repo(store, req)
            case ("DELETE", ["api", "repos", "delete"]):
                return ("other",), lambda: routes.delete_repo(store, req)
            case ("POST", ["api", "validate-yaml"]):
                return ("validate",), lambda: routes.validate_yaml(store, req)
            case ("GET", ["api", "models" | "datasets" as t]):
                return ("list",), lambda: routes.list_repos(store, req, t)
            case ("GET", ["api", "models" | "datasets" as t, ns, name]):
                return ("info",), lambda: routes.repo_info(store, req, t, ns, name)
            case ("GET", ["api", "models" | "datasets" as t, ns, name, "revision", rev]):
                return ("info",), lambda: routes.repo_info(store, req, t, ns, name, rev)
            case ("GET", ["api", "models" | "datasets" as t, ns, name, "refs"]):
                return ("info",), lambda: routes.list_refs(store, req, t, ns, name)
            case ("GET", ["api", "models" | "datasets" as t, ns, name, "commits", rev]):
                return ("info",), lambda: routes.list_commits(store, req, t, ns, name, rev)
            case ("GET", ["api", "models" | "datasets" as t, ns, name, "tree", rev, *path]):
                return ("info",), lambda: routes.list_tree(store, req, t, ns, name, rev, "/".join(path))
            case ("POST", ["api", "models" | "datasets" as t, ns, name, "paths-info", rev]):
                return ("info",), lambda: routes.paths_info(store, req, t, ns, name, rev)
            case ("POST", ["api", "models" | "datasets" as t, ns, name, "preupload", rev]):
                return ("preupload",), lambda: routes.preupload(store, req, t, ns, name, rev)
            case ("POST", ["api", "models" | "datasets" as t, ns, name, "commit", rev]):
                return ("commit",), lambda: routes.commit(store, req, t, ns, name, rev)
            case ("POST" | "DELETE", ["api", "models" | "datasets" as t, ns, name, "tag" | "branch" as ref, arg]):
                handler = {("POST", "tag"): routes.create_tag, ("DELETE", "tag"): routes.delete_tag,
                           ("POST", "branch"): routes.create_branch, ("DELETE", "branch"): routes.delete_branch}
                return ("tag",), lambda: handler[(m, ref)](store, req, t, ns, name, arg)
        return ("other",), lambda: routes.json_reply({"error": "Not Found"}, 404)

    def _resolve_kinds(self, req: Request, plural: str, ns: str, name: str, rev: str, path: list[str]):
        """A GET that sends a regular file's bytes is a download too; an LFS file's GET is a 302."""
        answer = lambda: routes.resolve(self.store, req, plural, ns, name, rev, "/".join(path))  # noqa: E731
        if req.method == "HEAD":
            return ("resolve",), answer
        with self.store.lock:
            repo = self.store.repos.get((routes.REPO_TYPES[plural], f"{ns}/{name}"))
            oid = repo.resolve(rev) if repo else None
            entry = repo.commits[oid].files.get("/".join(path)) if oid else None
        return ("resolve", "download") if entry is not None and not entry.is_lfs else ("resolve",), answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], hub: HubServer, cdn: bool) -> None:
        self.hub, self.cdn = hub, cdn
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

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
        kinds, answer = hub.route(req, self.server.cdn)
        fault = hub._take_fault(kinds)
        with hub._lock:
            hub.counts.update(kinds)
        if fault is not None and fault.mode == "drop" and fault.before:
            return self._cut(Reply(0), 0, kinds)
        if fault is not None and fault.mode == "error":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            reply = HubError(fault.status, f"Injected fault: HTTP {fault.status}", headers=headers).reply()
        else:
            try:
                req.user = self._user(hub)
                with hub.store.lock:
                    reply = answer()
            except HubError as e:
                reply = e.reply()
        if fault is not None and fault.mode == "slow" and hub._stopping.wait(fault.seconds):
            return self._cut(reply, 0, kinds)
        if fault is not None and fault.mode == "drop":
            return self._cut(reply, len(reply.body) // 2, kinds)
        self._send(reply, kinds)

    def _user(self, hub: HubServer) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return hub.tokens[token]

    def _record(self, kinds: tuple[str, ...], status: int) -> None:
        with self.server.hub._lock:
            self.server.hub.log.append((kinds, self.command, self.path, status))

    def _send(self, reply: Reply, kinds: tuple[str, ...]) -> None:
        self._record(kinds, reply.status)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _cut(self, reply: Reply, keep: int, kinds: tuple[str, ...]) -> None:
        """Send the status line, headers and `keep` bytes of the body, then close the connection."""
        self._record(kinds, 0)
        self.close_connection = True
        if keep > 0 and self.command != "HEAD":
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body[:keep])
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
