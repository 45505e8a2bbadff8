"""Load the source LLM and its tokenizer through transformers, GGUF files included.

A GGUF file is dequantized by transformers on every load, which is slow; the dequantized model and
tokenizer are therefore saved once (safetensors) in a cache folder keyed by the file's sha256,
size and the dtype, and later loads read that folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import BuildError, quote

__all__ = ["default_cache_dir", "dequantize_gguf", "gguf_hidden_size", "load_llm", "load_model",
           "load_processor"]

log = logging.getLogger(__name__)
_COMPLETE = ".complete"


def _dtype_kwarg() -> str:
    import transformers

    # transformers renamed from_pretrained's torch_dtype to dtype in 4.56.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def default_cache_dir() -> Path:
    """``$L2V_HUB_CACHE``, else ``~/.cache/l2v_hub``."""
    return Path(os.environ.get("L2V_HUB_CACHE") or Path.home() / ".cache" / "l2v_hub")


def _dtype(value: str | torch.dtype | None) -> torch.dtype | str | None:
    if value is None or isinstance(value, torch.dtype) or value == "auto":
        return value
    resolved = getattr(torch, str(value), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise BuildError(f"dtype must be auto, float32, bfloat16 or float16, got {value!r}")
    return resolved


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _gguf_path(id_or_path: str, gguf_file: str, revision: str | None) -> Path:
    local = Path(id_or_path) / gguf_file
    if local.is_file():
        return local
    if Path(id_or_path).exists():
        raise BuildError(f"GGUF file '{gguf_file}' not found in '{id_or_path}'")
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(id_or_path, gguf_file, revision=revision))


def gguf_hidden_size(path: Path) -> int | None:
    """The model width (``<arch>.embedding_length``) in a GGUF file's header, read without its
    tensors; None when the file or the key cannot be read."""
    import gguf

    try:
        fields = gguf.GGUFReader(path).fields
        arch = fields["general.architecture"].contents()
        width = fields[f"{arch}.embedding_length"].contents()
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return width if isinstance(width, int) else None


def dequantize_gguf(gguf: Path, dtype: torch.dtype, cache_dir: Path, **kwargs: Any) -> Path:
    """The cache folder holding ``gguf`` dequantized to ``dtype``; written on first use."""
    name = str(dtype).removeprefix("torch.")
    folder = cache_dir / "gguf" / f"{gguf.stem}-{_sha256(gguf)[:16]}-{gguf.stat().st_size}-{name}"
    if (folder / _COMPLETE).is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing %s to %s (once; cached in %s)", gguf.name, name, folder)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, **{_dtype_kwarg(): dtype}, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, **kwargs)
    # The weights are already dense tensors; transformers 5 still tags the model as "quantized
    # with gguf" and then refuses to save it. Dropping the tag saves the plain dense model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the final folder and renamed into place, so a crash leaves no half cache.
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _COMPLETE).write_text(gguf.name + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_llm(
    id_or_path: str | Path,
    *,
    gguf_file: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a Hub id, a local folder or a GGUF file.

    ``id_or_path`` may name a ``.gguf`` file directly. ``device_map="auto"`` is passed through so
    accelerate spreads a model over the GPUs; otherwise the model is moved to ``device``.
    ``trust_remote_code`` is never set unless asked for. Returns ``(model, tokenizer)`` in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(id_or_path)
    if gguf_file is None and source.endswith(".gguf") and Path(source).is_file():
        source, gguf_file = str(Path(source).parent), Path(source).name
    torch_dtype = _dtype(dtype)
    common = {"trust_remote_code": trust_remote_code}
    if gguf_file is not None:
        gguf = _gguf_path(source, gguf_file, revision)
        wanted = torch.float32 if torch_dtype in (None, "auto") else torch_dtype
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        source, torch_dtype, revision = str(dequantize_gguf(gguf, wanted, cache, **common)), wanted, None
    kwargs: dict[str, Any] = {**common, "revision": revision}
    if torch_dtype is not None:
        kwargs[_dtype_kwarg()] = torch_dtype
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **common, revision=revision)
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot load the LLM '{id_or_path}': {quote(exc)}") from None
    if device is not None and device_map is None:
        model.to(device)
    return model.eval(), tokenizer


def load_model(
    id_or_path: str | Path,
    *,
    gguf_file: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """A target model with its weights, for calibration: a VLM (a config with a separate text
    config) through ``AutoModelForImageTextToText``, anything else as :func:`load_llm`.
    Returns ``(model, tokenizer)`` in eval mode; raises ``BuildError`` when it cannot be loaded."""
    source = str(id_or_path)
    if gguf_file is None and not source.endswith(".gguf"):
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

        try:
            config = AutoConfig.from_pretrained(source, revision=revision,
                                                trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise BuildError(f"cannot read the config of '{id_or_path}': {quote(exc)}") from None
        if config.get_text_config() is not config:
            kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
            if _dtype(dtype) is not None:
                kwargs[_dtype_kwarg()] = _dtype(dtype)
            if device_map is not None:
                kwargs["device_map"] = device_map
            try:
                model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
                tokenizer = AutoTokenizer.from_pretrained(source, revision=revision,
                                                          trust_remote_code=trust_remote_code)
            except (OSError, ValueError) as exc:
                raise BuildError(f"cannot load the VLM '{id_or_path}': {quote(exc)}") from None
            if device is not None and device_map is None:
                model.to(device)
            return model.eval(), tokenizer
    return load_llm(id_or_path, gguf_file=gguf_file, device=device, dtype=dtype, device_map=device_map,
                    trust_remote_code=trust_remote_code, cache_dir=cache_dir, revision=revision)


def load_processor(source: str | Path, tokenizer: Any, model: Any,
                   trust_remote_code: bool = False) -> Any:
    """What ``model`` (loaded from ``source``) is asked through: its processor when it is a VLM
    with one saved (``AutoProcessor``), else ``tokenizer`` (text questions only)."""
    if model.config.get_text_config() is model.config:
        return tokenizer
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError):  # no processor files: text questions only
        return tokenizer
    return processor if getattr(processor, "image_processor", None) is not None else tokenizer
