"""HTTP primitives shared by the test Hub's endpoints: requests, replies, Hub-style errors, access
checks, pagination and byte ranges.

Errors look like the real Hub's: a JSON `{"error": ...}` body plus `X-Error-Message`, and
`X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound) where the Hub sends one, which is
what huggingface_hub turns into its typed exceptions. A repo that does not exist or that the caller
may not see answers 401 without a token and 404 with one, `RepoNotFound` in both cases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hubstore import Commit, Repo, Store

REPO_TYPES = {"models": "model", "datasets": "dataset"}
PREFIX = {"model": "", "dataset": "datasets/"}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    """An error reply: status, message, optional X-Error-Code and extra headers / body keys."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra

    def reply(self) -> Reply:
        headers = {"X-Error-Message": self.message, **self.extra.pop("headers", {})}
        if self.code:
            headers["X-Error-Code"] = self.code
        return json_reply({"error": self.message, **self.extra}, self.status, headers)


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(data).encode()
    return Reply(
        status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    )


@dataclass
class Request:
    """What a route needs from an HTTP request."""

    method: str
    segs: list[str]
    query: dict[str, list[str]]
    body: bytes
    headers: Any
    user: str | None  # None when no token was sent (an invalid token is refused before routing)
    hub_url: str
    cdn_url: str
    can_write: Callable[[str, str], bool]  # (user, namespace) -> allowed
    lfs_threshold: int
    page_size: int

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[-1]

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("1", "true")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from None


def repo_url(req: Request, repo: Repo) -> str:
    return f"{req.hub_url}/{PREFIX[repo.repo_type]}{repo.repo_id}"


def can_read(req: Request, repo: Repo) -> bool:
    return not repo.private or (req.user is not None and req.can_write(req.user, repo.namespace))


def find_repo(store: Store, req: Request, plural: str, ns: str, name: str) -> Repo:
    repo = store.repos.get((REPO_TYPES.get(plural, ""), f"{ns}/{name}"))
    if repo is None or not can_read(req, repo):
        raise HubError(401 if req.user is None else 404, "Repository not found", "RepoNotFound")
    return repo


def writable_repo(store: Store, req: Request, plural: str, ns: str, name: str) -> Repo:
    if req.user is None:
        raise HubError(401, "Invalid username or password.")
    repo = find_repo(store, req, plural, ns, name)
    if not req.can_write(req.user, repo.namespace):
        raise HubError(403, f"You don't have the rights to write to {repo.repo_id}")
    return repo


def commit_at(repo: Repo, revision: str) -> Commit:
    oid = repo.resolve(revision)
    if oid is None:
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
    return repo.commits[oid]


def paginated(req: Request, items: list, page_size: int | None = None) -> Reply:
    """One page of `items` with a GitHub-style `Link: <...>; rel="next"` header, as the Hub does."""
    size = page_size or req.page_size
    start = int(req.arg("cursor") or 0)
    headers = {}
    if start + size < len(items):
        query = "&".join(
            f"{k}={quote(v)}" for k, vs in req.query.items() if k != "cursor" for v in vs
        )
        path = "/".join(quote(s, safe="") for s in req.segs)
        headers["Link"] = f'<{req.hub_url}/{path}?{query}&cursor={start + size}>; rel="next"'
    return json_reply(items[start : start + size], headers=headers)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single `bytes=` range; None to send everything."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    start, end = (
        (max(size - int(last), 0), size - 1)
        if not first
        else (int(first), min(int(last or size - 1), size - 1))
    )
    if start >= size or start > end:
        raise HubError(
            416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


def content_reply(req: Request, data: bytes, headers: dict[str, str]) -> Reply:
    span = byte_range(req.headers.get("Range"), len(data))
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **headers}
    if span is None:
        return Reply(200, data, headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return Reply(206, data[start : end + 1], headers)
