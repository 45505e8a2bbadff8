"""The URL map of the test Hub: which endpoint answers a request, and the request's kinds.

Kinds key the fault switches and the counters of `HubServer` (see `hubserver.KINDS`). A GET on
`/resolve` that sends a regular file's bytes is both "resolve" and "download"; a GET on the storage
origin (LFS bytes) is "download"; the LFS batch, PUT and verify calls are "upload". Revisions and
tree paths arrive URL-encoded as one segment (`refs%2Fpr%2F1`), so the path is split before decoding.
"""

from __future__ import annotations

from collections.abc import Callable

import hubread as read
import hubwrite as write
from hubhttp import REPO_TYPES, Reply, Request, json_reply
from hubstore import Store

Answer = Callable[[], Reply]


def route(
    store: Store,
    pending: dict[str, bytes],
    orgs: dict[str, set[str]] | None,
    req: Request,
    cdn: bool,
) -> tuple[tuple[str, ...], Answer]:
    """(kinds, answer) for a request to the Hub origin, or to the storage origin when `cdn`.
    `pending` holds LFS uploads awaiting verification; `orgs` maps users to their organisations."""
    m, s = req.method, req.segs
    if cdn:
        match (m, s):
            case ("GET" | "HEAD", ["lfs", sha]):
                return ("download",) if m == "GET" else ("resolve",), lambda: read.cdn_get(
                    store, req, sha
                )
            case ("PUT", ["upload", oid]):
                return ("upload",), lambda: write.cdn_put(store, req, oid, pending)
        return ("other",), lambda: Reply(404, b"Not Found")
    match (m, s):
        case ("GET" | "HEAD", ["datasets", ns, name, "resolve", rev, *path]):
            return resolve_kinds(store, req, "datasets", ns, name, rev, "/".join(path))
        case ("GET" | "HEAD", [ns, name, "resolve", rev, *path]) if ns != "api":
            return resolve_kinds(store, req, "models", ns, name, rev, "/".join(path))
        case ("POST", [*pre, ns, git, "info", "lfs", "objects", "batch" | "verify" as action]) if (
            git.endswith(".git") and pre in ([], ["datasets"])
        ):
            t, name = ("datasets" if pre else "models"), git.removesuffix(".git")
            if action == "batch":
                return ("upload",), lambda: write.lfs_batch(store, req, t, ns, name)
            return ("upload",), lambda: write.lfs_verify(store, req, t, ns, name, pending)
        case ("POST", ["api", "repos", "create"]):
            return ("create",), lambda: write.create_repo(store, req)
        case ("DELETE", ["api", "repos", "delete"]):
            return ("other",), lambda: write.delete_repo(store, req)
        case ("GET", ["api", "whoami-v2"]):
            return ("other",), lambda: read.whoami(req, (orgs or {}).get(req.user or "", set()))
        case ("POST", ["api", "validate-yaml"]):
            return ("validate",), lambda: write.validate_yaml(store, req)
        case ("GET", ["api", "models" | "datasets" as t]):
            return ("list",), lambda: read.list_repos(store, req, t)
        case ("GET", ["api", "models" | "datasets" as t, ns, name]):
            return ("info",), lambda: read.repo_info(store, req, t, ns, name)
        case ("GET", ["api", "models" | "datasets" as t, ns, name, "revision", rev]):
            return ("info",), lambda: read.repo_info(store, req, t, ns, name, rev)
        case ("GET", ["api", "models" | "datasets" as t, ns, name, "refs"]):
            return ("info",), lambda: read.list_refs(store, req, t, ns, name)
        case ("GET", ["api", "models" | "datasets" as t, ns, name, "commits", rev]):
            return ("info",), lambda: read.list_commits(store, req, t, ns, name, rev)
        case ("GET", ["api", "models" | "datasets" as t, ns, name, "tree", rev, *path]):
            return ("info",), lambda: read.list_tree(store, req, t, ns, name, rev, "/".join(path))
        case ("POST", ["api", "models" | "datasets" as t, ns, name, "paths-info", rev]):
            return ("info",), lambda: read.paths_info(store, req, t, ns, name, rev)
        case ("POST", ["api", "models" | "datasets" as t, ns, name, "preupload", rev]):
            return ("preupload",), lambda: write.preupload(store, req, t, ns, name, rev)
        case ("POST", ["api", "models" | "datasets" as t, ns, name, "commit", rev]):
            return ("commit",), lambda: write.commit(store, req, t, ns, name, rev)
        case (
            "POST" | "DELETE",
            ["api", "models" | "datasets" as t, ns, name, "tag" | "branch" as ref, arg],
        ):
            handler = {
                ("POST", "tag"): write.create_tag,
                ("DELETE", "tag"): write.delete_tag,
                ("POST", "branch"): write.create_branch,
                ("DELETE", "branch"): write.delete_branch,
            }[(m, ref)]
            return ("tag",), lambda: handler(store, req, t, ns, name, arg)
    return ("other",), lambda: json_reply({"error": "Not Found"}, 404)


def resolve_kinds(
    store: Store, req: Request, plural: str, ns: str, name: str, rev: str, path: str
) -> tuple[tuple[str, ...], Answer]:
    """A GET that sends a regular file's bytes is a download too; an LFS file's GET is a 302."""

    def answer() -> Reply:
        return read.resolve(store, req, plural, ns, name, rev, path)

    if req.method == "HEAD":
        return ("resolve",), answer
    with store.lock:
        repo = store.repos.get((REPO_TYPES[plural], f"{ns}/{name}"))
        oid = repo.resolve(rev) if repo else None
        entry = repo.commits[oid].files.get(path) if repo and oid else None
    return ("resolve", "download") if entry is not None and not entry.is_lfs else (
        "resolve",
    ), answer
