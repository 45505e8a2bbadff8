"""The data model behind the test Hub (tests/hubserver.py): repos as real git-like objects.

Every commit has a 40-hex sha computed the way git computes it (blob, tree and commit objects), a
parent, and an immutable file tree; branches move, tags point at commits, and an old commit stays
resolvable by its sha. Regular files are stored by their git blob sha1, LFS files by their sha256
(their git blob is the LFS pointer, as on the Hub). A new repo starts with the Hub's "initial
commit" holding a `.gitattributes` that routes the usual binary formats to LFS.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import yaml

#: The Hub's default `.gitattributes` for a new model repo (abridged: the patterns that matter).
_LFS_PATTERNS = """
    *.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack
    *.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors
    saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*
"""
DEFAULT_GITATTRIBUTES = "".join(
    f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS.split()
)
#: The Hub refuses files of 10 MiB or more outside LFS.
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
AUTHOR = "l2v-test <test@localhost>"


def now_iso() -> str:
    """A timestamp in the Hub's format, e.g. 2024-05-01T12:00:00.000Z."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def git_object_id(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit: `oid` is its git blob id (of the pointer for LFS files)."""

    size: int
    oid: str
    sha256: str | None = None  # set for LFS files only

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size)) if self.sha256 else 0

    @property
    def etag(self) -> str:
        """What the Hub sends as ETag: the sha256 for LFS files, the git blob sha1 otherwise."""
        return self.sha256 or self.oid


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    files: MappingProxyType  # path -> FileEntry, never mutated
    trees: MappingProxyType  # folder path ("" for the root) -> git tree id
    title: str
    message: str
    date: str


def build_trees(files: dict[str, FileEntry]) -> dict[str, str]:
    """The git tree id of every folder of `files` (the root is "")."""
    children: dict[str, dict[str, tuple[str, str]]] = {"": {}}
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder, parent = "/".join(parts[:depth]), "/".join(parts[: depth - 1])
            children.setdefault(folder, {})
            children[parent][parts[depth - 1]] = ("40000", folder)
        children["/".join(parts[:-1])][parts[-1]] = ("100644", path)
    trees: dict[str, str] = {}

    def tree_id(folder: str) -> str:
        body = b""
        # git orders entries by name, a folder sorting as if its name ended with "/"
        for name, (mode, full) in sorted(
            children[folder].items(), key=lambda kv: kv[0] + ("/" if kv[1][0] == "40000" else "")
        ):
            oid = tree_id(full) if mode == "40000" else files[full].oid
            body += f"{mode} {name}\0".encode() + bytes.fromhex(oid)
        trees[folder] = git_object_id("tree", body)
        return trees[folder]

    tree_id("")
    return trees


@dataclass
class Repo:
    repo_type: str  # "model" | "dataset"
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, str] = field(default_factory=dict)
    lfs_oids: set[str] = field(default_factory=set)  # LFS objects uploaded to this repo

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def resolve(self, revision: str) -> str | None:
        """Commit sha for a branch, tag, refs/... name or full commit sha; None when unknown."""
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if revision.startswith(prefix):
                return refs.get(revision[len(prefix) :])
        if revision.startswith("refs/pr/"):
            number = revision[len("refs/pr/") :]
            return self.pulls.get(int(number)) if number.isdigit() else None
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None

    def add_commit(
        self, parent: str | None, files: dict[str, FileEntry], title: str, message: str
    ) -> Commit:
        trees = build_trees(files)
        date = now_iso()
        stamp = int(datetime.now(UTC).timestamp())
        lines = [f"tree {trees['']}"] + ([f"parent {parent}"] if parent else [])
        lines += [f"author {AUTHOR} {stamp} +0000", f"committer {AUTHOR} {stamp} +0000", "", title]
        body = "\n".join(lines) + ("\n\n" + message if message else "") + "\n"
        commit = Commit(
            oid=git_object_id("commit", body.encode()),
            parent=parent,
            files=MappingProxyType(dict(files)),
            trees=MappingProxyType(trees),
            title=title,
            message=message,
            date=date,
        )
        self.commits[commit.oid] = commit
        return commit


def lfs_patterns(gitattributes: str) -> list[str]:
    return [line.split()[0] for line in gitattributes.splitlines() if "filter=lfs" in line]


def path_matches(path: str, patterns: list[str]) -> bool:
    """gitattributes/gitignore matching: a pattern without "/" matches the file's name anywhere."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path if "/" in p else name, p.lstrip("/")) for p in patterns)


def parse_front_matter(readme: bytes) -> dict[str, Any]:
    """The YAML metadata block of a README (the Hub's cardData); {} when there is none."""
    text = readme.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError:  # the Hub shows such a card without metadata
        return {}
    return data if isinstance(data, dict) else {}


def derived_tags(card: dict[str, Any]) -> list[str]:
    """Tags the Hub computes from the card: its tags, library, base model (with relation),
    license and languages, plus the storage region."""

    def as_list(value: Any) -> list[str]:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []

    tags = as_list(card.get("tags"))
    if card.get("library_name"):
        tags.append(str(card["library_name"]))
    bases = as_list(card.get("base_model"))
    relation = card.get("base_model_relation") or ("merge" if len(bases) > 1 else "finetune")
    for base in bases:
        tags += [f"base_model:{base}", f"base_model:{relation}:{base}"]
    tags += [f"license:{v}" for v in as_list(card.get("license"))]
    tags += as_list(card.get("language"))
    tags.append("region:us")
    return list(dict.fromkeys(tags))


class Store:
    """All repos and file contents of the test Hub. Use under `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # git blob sha1 (regular files) or sha256 (LFS) -> bytes

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, private, created_at=now_iso())
        attributes = DEFAULT_GITATTRIBUTES.encode()
        entry = self.put_regular(attributes)
        repo.branches["main"] = repo.add_commit(
            None, {".gitattributes": entry}, "initial commit", ""
        ).oid
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def put_regular(self, data: bytes) -> FileEntry:
        oid = git_object_id("blob", data)
        self.blobs[oid] = data
        return FileEntry(size=len(data), oid=oid)

    def lfs_entry(self, sha256: str, size: int) -> FileEntry:
        return FileEntry(
            size=size, oid=git_object_id("blob", lfs_pointer(sha256, size)), sha256=sha256
        )

    def content(self, entry: FileEntry) -> bytes:
        return self.blobs[entry.sha256 or entry.oid]

    def text(self, files: Mapping[str, FileEntry], path: str) -> str:
        """The text of `path` among `files`, "" when absent."""
        entry = files.get(path)
        return self.content(entry).decode("utf-8", errors="replace") if entry is not None else ""

    def card(self, commit: Commit) -> dict[str, Any]:
        entry = commit.files.get("README.md")
        return parse_front_matter(self.content(entry)) if entry is not None else {}
