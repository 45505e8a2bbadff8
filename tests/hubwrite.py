"""The write side of the test Hub: repo creation, YAML validation, tags and branches, preupload,
the git-lfs batch API (basic transfer: PUT to the storage origin, then verify) and the NDJSON commit.

Upload modes follow the Hub: a file goes to LFS when `.gitattributes` routes it there, when it is
10 MiB or more, or when its sample is binary; a regular file is refused on commit for the same
reasons. Xet is never offered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from urllib.parse import quote

import yaml
from hubhttp import PREFIX, HubError, Reply, Request, commit_at, json_reply, repo_url, writable_repo
from hubstore import Commit, FileEntry, Repo, Store, lfs_patterns, path_matches

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


def create_branch(
    store: Store, req: Request, plural: str, ns: str, name: str, branch: str
) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    start = commit_at(repo, req.json().get("startingPoint") or "main")
    if branch in repo.branches:
        raise HubError(409, f"Reference already exists: refs/heads/{branch}")
    repo.branches[branch] = start.oid
    return json_reply({})


def delete_branch(
    store: Store, req: Request, plural: str, ns: str, name: str, branch: str
) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    if branch == "main":
        raise HubError(403, "Cannot delete the default branch")
    if repo.branches.pop(branch, None) is None:
        raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
    return json_reply({})


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
    attributes = data.get("gitAttributes")
    lfs = lfs_patterns(
        attributes if attributes is not None else store.text(commit.files, ".gitattributes")
    )
    ignore = data.get("gitIgnore")
    ignore = ignore if ignore is not None else store.text(commit.files, ".gitignore")
    ignored = [ln.strip() for ln in ignore.splitlines() if ln.strip() and not ln.startswith("#")]
    files = []
    for item in data.get("files", []):
        path, size = item["path"], int(item["size"])
        sample = base64.b64decode(item.get("sample", ""))
        is_lfs = path_matches(path, lfs) or size >= req.lfs_threshold or b"\0" in sample
        info = {
            "path": path,
            "uploadMode": "lfs" if is_lfs else "regular",
            "shouldIgnore": path_matches(path, ignored),
        }
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
        if (
            not isinstance(oid, str)
            or not _SHA256.match(oid)
            or not isinstance(size, int)
            or size < 0
        ):
            objects.append(
                {
                    "oid": str(oid),
                    "size": int(size or 0),
                    "error": {"code": 422, "message": "Invalid object"},
                }
            )
        elif oid in repo.lfs_oids and oid in store.blobs:
            objects.append(
                {"oid": oid, "size": size}
            )  # already stored: no actions, as git-lfs says
        else:
            verify = f"{repo_url(req, repo)}.git/info/lfs/objects/verify"
            upload = f"{req.cdn_url}/upload/{oid}?size={size}&repo={quote(repo.repo_id, safe='')}"
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {"upload": {"href": upload}, "verify": {"href": verify}},
                }
            )
    reply = json_reply({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})
    reply.headers["Content-Type"] = "application/vnd.git-lfs+json"
    return reply


def lfs_verify(
    store: Store, req: Request, plural: str, ns: str, name: str, pending: dict[str, bytes]
) -> Reply:
    repo = writable_repo(store, req, plural, ns, name)
    data = req.json()
    oid, size = data.get("oid"), data.get("size")
    content = pending.pop(oid, None)  # what was just PUT; None when nothing was
    if content is None and oid not in store.blobs:
        raise HubError(404, f"Object {oid} not found")
    if content is not None:
        if hashlib.sha256(content).hexdigest() != oid or len(content) != size:
            raise HubError(422, f"Object {oid} does not match its oid and size")
        store.blobs.setdefault(oid, content)
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
    if parent and create_pr:  # a pull request starts from the given parent
        head = commit_at(
            repo, next((oid for oid in repo.commits if oid.startswith(parent)), parent)
        )
    elif parent and not head.oid.startswith(parent):
        raise HubError(412, "A commit has happened since. Please refresh and try again.")
    files = apply_operations(store, repo, dict(head.files), lines[1:], req.lfs_threshold)
    new = repo.add_commit(
        head.oid, files, header.get("summary") or "", header.get("description") or ""
    )
    pr_url = None
    if create_pr:
        number = len(repo.pulls) + 1
        repo.pulls[number] = new.oid
        pr_url = f"{repo_url(req, repo)}/discussions/{number}"
    elif rev.startswith("refs/pr/"):
        repo.pulls[int(rev.removeprefix("refs/pr/"))] = new.oid
    else:
        repo.branches[rev.removeprefix("refs/heads/")] = new.oid
    url = f"{repo_url(req, repo)}/commit/{new.oid}"
    return json_reply(
        {
            "success": True,
            "commitOid": new.oid,
            "commitUrl": url,
            "hookOutput": "",
            "pullRequestUrl": pr_url,
        }
    )


def apply_operations(
    store: Store, repo: Repo, files: dict[str, FileEntry], operations: list[dict], threshold: int
) -> dict[str, FileEntry]:
    """`files` after the commit's operations. An LFS file that `.gitattributes` does not route to
    LFS gets its own line there, in the same commit, as the Hub does."""
    new_lfs = []
    for line in operations:
        key, value = line.get("key"), line.get("value", {})
        path = str(value.get("path", "")).strip("/")
        if key == "file":
            encoded = value.get("content", "")
            data = (
                base64.b64decode(encoded) if value.get("encoding") == "base64" else encoded.encode()
            )
            if b"\0" in data or len(data) >= threshold:
                raise HubError(
                    400, f"Your push was rejected because {path} is binary or too large: use LFS"
                )
            files[path] = store.put_regular(data)
        elif key == "lfsFile":
            oid = value.get("oid")
            if oid not in repo.lfs_oids or oid not in store.blobs:
                raise HubError(
                    400,
                    f"Your push was rejected: the LFS pointer of {path} points to a missing object {oid}",
                )
            files[path] = store.lfs_entry(oid, len(store.blobs[oid]))
            new_lfs.append(path)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            gone = [p for p in files if p.startswith(f"{path}/")]
            if not gone:
                raise HubError(
                    404, f"A folder with this name doesn't exist: {path}", "EntryNotFound"
                )
            for p in gone:
                del files[p]
        else:
            raise HubError(400, f"Unknown commit operation: {key!r}")
    attributes = store.text(files, ".gitattributes")
    untracked = [p for p in new_lfs if not path_matches(p, lfs_patterns(attributes))]
    if untracked:
        lines = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in untracked)
        files[".gitattributes"] = store.put_regular((attributes + lines).encode())
    return files


def cdn_put(store: Store, req: Request, oid: str, pending: dict[str, bytes]) -> Reply:
    """The presigned-URL PUT of the basic transfer: stored as pending until `verify` checks it."""
    pending[oid] = req.body
    return Reply(200, b"", {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'})
