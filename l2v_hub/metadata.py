"""The typed metadata of a pack (``pack.json``, format v2; v1 is still read) and its strict parser.

Every check names the file and the dotted field at fault, so a broken pack explains itself.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from .errors import PackError

__all__ = [
    "HOOK_SITE",
    "MAX_SCALE",
    "READS",
    "SCALE_MEASURES",
    "SCHEMA_VERSION",
    "Defaults",
    "Hook",
    "Method",
    "ModelRef",
    "Op",
    "PairsInfo",
    "Positions",
    "Read",
    "Scale",
    "ScaleMeasure",
    "check_model_id",
    "default_pack_name",
    "model_slug",
    "parse_metadata",
    "to_json_dict",
]

def model_slug(model_id: str) -> str:
    """A model id's name part, lower-cased, other characters runs as ``-``: ``qwen2.5-0.5b``."""
    return re.sub(r"[^a-z0-9.]+", "-", model_id.rsplit("/", 1)[-1].lower()).strip("-.")


def default_pack_name(source_id: str, target_id: str) -> str:
    """``l2v-cot-{source}-to-{target}``: the builder's default name and ``publish``'s suggested repo
    (at most 96 characters). Older packs say ``-for-``; a name is never parsed, so both read."""
    return f"l2v-cot-{model_slug(source_id)}-to-{model_slug(target_id)}"[:96].rstrip("-.")


# v2: the push is absolute (lambda * s_i * v_i, docs/pack-format.md); v1 (lambda * ||h|| * v_i) is
# still read, so that it can be refused with a way to convert it, never applied with v2 meaning.
SCHEMA_VERSION = 2
HOOK_SITE = "decoder_block_output"
Op = Literal["norm_preserving_add", "add"]
Positions = Literal["first_and_generated", "all", "generated", "prompt_last",
                    "prompt_last_and_generated"]
OPS: tuple[str, ...] = get_args(Op)
POSITIONS: tuple[str, ...] = get_args(Positions)
# Which states of a text the builder reads (docs/method.md, "Reading a pair"): "last", the last
# real token; "response_mean", the mean over the assistant response's tokens; "response_first",
# the first response token (the last two for response-style pairs only).
Read = Literal["last", "response_mean", "response_first"]
READS: tuple[str, ...] = get_args(Read)
# What s_i, the per-block scale of a v2 pack, is (docs/method.md, "The scale s_i"):
# - "cot_norm": the norm of the target's own CoT mean difference at block i (calibration pairs);
# - "token_spread": the median distance of ordinary tokens (not the first) from their mean, on a
#   fixed neutral text: measurable at patch time from one forward;
# - "imported": the norm of a vector made elsewhere (a llama.cpp / repeng control vector), so that
#   strength 1 gives back that vector: stored with the pack, never measured.
ScaleMeasure = Literal["cot_norm", "token_spread", "imported"]
SCALE_MEASURES: tuple[str, ...] = get_args(ScaleMeasure)

# The largest s_i a pack may hold: the loader forms s_i * v_i in float32 (l2v_hub/loader/steer.py),
# and a larger value is inf there (np.finfo(np.float32).max, spelled out to keep torch out).
MAX_SCALE = 3.4028234663852886e38
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
# A Hub repo id: "name" or "namespace/name"; never a filesystem path.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_model_id(value: str, where: str = "model_id") -> str:
    """Return ``value`` if it is a Hub repo id (``org/name``), else raise ``PackError``."""
    if not isinstance(value, str) or not _HUB_ID.match(value) or ".." in value:
        raise PackError(
            f"{where} must be a Hub repo id like 'org/name', not a local path; got {value!r}"
        )
    return value


@dataclass(frozen=True)
class ModelRef:
    """A model a pack was built from or for, as its text decoder sees it."""

    model_id: str
    hidden_size: int
    num_layers: int
    model_type: str
    revision: str | None = None


@dataclass(frozen=True)
class PairsInfo:
    """Which contrastive pairs produced the directions, and the sha256 of their canonical form."""

    source: str
    count: int
    sha256: str


