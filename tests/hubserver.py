"""A local Hugging Face Hub for the tests: the part of the Hub HTTP API that l2v-hub uses.

`HubServer` serves two origins on 127.0.0.1, each on its own port: the Hub itself (`url`: the API,
`/resolve`, the git-lfs batch endpoint) and a "CDN" (`cdn_url`) that LFS files redirect to and
that LFS uploads are PUT to, as on the real Hub (its storage is another host, so the client drops
the `Authorization` header there and reads the file's metadata from the 302 itself). Endpoints,
status codes, headers and error codes follow the real Hub. Modules: hubstore (repos as git
objects), hubhttp (requests, replies, Hub errors), hubread / hubwrite (the endpoints), hubroutes
(the URL map and request kinds), hubhandler (HTTP plumbing), this one (lifecycle, faults,
counters, tampering), hub_fixtures (the `hub` fixture).

Pointing the real client at it (what `tests/hub_fixtures.py` does): huggingface_hub reads
`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE`, ... ONCE, at import, into `huggingface_hub.constants`
(`ENDPOINT`, and `HUGGINGFACE_CO_URL_TEMPLATE`, which `hf_hub_url` / `hf_hub_download` use even
when HF_ENDPOINT changed later). Setting the environment variables is therefore not enough inside
an already-running test process: the fixture also patches those constants (and the few modules
that copied them); subprocesses read the environment variables. `HfApi(endpoint=hub.url)` works
regardless. Xet is off (`HF_HUB_DISABLE_XET=1`) and never advertised, so uploads go through LFS.

For tests (faults for issue 7; a request kind is one of `KINDS`; faults queue per kind, in order):
    hub.fail("commit", status=500, times=1)    # next N requests of that kind answer 500 before
    hub.fail("resolve", status=429, retry_after=1)  # having any effect; 429 carries Retry-After
    hub.drop("download", times=1)               # handled, then the response is cut mid-body
    hub.drop("commit", before=True)             # connection closed without handling it
    hub.slow("info", 3.0, times=1)              # answered after a delay
    hub.clear_faults(); hub.reset_counts(); hub.faults_left("commit")
    hub.counts["download"]                      # requests per kind, counted on arrival
    hub.log                                     # (kinds, method, path, status); status 0 = cut
    hub.tamper("org/name", "pack.json")         # flip the last stored byte (or data=b"...")
    hub.stop(); hub.start()                     # same ports, same repos
    hub.head("org/name", "v1.0.0"), hub.errors  # commit sha of a revision; internal failures
    hub.page_size = 2                           # paginate listings (Link headers) sooner
A "slow" fault only times out a client that set a timeout: `HfApi` calls have none by default
(pass `timeout=`), `hf_hub_download` has `etag_timeout` (HEAD, default 10 s, a function default
bound at import) and `constants.HF_HUB_DOWNLOAD_TIMEOUT` (GET, read at call time).

What huggingface_hub 2.4 does with these faults (tests/test_hubserver.py pins it down): preupload,
LFS batch/PUT/verify and listings are retried with backoff (1 s, doubling; Retry-After + 1 s);
the commit POST, create_repo, create_tag and model_info are not retried; a file GET is retried on
429/408 and on a cut body, not on 500; a failed HEAD falls back to the cache on connect errors,
timeouts and HTTP errors but NOT on a cut connection (httpx2.RemoteProtocolError escapes).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

from hubhandler import HubHTTPServer
from hubstore import LFS_SIZE_THRESHOLD, Store

#: The request kinds faults and counters are keyed by. A GET of a regular file on /resolve is both
#: "resolve" and "download"; a GET on the CDN is "download"; LFS batch/PUT/verify are "upload".
KINDS = (
    "create",
    "validate",
    "preupload",
    "upload",
    "commit",
    "tag",
    "info",
    "resolve",
    "download",
    "list",
    "other",
)
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
        self.errors: list[str] = []  # tracebacks of requests the test Hub failed on (answered 500)
        self._faults: dict[str, list[Fault]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._servers: list[HubHTTPServer] = []
        self._ports: tuple[int, int] = (0, 0)
        self._stopping = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> HubServer:
        """Listen (again) on 127.0.0.1; the first start picks free ports, later ones reuse them."""
        if self._servers:
            return self
        self._stopping.clear()
        self._servers = [
            HubHTTPServer(("127.0.0.1", port), self, cdn)
            for port, cdn in zip(self._ports, (False, True), strict=True)
        ]
        self._ports = (self._servers[0].server_address[1], self._servers[1].server_address[1])
        for server in self._servers:
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            ).start()
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

    def fail(
        self, kind: str, *, status: int = 500, times: int = 1, retry_after: int | None = None
    ) -> None:
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

    def faults_left(self, kind: str) -> int:
        """How many injected faults of `kind` have not been served yet."""
        with self._lock:
            return sum(f.times for f in self._faults[kind])

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
        self,
        repo_id: str,
        path: str,
        *,
        revision: str = "main",
        repo_type: str = "model",
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


def main() -> None:
    """Run a test Hub in the foreground: `python tests/hubserver.py [PORT]` (for manual tries)."""
    import sys
    import time

    hub = HubServer()
    hub._ports = (int(sys.argv[1]) if len(sys.argv) > 1 else 0, 0)
    hub.start()
    print(f"HF_ENDPOINT={hub.url} HF_TOKEN={TEST_TOKEN} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
