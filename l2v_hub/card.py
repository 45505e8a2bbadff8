"""The model card (``README.md``) of a pack: Hub front matter plus usage and provenance."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pack import Pack

__all__ = ["CARD_TAGS", "calibration_lines", "read_phrase", "render_card"]

# What people search steering vectors by, beside the library's own names.
CARD_TAGS = ("l2v-hub", "l2v-cot", "steering-vector", "activation-steering", "chain-of-thought")
_READ_PHRASES = {"last": "the last token", "response_mean": "the mean over the response tokens",
                 "response_first": "the first response token"}


def read_phrase(read: str) -> str:
    """Where a pack's directions (``method.token``) or a calibration's pairs were read, in words."""
    return f"{_READ_PHRASES.get(read, f'the {read} token')} (`{read}`)"


def _yaml_str(value: str) -> str:
    # A JSON string is a valid YAML scalar and needs no further escaping.
    return json.dumps(value, ensure_ascii=False)


def _f(value: float | None, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def calibration_lines(pack: Pack) -> list[str]:
    """The calibration as a markdown table (what ``inspect`` prints and the card shows), or the
    statement that the pack is not calibrated."""
    c = pack.calibration
    if c is None and pack.scale is not None and pack.scale.measure == "imported":
        return ["**Not calibrated.** Imported control vector: s_i are the norms of the imported "
                "vectors (stored), so strength 1 adds each vector as it was made; nothing was "
                "measured for fluency on a target model. Run `l2v-hub calibrate` on the target."]
    if c is None and pack.scale is None:
        return ["**Not calibrated, format v1.** `l2v_hub.patch` refuses a v1 pack (its push is "
                "relative to each token's norm, with no s_i), so it is never applied as it is. "
                "`l2v-hub calibrate PACK --model TARGET --out NEW_FOLDER` converts it to format v2 "
                "and calibrates it on the target."]
    if c is None:
        return [f"**Not calibrated.** No strength was measured on a target model; s_i "
                f"({pack.scale.measure}) is measured on the model at patch time, and the default "
                "strength is the builder's, not checked for fluency. Run `l2v-hub calibrate` on "
                "the target."]
    rows = [("unpatched", 0.0, c.baseline), (f"pack ({c.positions})", c.strength, c.pack),
            (f"random control (seed {c.control_seed})", c.strength, c.control)]
    lines = [
        f"Calibrated on `{c.model_id}`" + (f" @ `{c.revision}`" if c.revision else "")
        + f" ({c.dtype}, {c.device}) with l2v-hub {c.l2v_hub_version}, {c.created}.",
        f"s_i: {c.scale_measure}. Default strength **{c.strength:g}**, positions "
        f"`{c.positions}` (criterion: {c.criterion}): {c.reason}.",
        "",
        "| row | strength | perplexity | accuracy | step-by-step | answer tokens |",
        "|---|---|---|---|---|---|",
        *(f"| {name} | {lam:g} | {_f(m.perplexity, '.4g')} | {_f(m.accuracy, '.2f')} | "
          f"{_f(m.step_by_step, '.2f')} | {_f(m.answer_tokens, '.1f')} |" for name, lam, m in rows),
        "",
        f"{c.problems['count']} problems ({c.problems['source']}, sha256 "
        f"`{c.problems['sha256'][:12]}…`); neutral text sha256 `{c.text_sha256[:12]}…`; "
        f"s_i from {c.pairs['count']} pairs ({c.pairs['source']}), read at "
        f"{read_phrase(c.pairs.get('read', 'last'))}. Cosine with the target's own "
        "CoT direction: " + ", ".join(f"block {b}: {v:+.3f}" for b, v in c.cosine_own.items()) + ".",
        "",
        "Sweep (neutral-text perplexity): " + "; ".join(
            f"{p.positions} {p.strength:g} → {p.perplexity:.4g}" for p in c.grid) + ".",
    ]
    b = c.behaviour
    if b is not None:
        g = b.guard
        lines += [
            "",
            ("Chosen by behaviour" if c.criterion == "behaviour" else
             "Behaviour measured (no strength moved it; chosen by perplexity)" if g is None else
             "Behaviour measured (the accuracy guard refused its strength; chosen by perplexity)")
            + f": the share of {b.tokens}-token answers ({b.regime} prompt) that "
            f"open with reasoning ({b.measure}) and stay readable (the unpatched model's "
            f"perplexity of the answer at most {b.readable_ppl:g}); unpatched: {b.unpatched:.2f} "
            f"(readable {b.unpatched_readable:.2f})"
            + ("." if b.alpha is None else f"; a rise counts at p < {b.alpha:g} (McNemar, exact)."),
            "",
            "| strength | positions | pack | random control | p | readable (pack) |",
            "|---|---|---|---|---|---|",
            *(f"| {p.strength:g} | {p.positions} | {p.reasons:.2f} | {p.control_reasons:.2f} | "
              f"{_f(p.p, '.2g')} | {p.readable:.2f} |" for p in b.points),
        ]
        if g is not None:
            lines += [
                "",
                f"Accuracy guard ({g.regime} prompt, {g.tokens} new tokens, the "
                f"{c.problems['count']} calibration problems) at strength {g.strength:g}, "
                f"`{g.positions}`: accuracy {g.pack_accuracy:.2f} against {g.unpatched_accuracy:.2f} "
                f"unpatched (truncated {g.pack_truncated:.2f} / {g.unpatched_truncated:.2f}); "
                f"allowed fall {g.margin:.2f}: **{'passed' if g.passed else 'refused'}**.",
            ]
    return lines


def render_card(pack: Pack) -> str:
    """Render the card from the pack's metadata; the Hub lists the pack under ``base_model``."""
    s, t, m, h, d = pack.source, pack.target, pack.method, pack.hook, pack.defaults
    tags = [*CARD_TAGS, f"source:{s.model_id}", f"target-type:{t.model_type}"]
    front = "\n".join(
        [
            "---",
            "library_name: l2v-hub",
            "tags:",
            *(f"- {_yaml_str(tag)}" for tag in tags),
            f"base_model: {_yaml_str(t.model_id)}",
            "base_model_relation: adapter",
            "---",
        ]
    )
    rows = [
        ("Pack", f"`{pack.name}` v{pack.version}"),
        ("Target model", f"`{t.model_id}`" + (f" @ `{t.revision}`" if t.revision else "")),
        ("Target text decoder", f"{t.model_type}, hidden {t.hidden_size}, {t.num_layers} blocks"),
        ("Source LLM", f"`{s.model_id}`" + (f" @ `{s.revision}`" if s.revision else "")),
        ("Source text decoder", f"{s.model_type}, hidden {s.hidden_size}, {s.num_layers} blocks"),
        ("Extraction", f"{m.extraction} at {read_phrase(m.token)}"),
        ("Contrastive pairs", f"{m.pairs.count} from `{m.pairs.source}` (sha256 `{m.pairs.sha256[:12]}…`)"),
        ("Low-pass", "none" if m.lowpass_keep is None else f"{m.lowpass_keep} lowest frequency bins"),
        ("Resampling / layer map", f"{m.resample} / {m.layer_map}"),
        ("Hook", f"{h.op} on `{h.site}`, positions `{h.positions}`"),
        ("Push", "λ · s_i · v_i, s_i: " + (
            "none (format v1: relative to each token's norm; not applied)" if pack.scale is None
            else f"{pack.scale.measure}, " + (
                "measured at patch time" if pack.scale.values is None
                else "stored (imported)" if pack.scale.measure == "imported" else "stored (calibrated)"))),
        ("Default strength / layers", f"{d.strength:g} / {list(d.layers)}"),
        ("Created", f"{pack.created} with l2v-hub {pack.l2v_hub_version}"),
    ]
    table = "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    calibration = "\n".join(calibration_lines(pack))
    intro = (f"Chain-of-thought steering directions for `{t.model_id}`, transferred from the text LLM\n"
             f"`{s.model_id}` with the L2V-CoT method (low-pass filtered, Fourier-resampled from hidden size\n"
             f"{s.hidden_size} to {t.hidden_size}).")
    if m.extraction == "imported":
        intro = (f"A steering vector for `{t.model_id}`, imported from `{m.pairs.source}` (a llama.cpp /\n"
                 "repeng control vector; l2v-hub docs/interop.md), applied as llama.cpp applies it: added\n"
                 "at every position.")
    return f"""{front}

# {pack.name}

{intro} Applying the pack adds the direction to the residual stream of
the model's text decoder at inference; no weights change.

## Usage

```python
import l2v_hub

patch = l2v_hub.patch(model)          # finds this pack by the model's id
patch.strength = {d.strength:g}                # change at runtime; patch.remove() undoes it
```

## Calibration

{calibration}

## Provenance

{table}
"""
