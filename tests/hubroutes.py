"""The Hub API semantics of the test Hub: one function per endpoint, each returning a `Reply`.

Behaviour follows the real Hub (huggingface.co/docs/hub/api and the git-lfs batch API), not the
client: errors carry `X-Error-Code` / `X-Error-Message` and a JSON `{"error": ...}` body, unknown
or hidden repos answer 401 (no token) or 404 (token) with `RepoNotFound`, LFS files resolve through
a 302 to a separate "CDN" origin with `X-Linked-Etag` / `X-Linked-Size`. Xet is never advertised.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

import yaml
from hubstore import Commit, FileEntry, Repo, Store, derived_tags, path_matches

REPO_TYPES = {"models": "model", "datasets": "dataset"}
PREFIX = {"model": "", "dataset": "datasets/"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
    return Reply(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


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


# --- repos -------------------------------------------------------------------------------------


def create_repo(store: Store, req: Request) -> Reply:
    if req.user is None:
        raise HubError(401, "You must be authenticated to create a repo.")
    data = req.json()
    name, namespace = data.get("name"), data.get("organization") or req.user
    repo_type = data.get("type") or "model"
    if repo_type not in PREFIX:
        raise HubError(400, f"Unsupported repo type for this test Hub: {repo_type}")
    if not isinstance(name, str) or not _NAME.match(name) or "--" in name or ".." in name:
        raise HubError(400, f"Invalid repo name: {name!r}")
    if not req.can_write(req.user, namespace):
        raise HubError(403, f"You don't have the rights to create a {repo_type} under {namespace}")
    private = data.get("visibility") == "private" or bool(data.get("private"))
    repo_id = f"{namespace}/{name}"
    if (repo_type, repo_id) in store.repos:
        url = f"{req.hub_url}/{PREFIX[repo_type]}{repo_id}"
        raise HubError(409, f"You already created this {repo_type} repo", url=url)
    repo = store.create_repo(repo_type, repo_id, private)
    return json_reply({"url": repo_url(req, repo), "name": repo_id, "id": uuid.uuid4().hex[:24]})


def delete_repo(store: Store, req: Request) -> Reply:
    data = req.json()
    plural = f"{data.get('type') or 'model'}s"
    name, namespace = data.get("name", ""), data.get("organization") or req.user or ""
    repo = writable_repo(store, req, plural, namespace, name)
    del store.repos[(repo.repo_type, repo.repo_id)]
    return json_reply({})


def validate_yaml(store: Store, req: Request) -> Reply:
    content = str(req.json().get("content", ""))
    if content.startswith("---\n") and (end := content.find("\n---", 4)) > 0:
        try:
            yaml.safe_load(content[4:end])
        except yaml.YAMLError as e:
            return json_reply({"errors": [{"message": f"Invalid YAML: {e}"}], "warnings": []}, 400)
    return json_reply({"errors": [], "warnings": []})


# --- refs ----------------------------------------------------------------------------------------


def create_tag(store: Store, req: Request, plural: str, ns: str, name: str, rev: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    commit = commit_at(repo, rev)
    tag = req.json().get("tag")
    if not isinstance(tag, str) or not tag or tag.startswith("refs/"):
        raise HubError(400, f"Invalid tag name: {tag!r}")
    if tag in repo.tags:
        raise HubError(409, f"Tag {tag} already exists")
    repo.tags[tag] = commit.oid
    return json_reply({})


def delete_tag(store: Store, req: Request, plural: str, ns: str, name: str, tag: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    if repo.tags.pop(tag, None) is None:
        raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
    return json_reply({})


def create_branch(store: Store, req: Request, plural: str, ns: str, name: str, branch: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    start = commit_at(repo, req.json().get("startingPoint") or "main")
    if branch in repo.branches:
        raise HubError(409, f"Reference already exists: refs/heads/{branch}")
    repo.branches[branch] = start.oid
    return json_reply({})


def delete_branch(store: Store, req: Request, plural: str, ns: str, name: str, branch: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    if branch == "main":
        raise HubError(403, "Cannot delete the default branch")
    if repo.branches.pop(branch, None) is None:
        raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
    return json_reply({})


def list_refs(store: Store, req: Request, plural: str, ns: str, name: str) -> Reply:
    repo = find_repo(store, req, plural, ns, name)

    def refs(items: dict, prefix: str) -> list[dict[str, str]]:
        return [{"name": str(k), "ref": f"{prefix}{k}", "targetCommit": v} for k, v in items.items()]

    data = {
        "branches": refs(repo.branches, "refs/heads/"),
        "converts": [],
        "tags": refs(repo.tags, "refs/tags/"),
    }
    if req.flag("include_prs"):
        data["pullRequests"] = refs(repo.pulls, "refs/pr/")
    return json_reply(data)


def list_commits(store: Store, req: Request, plural: str, ns: str, name: str, rev: str) -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    commit: Commit | None = commit_at(repo, rev)
    items = []
    while commit is not None:
        author = "system" if commit.parent is None else repo.namespace
        items.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                      "authors": [{"user": author}], "date": commit.date})
        commit = repo.commits[commit.parent] if commit.parent else None
    return paginated(req, items)


def paginated(req: Request, items: list, page_size: int | None = None) -> Reply:
    """One page of `items` with a GitHub-style `Link: <...>; rel="next"` header, as the Hub does."""
    size = page_size or req.page_size
    start = int(req.arg("cursor") or 0)
    headers = {}
    if start + size < len(items):
        query = "&".join(f"{k}={quote(v)}" for k, vs in req.query.items() if k != "cursor" for v in vs)
        path = "/".join(quote(s, safe="") for s in req.segs)
        headers["Link"] = f'<{req.hub_url}/{path}?{query}&cursor={start + size}>; rel="next"'
    return json_reply(items[start : start + size], headers=headers)


# --- info, tree and listing ---------------------------------------------------------------------


def siblings(commit: Commit, blobs: bool) -> list[dict[str, Any]]:
    out = []
    for path, entry in sorted(commit.files.items()):
        item: dict[str, Any] = {"rfilename": path}
        if blobs:
            item |= {"size": entry.size, "blobId": entry.oid}
            if entry.is_lfs:
                item["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": entry.pointer_size}
        out.append(item)
    return out


def repo_info_dict(store: Store, req: Request, repo: Repo, commit: Commit, full: bool) -> dict[str, Any]:
    card = store.card(commit)
    data: dict[str, Any] = {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.repo_id,
        "private": repo.private,
        "downloads": 0,
        "likes": 0,
        "trendingScore": 0,
        "tags": derived_tags(card),
        "createdAt": repo.created_at,
    }
    if repo.repo_type == "model":
        data["modelId"] = repo.repo_id
        for key in ("library_name", "pipeline_tag"):
            if card.get(key):
                data[key] = card[key]
    if full:
        data |= {
            "author": repo.namespace,
            "sha": commit.oid,
            "lastModified": commit.date,
            "gated": False,
            "disabled": False,
            "siblings": siblings(commit, req.flag("blobs")),
            "spaces": [],
            "usedStorage": sum(e.size for e in commit.files.values()),
        }
        if card:
            data["cardData"] = card
    return expanded(req, data)


def expanded(req: Request, data: dict[str, Any]) -> dict[str, Any]:
    wanted = req.query.get("expand") or req.query.get("expand[]")
    return {k: v for k, v in data.items() if k in ("_id", "id") or k in wanted} if wanted else data


def repo_info(store: Store, req: Request, plural: str, ns: str, name: str, rev: str = "main") -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    return json_reply(repo_info_dict(store, req, repo, commit_at(repo, rev), full=True))


def list_repos(store: Store, req: Request, plural: str) -> Reply:
    filters = [f for value in req.query.get("filter", []) for f in value.split(",") if f]
    author, search = req.arg("author"), (req.arg("search") or "").lower()
    library, pipeline = req.arg("library"), req.arg("pipeline_tag")
    full = req.flag("full")
    matches = []
    for repo in store.repos.values():
        if repo.repo_type != REPO_TYPES[plural] or not can_read(req, repo):
            continue
        commit = repo.commits[repo.branches["main"]]
        info = repo_info_dict(store, req, repo, commit, full=True)
        tags = set(info["tags"])
        if (author and repo.namespace != author) or (search and search not in repo.repo_id.lower()):
            continue
        if not all(f in tags for f in filters):
            continue
        if (library and info.get("library_name") != library) or (pipeline and info.get("pipeline_tag") != pipeline):
            continue
        if not full:
            info = {k: v for k, v in info.items() if k not in ("author", "sha", "lastModified", "gated",
                                                              "disabled", "siblings", "spaces", "usedStorage", "cardData")}
        if full:
            info["siblings"] = [{"rfilename": s["rfilename"]} for s in info["siblings"]]
            info.pop("cardData", None)
        if req.flag("cardData") and store.card(commit):
            info["cardData"] = store.card(commit)
        sort_value = commit.date if req.arg("sort") == "lastModified" else info.get(req.arg("sort") or "", 0)
        matches.append((sort_value, expanded(req, info)))
    if req.arg("sort"):
        matches.sort(key=lambda m: m[0], reverse=req.arg("direction") != "1")
    items = [m[1] for m in matches]
    limit = req.arg("limit")
    if limit is not None:
        items = items[: int(limit)]
    return paginated(req, items)


def last_commit(repo: Repo, commit: Commit, path: str, is_dir: bool) -> dict[str, str]:
    """The most recent commit that changed `path`, walking parents as `git log -1 -- path` does."""

    def state(c: Commit) -> Any:
        return c.trees.get(path) if is_dir else c.files.get(path)

    while commit.parent is not None and state(repo.commits[commit.parent]) == state(commit):
        commit = repo.commits[commit.parent]
    return {"id": commit.oid, "title": commit.title, "date": commit.date}


def tree_item(repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
    if path in commit.trees:
        item: dict[str, Any] = {"type": "directory", "oid": commit.trees[path], "size": 0, "path": path}
    else:
        entry: FileEntry = commit.files[path]
        item = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.is_lfs:
            item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    if expand:
        item["lastCommit"] = last_commit(repo, commit, path, item["type"] == "directory")
    return item


def list_tree(store: Store, req: Request, plural: str, ns: str, name: str, rev: str, path: str) -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    commit = commit_at(repo, rev)
    folder = path.strip("/")
    if folder and folder not in commit.trees:
        raise HubError(404, f"Entry not found: {folder}", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
    prefix = f"{folder}/" if folder else ""
    everything = [p for p in [*commit.trees, *commit.files] if p and p.startswith(prefix)]
    if not req.flag("recursive"):
        everything = [p for p in everything if "/" not in p[len(prefix) :]]
    ordered = sorted(everything, key=lambda p: (p not in commit.trees, p))
    expand = req.flag("expand")
    items = [tree_item(repo, commit, p, expand) for p in ordered]
    return paginated(req, items, page_size=50 if expand else None)


def paths_info(store: Store, req: Request, plural: str, ns: str, name: str, rev: str) -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    commit = commit_at(repo, rev)
    form = parse_qs(req.body.decode())
    expand = (form.get("expand") or ["false"])[-1].lower() == "true"
    paths = [p.strip("/") for p in form.get("paths", [])]
    found = [p for p in paths if p in commit.files or p in commit.trees]
    return json_reply([tree_item(repo, commit, p, expand) for p in found])


# --- upload: preupload, LFS batch, commit ----------------------------------------------------------


def branch_head(repo: Repo, rev: str, create_pr: bool) -> Commit:
    commit = commit_at(repo, rev)
    is_branch = rev in repo.branches or rev.startswith(("refs/heads/", "refs/pr/"))
    if not (is_branch or create_pr):
        raise HubError(400, f"Invalid rev id: {rev} is not a branch")
    return commit


def preupload(store: Store, req: Request, plural: str, ns: str, name: str, rev: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    commit = branch_head(repo, rev, req.flag("create_pr"))
    data = req.json()
    lfs_patterns = repo.lfs_patterns(commit, store)
    ignore = data.get("gitIgnore")
    if ignore is None and ".gitignore" in commit.files:
        ignore = store.content(commit.files[".gitignore"]).decode()
    ignore_patterns = [ln.strip() for ln in (ignore or "").splitlines() if ln.strip() and not ln.startswith("#")]
    files = []
    for item in data.get("files", []):
        path, size = item["path"], int(item["size"])
        sample = base64.b64decode(item.get("sample", ""))
        is_lfs = path_matches(path, lfs_patterns) or size >= req.lfs_threshold or b"\0" in sample
        info = {"path": path, "uploadMode": "lfs" if is_lfs else "regular",
                "shouldIgnore": path_matches(path, ignore_patterns)}
        if (existing := commit.files.get(path)) is not None:
            info["oid"] = existing.sha256 if is_lfs and existing.is_lfs else existing.oid
        files.append(info)
    return json_reply({"files": files, "commitOid": commit.oid})


def lfs_batch(store: Store, req: Request, plural: str, ns: str, name: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    data = req.json()
    if data.get("operation") != "upload":
        raise HubError(400, "This test Hub only implements the LFS upload operation")
    objects = []
    for obj in data.get("objects", []):
        oid, size = obj.get("oid"), obj.get("size")
        if not isinstance(oid, str) or not _SHA256.match(oid) or not isinstance(size, int) or size < 0:
            objects.append({"oid": str(oid), "size": int(size or 0), "error": {"code": 422, "message": "Invalid object"}})
        elif oid in repo.lfs_oids and oid in store.blobs:
            objects.append({"oid": oid, "size": size})  # already stored: no actions, as git-lfs says
        else:
            verify = f"{repo_url(req, repo)}.git/info/lfs/objects/verify"
            upload = f"{req.cdn_url}/upload/{oid}?size={size}&repo={quote(repo.repo_id, safe='')}"
            objects.append({"oid": oid, "size": size, "authenticated": True,
                            "actions": {"upload": {"href": upload}, "verify": {"href": verify}}})
    reply = json_reply({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
    reply.headers["Content-Type"] = "application/vnd.git-lfs+json"
    return reply


def lfs_verify(store: Store, req: Request, plural: str, ns: str, name: str, pending: dict[str, bytes]) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    data = req.json()
    oid, size = data.get("oid"), data.get("size")
    content = pending.get(oid) if oid not in store.blobs else store.blobs[oid]
    if content is None:
        raise HubError(404, f"Object {oid} not found")
    if hashlib.sha256(content).hexdigest() != oid or len(content) != size:
        raise HubError(422, f"Object {oid} does not match its oid and size")
    store.blobs[oid] = pending.pop(oid, content)
    repo.lfs_oids.add(oid)
    return json_reply({})


def commit(store: Store, req: Request, plural: str, ns: str, name: str, rev: str) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    create_pr = req.flag("create_pr")
    head = branch_head(repo, rev, create_pr)
    try:
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    except ValueError as e:
        raise HubError(400, f"Invalid NDJSON body: {e}") from None
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "The first line of a commit must be its header")
    header = lines[0]["value"]
    parent = header.get("parentCommit")
    if parent and not head.oid.startswith(parent):
        raise HubError(412, "A commit has happened since. Please refresh and try again.")
    files = dict(head.files)
    for line in lines[1:]:
        key, value = line.get("key"), line.get("value", {})
        path = str(value.get("path", "")).strip("/")
        if key == "file":
            data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
            if b"\0" in data or len(data) >= req.lfs_threshold:
                raise HubError(400, f"Your push was rejected because {path} is a binary or large file. Use LFS.")
            files[path] = store.put_regular(data)
        elif key == "lfsFile":
            oid = value.get("oid")
            if oid not in repo.lfs_oids or oid not in store.blobs:
                raise HubError(400, f"Your push was rejected because an LFS pointer ({path}) points to a file that does not exist: {oid}")
            files[path] = store.lfs_entry(oid, len(store.blobs[oid]))
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            gone = [p for p in files if p.startswith(f"{path}/")]
            if not gone:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in gone:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation: {key!r}")
    new = repo.add_commit(head.oid, files, header.get("summary") or "", header.get("description") or "")
    pr_url = None
    if create_pr:
        number = len(repo.pulls) + 1
        repo.pulls[number] = new.oid
        pr_url = f"{repo_url(req, repo)}/discussions/{number}"
    elif rev.startswith("refs/pr/"):
        repo.pulls[int(rev.removeprefix("refs/pr/"))] = new.oid
    else:
        repo.branches[rev.removeprefix("refs/heads/")] = new.oid
    return json_reply({"success": True, "commitOid": new.oid, "commitUrl": f"{repo_url(req, repo)}/commit/{new.oid}",
                       "hookOutput": "", "pullRequestUrl": pr_url})


# --- downloads -----------------------------------------------------------------------------------


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single `bytes=` range; None to send everything."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    start, end = (max(size - int(last), 0), size - 1) if not first else (int(first), min(int(last or size - 1), size - 1))
    if start >= size or start > end:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


def content_reply(req: Request, data: bytes, headers: dict[str, str]) -> Reply:
    span = byte_range(req.headers.get("Range"), len(data))
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **headers}
    if span is None:
        return Reply(200, data, headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    return Reply(206, data[start : end + 1], headers)


def resolve(store: Store, req: Request, plural: str, ns: str, name: str, rev: str, path: str) -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    commit = commit_at(repo, rev)
    entry = commit.files.get(path)
    if entry is None:
        raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{entry.etag}"'}
    if entry.is_lfs:
        location = f"{req.cdn_url}/lfs/{entry.sha256}?filename={quote(path.rsplit('/', 1)[-1])}"
        headers |= {"Location": location, "X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)}
        return Reply(302, f"Found. Redirecting to {location}".encode(), headers)
    return content_reply(req, store.content(entry), headers)


def cdn_get(store: Store, req: Request, sha256: str) -> Reply:
    if sha256 not in store.blobs:
        return Reply(404, b"NoSuchKey", {"Content-Type": "text/plain"})
    return content_reply(req, store.blobs[sha256], {"ETag": f'"{sha256}"'})


def cdn_put(store: Store, req: Request, oid: str, pending: dict[str, bytes]) -> Reply:
    """The presigned-URL PUT of the basic transfer: stored as pending until `verify` checks it."""
    pending[oid] = req.body
    return Reply(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})
