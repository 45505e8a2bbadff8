"""The ``vllm.general_plugins`` entry point: vLLM calls ``register()`` in every one of its
processes (front end, engine core, workers) before it builds anything.

``register`` only wraps four vLLM methods, each of which does nothing more than the original
unless the engine's ``additional_config`` has an ``l2v_hub`` section (docs/serving.md):

- ``InputProcessor.__init__`` / ``process_inputs`` (front end): the packs are resolved and fitted
  at engine start; each request's ``l2v_*`` keys are checked at admission (a bad one fails that
  request alone: ``VLLMValidationError``, HTTP 400) and a steered request gets a cache salt of its
  steering configuration, so prefix caching never mixes KV of different steering.
- ``BaseModelLoader.create_model`` (workers): right after the model is built, before its
  weights load and long before torch.compile traces it, the packs are fitted against it and the
  steering hooks registered (``ModelSteering``).
- ``GPUModelRunner._prepare_inputs`` / ``_model_forward`` (workers, the V1 model runner that the
  CPU build runs): each step's per-token steering is computed on the host from the runner's
  request state and copied into the hooks' buffers before the forward.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ArgumentError, L2VHubError
from ..loader.layers import find_blocks
from .config import CONFIG_KEY, EngineSteering
from .steering import ModelSteering

__all__ = ["register"]

logger = logging.getLogger(__name__)

_ATTR = "_l2v_hub_steering"
_WRAPPED = "__l2v_hub_wrapped__"


def _wrap(owner: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``owner.name`` by ``make(original)`` once per process (``register`` may run
    several times)."""
    original = owner.__dict__[name]
    if getattr(original, _WRAPPED, False):
        return
    wrapper = functools.wraps(original)(make(original))
    setattr(wrapper, _WRAPPED, True)
    setattr(owner, name, wrapper)


def _configured(vllm_config: Any) -> bool:
    config = getattr(vllm_config, "additional_config", None)
    return isinstance(config, dict) and CONFIG_KEY in config


def _served_model(hf_config: Any) -> Any:
    """What the loader's fit checks read of a model (``config``, the class name) in the front
    end, where vLLM builds no model: an object of a class named as the model's architecture."""
    name = (getattr(hf_config, "architectures", None) or ["ServedModel"])[0]
    return type(name, (), {"config": hf_config})()


def _front_end_init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        original(self, vllm_config, *args, **kwargs)
        steering = None
        if _configured(vllm_config):
            model = _served_model(vllm_config.model_config.hf_config)
            steering = EngineSteering.from_additional_config(vllm_config.additional_config, model)
        setattr(self, _ATTR, steering)
    return __init__


def _admit(original: Callable[..., Any]) -> Callable[..., Any]:
    from vllm.exceptions import VLLMValidationError

    def process_inputs(self: Any, *args: Any, **kwargs: Any) -> Any:
        request = original(self, *args, **kwargs)
        steering: EngineSteering | None = getattr(self, _ATTR, None)
        params = getattr(request, "sampling_params", None)
        if steering is None or params is None:
            return request
        try:
            chosen = steering.for_request(params.extra_args)
        except ArgumentError as exc:
            raise VLLMValidationError(str(exc)) from None
        salt = steering.cache_salt(chosen, len(request.prompt_token_ids or ()))
        if salt is not None:
            request.cache_salt = salt if request.cache_salt is None else (
                f"{request.cache_salt}|{salt}")
        return request
    return process_inputs


def _build(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_model(self: Any, vllm_config: Any, model_config: Any, prefix: str = "") -> Any:
        model = original(self, vllm_config, model_config, prefix)
        if prefix or model_config is not vllm_config.model_config or not _configured(vllm_config):
            return model  # a draft model, or an engine without packs
        if vllm_config.use_v2_model_runner:
            raise L2VHubError("l2v-hub steers on vLLM's V1 model runner only; start the engine "
                              "with VLLM_USE_V2_MODEL_RUNNER=0")
        engine = EngineSteering.from_additional_config(vllm_config.additional_config, model)
        assert engine is not None
        blocks = find_blocks(model).blocks
        weight = next(p for p in model.parameters() if p.is_floating_point())
        max_tokens = max(vllm_config.scheduler_config.max_num_batched_tokens,
                         *(vllm_config.compilation_config.cudagraph_capture_sizes or [0]))
        setattr(model, _ATTR, ModelSteering(engine, blocks, weight.device, max_tokens))
        _wrap_runner()
        return model
    return create_model


def _steering_of(runner: Any) -> ModelSteering | None:
    model = runner.get_model() if hasattr(runner, "model") else None
    return getattr(model, _ATTR, None)


def _plan(original: Callable[..., Any]) -> Callable[..., Any]:
    def _prepare_inputs(self: Any, scheduler_output: Any, num_scheduled_tokens: Any,
                        *args: Any, **kwargs: Any) -> Any:
        out = original(self, scheduler_output, num_scheduled_tokens, *args, **kwargs)
        steering = _steering_of(self)
        if steering is not None:
            batch = self.input_batch
            ids = batch.req_ids[:batch.num_reqs]
            states = [self.requests[r] for r in ids]
            steering.plan(
                [steering.steering_of(r, s.sampling_params.extra_args
                                      if s.sampling_params is not None else None)
                 for r, s in zip(ids, states, strict=True)],
                batch.num_computed_tokens_cpu[:batch.num_reqs],
                np.asarray(num_scheduled_tokens)[:batch.num_reqs],
                np.array([s.num_prompt_tokens for s in states]))
            self._l2v_hub_planned = True
        return out
    return _prepare_inputs


def _forward(original: Callable[..., Any]) -> Callable[..., Any]:
    def _model_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        steering = _steering_of(self)
        if steering is not None and not vars(self).pop("_l2v_hub_planned", False):
            steering.tokens.clear()  # a dummy or profiling run: nothing steered
        return original(self, *args, **kwargs)
    return _model_forward


def _wrap_runner() -> None:
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    _wrap(GPUModelRunner, "_prepare_inputs", _plan)
    _wrap(GPUModelRunner, "_model_forward", _forward)


def register() -> None:
    """vLLM's general-plugin entry point: wrap the methods above (idempotent, inert unless an
    engine is configured)."""
    from vllm.model_executor.model_loader.base_loader import BaseModelLoader
    from vllm.v1.engine.input_processor import InputProcessor

    _wrap(InputProcessor, "__init__", _front_end_init)
    _wrap(InputProcessor, "process_inputs", _admit)
    _wrap(BaseModelLoader, "create_model", _build)