@dataclass(frozen=True)
class Method:
    """How the directions were made: provenance, not instructions to the loader."""

    extraction: str
    pairs: PairsInfo
    lowpass_keep: int | None
    token: str = "last"  # a Read for a built pack
    resample: str = "fourier"
    layer_map: str = "relative-depth"
    name: str = "l2v-cot"


@dataclass(frozen=True)
class Hook:
    """Where and how the loader applies the directions."""

    op: Op = "norm_preserving_add"
    positions: Positions = "first_and_generated"
    site: str = HOOK_SITE
    layer_index_base: int = 0


@dataclass(frozen=True)
class Scale:
    """s_i of every target block (``values``, in the target's own units, one per block), or
    ``values=None``: the loader measures ``measure`` on the model at patch time (uncalibrated)."""

    measure: ScaleMeasure
    values: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Defaults:
    """What ``l2v_hub.patch`` uses when the caller does not say."""

    strength: float
    layers: tuple[int, ...] = field(default_factory=tuple)


class _Reader:
    """Typed access to one JSON object, with errors that name ``file`` and the dotted path."""

    def __init__(self, data: Any, path: str, file: str = "pack.json") -> None:
        self.file, self.path = file, path
        if not isinstance(data, dict):
            raise PackError(f"{file}: '{path or '<root>'}' must be an object, got {_show(data)}")
        self.data = data

    def _name(self, key: str) -> str:
        # A hostile key (a file name in 'files') must not break the one-line error message.
        if not key.isprintable():
            key = key.encode("unicode_escape").decode("ascii")
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, expected: str, value: Any) -> PackError:
        return PackError(f"{self.file}: '{self._name(key)}' must be {expected}, got {_show(value)}")

    def get(self, key: str, expected: str, kinds: tuple[type, ...], optional: bool = False) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise PackError(f"{self.file}: missing key '{self._name(key)}' ({expected})")
        value = self.data[key]
        if value is None and optional:
            return None
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.fail(key, expected, value)
        return value

    def string(self, key: str, optional: bool = False, choices: tuple[str, ...] = ()) -> Any:
        value = self.get(key, "a non-empty string", (str,), optional)
        if value is not None and (not value or len(value) > 256):
            raise self.fail(key, "a non-empty string of at most 256 characters", value)
        if choices and value not in choices:
            raise self.fail(key, "one of " + ", ".join(map(repr, choices)), value)
        return value

    def integer(self, key: str, low: int, high: int, optional: bool = False) -> Any:
        value = self.get(key, f"an integer in [{low}, {high}]", (int,), optional)
        if value is not None and not low <= value <= high:
            raise self.fail(key, f"an integer in [{low}, {high}]", value)
        return value

    def child(self, key: str) -> _Reader:
        return _Reader(self.get(key, "an object", (dict,)), self._name(key), self.file)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_MAX_DIM = 1 << 20  # a hidden size or block count beyond this is a corrupt file, not a model


def _model_ref(reader: _Reader, key: str) -> ModelRef:
    r = reader.child(key)
    return ModelRef(
        model_id=check_model_id(r.string("model_id"), f"{r.file}: '{r.path}.model_id'"),
        revision=r.string("revision", optional=True),
        hidden_size=r.integer("hidden_size", 2, _MAX_DIM),
        num_layers=r.integer("num_layers", 1, _MAX_DIM),
        model_type=r.string("model_type"),
    )


