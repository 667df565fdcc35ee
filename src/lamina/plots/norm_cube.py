"""The normalization cube: which values share one mean and variance in BN, LN, IN, GN and SN.

Each panel is a feature-map tensor drawn as a cube of cells, batch N along one edge, channels C
along another and the spatial positions (H, W) flattened along the third, as in Wu & He's Group
Normalization figure. The cells shaded together are the values one statistic is computed over
for the marked element: BatchNorm takes one channel across the whole batch, LayerNorm one whole
sample, InstanceNorm one channel of one sample, GroupNorm a group of channels of one sample.
SwitchableNormalization mixes the three: a cell's shade is the total mixture weight of the
branches whose statistics include it (the marked cell is in all three; the rest of its sample is
in the layer statistics; its channel in the other samples is in the batch statistics).

    lamina plot norms -o norms.png
"""

from __future__ import annotations

import numpy as np

_KINDS = ("BN", "LN", "IN", "GN", "SN")
_NAMES = {
    "BN": "Batch Norm", "LN": "Layer Norm", "IN": "Instance Norm", "GN": "Group Norm",
    "SN": "Switchable Norm",
}
_CAPTIONS = {
    "BN": "per channel, over N, H, W", "LN": "per sample, over C, H, W",
    "IN": "per sample and channel, over H, W", "GN": "per sample and channel group, over C/G, H, W",
    "SN": "softmax mix of IN, LN and BN statistics",
}
_BRANCHES = (("instance", "IN"), ("layer", "LN"), ("batch", "BN"))
_EQUAL_MIX = {"instance": 1 / 3, "layer": 1 / 3, "batch": 1 / 3}


def statistic_weights(kind: str, batch: int, channels: int, spatial: int, groups: int = 2, mix=None):
    """(batch, channels, spatial) weights in [0, 1]: how much each value counts in the statistics
    of the element (0, 0, ·) for norm `kind`. For "SN", `mix` maps "instance", "layer" and
    "batch" to the mixture weights (equal by default)."""
    n, c = np.meshgrid(np.arange(batch), np.arange(channels), indexing="ij")
    same_sample, same_channel = n == 0, c == 0
    same_group = same_sample & (c // (channels // groups) == 0)
    if kind == "SN":
        mix = _EQUAL_MIX if mix is None else mix
        plane = (mix["instance"] * (same_sample & same_channel) + mix["layer"] * same_sample
                 + mix.get("batch", 0.0) * same_channel)
    else:
        planes = {"BN": same_channel, "LN": same_sample, "IN": same_sample & same_channel, "GN": same_group}
        if kind not in planes:
            raise ValueError(f"norms: unknown kind {kind!r}; expected one of {', '.join(_KINDS)}.")
        plane = planes[kind]
    return np.repeat(plane.astype(float)[:, :, None], spatial, axis=2)


def _draw(ax, weights, title, caption, color):
    batch, channels, spatial = weights.shape
    filled = np.ones(weights.shape, dtype=bool)
    colors = np.empty(weights.shape + (4,))
    colors[...] = (0.93, 0.93, 0.93, 0.25)  # values outside the statistics: pale, see-through
    shaded = weights > 0
    colors[shaded] = [(*color, 0.25 + 0.7 * w) for w in weights[shaded]]
    ax.voxels(filled, facecolors=colors, edgecolor=(0.35, 0.35, 0.35, 0.35), linewidth=0.4)
    ax.set_title(title, fontsize=10)
    ax.text2D(0.5, -0.02, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8.5)
    ax.set_xlabel("N (batch)", fontsize=8, labelpad=-8)
    ax.set_ylabel("C (channels)", fontsize=8, labelpad=-8)
    ax.set_zlabel("H, W", fontsize=8, labelpad=-12)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_zticks([])
    ax.set_box_aspect((batch, channels, spatial))
    ax.view_init(elev=22, azim=-58)


def norms(batch: int = 6, channels: int = 6, spatial: int = 4, groups: int = 2, mix=None):
    """The cube diagram of BN, LN, IN, GN and SN as a matplotlib Figure.

    Args:
        batch, channels, spatial: the size of the drawn tensor (N, C and flattened H·W).
        groups: GroupNorm's number of channel groups (dividing `channels`).
        mix: SwitchableNormalization's mixture to draw: a dict {"instance", "layer", "batch"}
            of weights, or a built SwitchableNormalization layer (its learned mean mixture).
            Equal thirds, the initial mixture, by default.

    Example:
        >>> figure = norms()
        >>> figure.savefig("norms.png")
    """
    import matplotlib.pyplot as plt

    if channels % groups:
        raise ValueError(
            f"norms: `groups` must divide `channels`. Received: groups={groups}, channels={channels}"
        )
    if hasattr(mix, "mixture"):
        mix = mix.mixture()["mean"]
    mix = _EQUAL_MIX if mix is None else mix
    figure = plt.figure(figsize=(3.6 * len(_KINDS), 4.2))
    colors = {"BN": (0.12, 0.42, 0.80), "LN": (0.12, 0.42, 0.80), "IN": (0.12, 0.42, 0.80),
              "GN": (0.12, 0.42, 0.80), "SN": (0.80, 0.30, 0.10)}
    for i, kind in enumerate(_KINDS):
        ax = figure.add_subplot(1, len(_KINDS), i + 1, projection="3d")
        title = f"{_NAMES[kind]} ({kind})"
        if kind == "GN":
            title += f", {groups} groups"
        if kind == "SN":
            title += "\n" + ", ".join(f"{short} {mix.get(branch, 0.0):.2f}" for branch, short in _BRANCHES)
        _draw(ax, statistic_weights(kind, batch, channels, spatial, groups, mix), title, _CAPTIONS[kind],
              colors[kind])
    figure.suptitle("Which values share one mean and variance (shaded), for the element at the corner",
                    fontsize=11)
    figure.subplots_adjust(left=0.01, right=0.97, wspace=0.12, top=0.82, bottom=0.08)
    return figure
