"""The read side of the test Hub: repo info, listing, refs, commits, tree, paths-info and
`/resolve` (regular files served directly with their git blob sha1 as ETag; LFS files answered with
a 302 to the storage origin carrying `X-Linked-Etag` (sha256) and `X-Linked-Size`, as the Hub does).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, quote

from hubhttp import (
    REPO_TYPES,
    HubError,
    Reply,
    Request,
    can_read,
    commit_at,
    content_reply,
    find_repo,
    json_reply,
    paginated,
)
from hubstore import Commit, FileEntry, Repo, Store, derived_tags

#: What /api/models returns per repo without `full`.
BRIEF_KEYS = (
    "_id",
    "id",
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
)


def list_refs(store: Store, req: Request, plural: str, ns: str, name: str) -> Reply:
    repo = find_repo(store, req, plural, ns, name)

    def refs(items: dict, prefix: str) -> list[dict[str, str]]:
        return [
            {"name": str(k), "ref": f"{prefix}{k}", "targetCommit": v} for k, v in items.items()
        ]

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
        items.append(
            {
                "id": commit.oid,
                "title": commit.title,
                "message": commit.message,
                "authors": [{"user": author}],
                "date": commit.date,
            }
        )
        commit = repo.commits[commit.parent] if commit.parent else None
    return paginated(req, items)


def siblings(commit: Commit, blobs: bool) -> list[dict[str, Any]]:
    out = []
    for path, entry in sorted(commit.files.items()):
        item: dict[str, Any] = {"rfilename": path}
        if blobs:
            item |= {"size": entry.size, "blobId": entry.oid}
            if entry.is_lfs:
                item["lfs"] = {
                    "size": entry.size,
                    "sha256": entry.sha256,
                    "pointerSize": entry.pointer_size,
                }
        out.append(item)
    return out


def repo_info_dict(
    store: Store, req: Request, repo: Repo, commit: Commit, full: bool
) -> dict[str, Any]:
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


def repo_info(
    store: Store, req: Request, plural: str, ns: str, name: str, rev: str = "main"
) -> Reply:
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
        if (library and info.get("library_name") != library) or (
            pipeline and info.get("pipeline_tag") != pipeline
        ):
            continue
        if full:  # the listing carries file names only, and cardData only when asked
            item = {k: v for k, v in info.items() if k != "cardData"}
            item["siblings"] = [{"rfilename": s["rfilename"]} for s in info["siblings"]]
        else:
            item = {k: v for k, v in info.items() if k in BRIEF_KEYS}
        if req.flag("cardData") and "cardData" in info:
            item["cardData"] = info["cardData"]
        sort_value = (
            commit.date if req.arg("sort") == "lastModified" else info.get(req.arg("sort") or "", 0)
        )
        matches.append((sort_value, expanded(req, item)))
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
        item: dict[str, Any] = {
            "type": "directory",
            "oid": commit.trees[path],
            "size": 0,
            "path": path,
        }
    else:
        entry: FileEntry = commit.files[path]
        item = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.is_lfs:
            item["lfs"] = {
                "oid": entry.sha256,
                "size": entry.size,
                "pointerSize": entry.pointer_size,
            }
    if expand:
        item["lastCommit"] = last_commit(repo, commit, path, item["type"] == "directory")
    return item


def list_tree(
    store: Store, req: Request, plural: str, ns: str, name: str, rev: str, path: str
) -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    commit = commit_at(repo, rev)
    folder = path.strip("/")
    if folder and folder not in commit.trees:
        raise HubError(
            404,
            f"Entry not found: {folder}",
            "EntryNotFound",
            headers={"X-Repo-Commit": commit.oid},
        )
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


def resolve(
    store: Store, req: Request, plural: str, ns: str, name: str, rev: str, path: str
) -> Reply:
    repo = find_repo(store, req, plural, ns, name)
    commit = commit_at(repo, rev)
    entry = commit.files.get(path)
    if entry is None:
        raise HubError(
            404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.oid}
        )
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{entry.etag}"'}
    if entry.is_lfs:
        location = f"{req.cdn_url}/lfs/{entry.sha256}?filename={quote(path.rsplit('/', 1)[-1])}"
        headers |= {
            "Location": location,
            "X-Linked-Etag": f'"{entry.sha256}"',
            "X-Linked-Size": str(entry.size),
        }
        return Reply(302, f"Found. Redirecting to {location}".encode(), headers)
    return content_reply(req, store.content(entry), headers)


def cdn_get(store: Store, req: Request, sha256: str) -> Reply:
    if sha256 not in store.blobs:
        return Reply(404, b"NoSuchKey", {"Content-Type": "text/plain"})
    return content_reply(req, store.blobs[sha256], {"ETag": f'"{sha256}"'})


def whoami(req: Request, orgs: set[str]) -> Reply:
    """GET /api/whoami-v2: the token's user and organisations."""
    if req.user is None:
        raise HubError(401, "Invalid credentials in Authorization header")
    return json_reply(
        {
            "type": "user",
            "id": hashlib.sha1(req.user.encode()).hexdigest()[:24],
            "name": req.user,
            "fullname": req.user,
            "orgs": [{"type": "org", "name": org} for org in sorted(orgs)],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "test", "role": "write"},
            },
        }
    )
