"""l2v_hub.vllm.steering without an engine: the host-side plan against the loader's
``positions.select`` and ``steer`` ops, and the layer hook on (hidden, residual) pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_vllm_config import Qwen2ForCausalLM
from vllm_fixtures import HIDDEN, LAYERS, MODEL_ID, make_pack

from l2v_hub.loader.positions import select
from l2v_hub.loader.steer import add, norm_preserving_add
from l2v_hub.vllm.config import EngineSteering, RequestSteering
from l2v_hub.vllm.steering import ModelSteering


class Layer(torch.nn.Module):
    """Returns (hidden, residual) as vLLM's decoder layers do."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(HIDDEN))

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor):
        return hidden * self.weight, residual


@pytest.fixture
def steering(tmp_path) -> ModelSteering:
    a = make_pack(tmp_path / "a", name="pack-a", op="norm_preserving_add", positions="all",
                  seed=1, scale=4.0, strength=0.8, layers=(1,))
    b = make_pack(tmp_path / "b", name="pack-b", op="add", positions="generated", seed=2,
                  scale=3.0, strength=0.6, layers=(1, 2))
    engine = EngineSteering.from_additional_config(
        {"l2v_hub": {"packs": [str(a), str(b)], "model_id": MODEL_ID}}, Qwen2ForCausalLM())
    assert engine is not None
    return ModelSteering(engine, [Layer() for _ in range(LAYERS)], torch.device("cpu"), 64)


def test_plan_follows_select_per_request(steering: ModelSteering) -> None:
    requests = [RequestSteering(0, 0.8, "prompt_last"), None, RequestSteering(1, 1.5, "generated"),
                RequestSteering(1, 0.2, "first_and_generated")]
    computed, scheduled, prompts = np.array([3, 0, 9, 0]), np.array([4, 2, 1, 5]), np.array([5, 2, 9, 3])
    steering.plan(requests, computed, scheduled, prompts)
    t = steering.tokens
    n = int(scheduled.sum())
    row = 0
    for r, s in enumerate(requests):
        pos = torch.arange(computed[r], computed[r] + scheduled[r])
        want = (torch.zeros(len(pos), dtype=torch.bool) if s is None
                else select(s.positions, pos, int(prompts[r])))
        assert t.steer[row:row + len(pos)].equal(want)
        assert (t.pack[row:row + len(pos)] == (0 if s is None else s.pack + 1)).all()
        row += len(pos)
    assert not t.steer[n:].any() and (t.pack[n:] == 0).all()  # padding tokens: unsteered
    assert t.npa[:4].all() and not t.npa[6:n].any()


def test_hook_steers_the_sum_and_leaves_the_rest_bit_for_bit(steering: ModelSteering) -> None:
    hook = steering.hooks[0]  # layer 1: packs a (norm_preserving_add) and b (add)
    assert hook.layer == 1
    g = torch.Generator().manual_seed(0)
    hidden, residual = torch.randn(5, HIDDEN, generator=g), torch.randn(5, HIDDEN, generator=g)
    steering.plan([RequestSteering(0, 0.8, "all"), None, RequestSteering(1, 1.5, "all")],
                  np.array([0, 0, 0]), np.array([2, 2, 1]), np.array([2, 2, 1]))
    out_h, out_r = hook(Layer(), (), (hidden, residual))
    total = hidden + residual
    a = steering.engine.packs[0]
    b = steering.engine.packs[1]
    want_a = norm_preserving_add(total[:2], (a.pack.directions[1] * a.scales[1]) * 0.8)
    want_b = add(total[4:], (b.pack.directions[1] * b.scales[1]) * 1.5)
    torch.testing.assert_close(out_h[:2] + out_r[:2], want_a, rtol=0, atol=1e-6)
    torch.testing.assert_close(out_h[4:] + out_r[4:], want_b, rtol=0, atol=1e-6)
    assert out_h[2:4].equal(hidden[2:4]) and out_r[2:4].equal(residual[2:4])
    assert (out_r[:2] == 0).all()  # the next layer's fused add rebuilds h' exactly


def test_a_layer_of_no_pack_has_no_hook(steering: ModelSteering) -> None:
    assert [h.layer for h in steering.hooks] == [1, 2]