def parse_metadata(data: Any) -> dict[str, Any]:
    """Check a decoded ``pack.json`` and return its typed fields (``files`` as a plain dict).

    Raises ``PackError`` naming the first field that is missing, mistyped or out of range.
    """
    root = _Reader(data, "")
    version = root.integer("schema_version", 1, 1 << 62)
    if version > SCHEMA_VERSION:
        raise PackError(
            f"pack.json: 'schema_version' is {version}, newer than the {SCHEMA_VERSION} this "
            "l2v-hub reads; upgrade l2v-hub (pip install -U l2v-hub)"
        )
    pack_version = root.string("version")
    if not _SEMVER.match(pack_version):
        raise root.fail("version", "a semantic version like '1.2.0'", pack_version)
    m = root.child("method")
    p = m.child("pairs")
    sha = p.string("sha256")
    if not _SHA256.match(sha):
        raise p.fail("sha256", "64 lowercase hex digits", sha)
    method = Method(
        name=m.string("name", choices=("l2v-cot",)),
        extraction=m.string("extraction"),
        # Provenance (an imported pack's is "unknown"), so any string; absent: "last".
        token=m.string("token", optional=True) or "last",
        pairs=PairsInfo(source=p.string("source"), count=p.integer("count", 1, 1 << 62), sha256=sha),
        lowpass_keep=m.integer("lowpass_keep", 1, _MAX_DIM, optional=True),
        resample=m.string("resample"),
        layer_map=m.string("layer_map"),
    )
    h = root.child("hook")
    hook = Hook(
        site=h.string("site", choices=(HOOK_SITE,)),
        layer_index_base=h.integer("layer_index_base", 0, 0),
        op=h.string("op", choices=OPS),
        positions=h.string("positions", choices=POSITIONS),
    )
    d = root.child("defaults")
    strength = d.get("strength", "a finite number >= 0", (int, float))
    if not 0 <= strength < float("inf"):
        raise d.fail("strength", "a finite number >= 0", strength)
    layers = d.get("layers", "a non-empty list of block indices", (list,))
    if not layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise d.fail("layers", "a non-empty list of integer block indices", layers)
    # The target is checked first: the scale is checked against its block count.
    target = _model_ref(root, "target")
    scale = _scale(root.child("scale")) if version >= 2 else None
    if scale is not None and scale.values is not None and len(scale.values) != target.num_layers:
        raise PackError(
            f"pack.json: 'scale.values' has {len(scale.values)} entries, but target.num_layers is "
            f"{target.num_layers}"
        )
    files = root.child("files")
    for name in files.data:
        entry = files.child(name)
        if not _SHA256.match(entry.string("sha256")):
            raise entry.fail("sha256", "64 lowercase hex digits", entry.data["sha256"])
        entry.integer("size", 0, 1 << 62)
    return {
        "schema_version": version,
        "name": root.string("name"),
        "version": pack_version,
        "created": root.string("created"),
        "l2v_hub_version": root.string("l2v_hub_version"),
        "source": _model_ref(root, "source"),
        "target": target,
        "method": method,
        "hook": hook,
        "defaults": Defaults(strength=float(strength), layers=tuple(layers)),
        "scale": scale,
        "calibration": root.data.get("calibration") if version >= 2 else None,
        "files": {name: dict(files.data[name]) for name in files.data},
    }


def _scale(r: _Reader) -> Scale:
    measure = r.string("measure", choices=SCALE_MEASURES)
    values = r.get("values", "a list of positive numbers, one per target block, or null", (list,),
                   optional=True)
    if values is not None:
        ok = all(isinstance(x, int | float) and not isinstance(x, bool) and 0 < x < float("inf")
                 for x in values)
        if not values or not ok:
            raise r.fail("values", "a non-empty list of finite positive numbers, or null", values)
        big = next((i for i, x in enumerate(values) if x > MAX_SCALE), None)
        if big is not None:
            raise r.fail(f"values[{big}]", f"at most float32's largest value {MAX_SCALE:.8g} (the "
                         "loader forms the push s_i * v_i in float32)", values[big])
        values = tuple(float(x) for x in values)
    elif measure == "imported":
        raise r.fail("values", "a list of positive numbers for measure 'imported' (the norms of the "
                     "imported vectors cannot be measured again)", values)
    return Scale(measure=measure, values=values)


def to_json_dict(value: Any) -> Any:
    """A metadata dataclass as the plain dict ``pack.json`` stores (tuples become lists)."""
    data = asdict(value)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
