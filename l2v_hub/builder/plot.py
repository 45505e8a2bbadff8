"""The figure of a pack's diagnostics (``l2v-hub inspect PACK --plot out.png``, ``l2v-hub build
--plot out.png``).

Panels: per-source-block separation and mean-difference norm; the spectrum of the source direction
with the low-pass cutoff; the 2-D PCA of CoT vs direct states at the default layer (the paper's
Figure 1a), when the pack's stats carry them. matplotlib is the optional extra ``plot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BuildError
from ..pack import Pack

__all__ = ["plot_pack", "require_matplotlib"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise BuildError(
            "--plot needs matplotlib, which is not installed: pip install 'l2v-hub[plot]'"
        ) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def require_matplotlib() -> None:
    """Raise ``BuildError`` (how to install it) when matplotlib is missing: a command that will
    plot checks this before any work."""
    _pyplot()


def plot_pack(pack: Pack, out: str | Path) -> Path:
    """Draw the pack's diagnostics to an image file (format from the suffix, e.g. ``.png``)."""
    stats = pack.stats or {}
    layers = stats.get("layers")
    if not isinstance(layers, list) or not layers:
        raise BuildError(f"pack {pack.name} has no per-block diagnostics in stats.json to plot")
    plt = _pyplot()
    projection = stats.get("projection")
    panels = 3 if projection else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), constrained_layout=True)
    blocks = [row["block"] for row in layers]

    ax = axes[0]
    separation = [row.get("separation") for row in layers]
    if any(s is not None for s in separation):
        ax.plot(blocks, [float("nan") if s is None else s for s in separation], "o-", color="C0")
    ax.set(xlabel="source block", ylabel="separation", ylim=(0, 1.05),
           title=f"{pack.source.model_id}: per-block diagnostics")
    for block in stats.get("default_source_blocks", []):
        ax.axvline(block, color="0.7", linestyle=":")
    twin = ax.twinx()
    twin.plot(blocks, [row["norm"] for row in layers], "s--", color="C1", markersize=3)
    twin.set_ylabel("norm of mean difference", color="C1")

    ax = axes[1]
    spectrum = stats.get("spectrum") or {}
    power = spectrum.get("power") or []
    ax.semilogy(range(len(power)), [max(p, 1e-12) for p in power], color="C2", linewidth=1)
    keep = pack.method.lowpass_keep
    if keep is not None:
        ax.axvline(keep - 0.5, color="C3", label=f"cutoff: {keep} bins kept")
        ax.legend(loc="upper right")
    ax.set(xlabel="frequency bin (along the hidden dimension)", ylabel="share of power",
           title=f"spectrum of the direction, source block {spectrum.get('block', '?')}")

    if projection:
        ax = axes[2]
        for key, colour, label in (("cot", "C0", "CoT"), ("direct", "C1", "direct")):
            points = projection.get(key) or []
            ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, c=colour,
                       alpha=0.7, label=label)
        share = projection.get("explained_variance", [0, 0])
        ax.set(xlabel=f"PC1 ({share[0]:.0%})", ylabel=f"PC2 ({share[1]:.0%})",
               title=f"states at source block {projection.get('block')}")
        ax.legend()
    path = Path(out)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
