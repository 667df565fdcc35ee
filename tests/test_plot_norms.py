"""The normalization cube: the PNG is written, every panel is labelled, and the shaded cells are the
values each norm's statistics are computed over."""

import matplotlib
import numpy as np
import pytest
import torch

import lamina
from lamina import cli, layers
from lamina.plots.norm_cube import statistic_weights

matplotlib.use("Agg")


def test_cli_writes_the_cube_png(tmp_path):
    out = tmp_path / "norms.png"
    assert cli.main(["plot", "norms", "-o", str(out), "--dpi", "40"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_every_panel_is_labelled():
    figure = lamina.plots.norms()
    titles = [ax.get_title() for ax in figure.axes]
    assert [t.split("(")[1][:2] for t in titles] == ["BN", "LN", "IN", "GN", "SN"]
    for ax in figure.axes:
        assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("N (batch)", "C (channels)", "H, W")
        assert [t.get_text() for t in ax.texts]  # the caption saying what the statistics span
    assert "IN 0.33, LN 0.33, BN 0.33" in titles[-1]


def test_shaded_cells_are_each_norms_statistics():
    shape = (4, 6, 3)
    bn, ln, inst, gn = (statistic_weights(k, *shape, groups=2) for k in ("BN", "LN", "IN", "GN"))
    assert (bn[:, 0] == 1).all() and bn.sum() == 4 * 3          # one channel, every sample and position
    assert (ln[0] == 1).all() and ln.sum() == 6 * 3             # one sample, every channel and position
    assert (inst[0, 0] == 1).all() and inst.sum() == 3          # one sample's channel
    assert (gn[0, :3] == 1).all() and gn.sum() == 3 * 3         # one sample's group of 3 channels
    sn = statistic_weights("SN", *shape, mix={"instance": 0.5, "layer": 0.3, "batch": 0.2})
    np.testing.assert_allclose(sn[0, 0], 1.0)                   # in all three statistics
    np.testing.assert_allclose(sn[0, 1:], 0.3)                  # rest of its sample: layer only
    np.testing.assert_allclose(sn[1:, 0], 0.2)                  # its channel elsewhere: batch only
    assert sn[1:, 1:].sum() == 0


def test_switchable_panel_draws_a_layers_learned_mixture():
    layer = layers.SwitchableNormalization()
    layer(torch.zeros(2, 3))
    with torch.no_grad():
        layer.mean_weights.copy_(torch.tensor([np.log(2.0), 0.0, np.log(1.0)]))
    title = lamina.plots.norms(mix=layer).axes[-1].get_title()
    assert "IN 0.50, LN 0.25, BN 0.25" in title


def test_bad_arguments():
    with pytest.raises(ValueError, match="`groups` must divide `channels`"):
        lamina.plots.norms(channels=6, groups=4)
    with pytest.raises(ValueError, match="unknown kind 'XN'"):
        statistic_weights("XN", 2, 2, 2)
