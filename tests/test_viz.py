"""course_lib.viz: grids, value ranges, headless saving, curves, animations."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless, as in CI and scripts

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from course_lib import viz  # noqa: E402


def _batch(n=6, channels=1, size=8, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_image_grid_shape_and_padding():
    grid = viz.image_grid(_batch(6), nrow=4, padding=2)
    assert grid.shape == (3, 2 * 8 + 3 * 2, 4 * 8 + 5 * 2)  # 2 rows x 4 columns of 8x8 tiles, 2 px white padding
    assert torch.equal(grid[:, 0], torch.ones_like(grid[:, 0]))  # the top padding is white
    assert torch.equal(grid[0, 2:10, 2:10], _batch(6)[0, 0])  # the first tile, unchanged, in every channel


def test_value_range_maps_minus_one_one_to_zero_one():
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 1, 2, 2)
    grid = viz.image_grid(x, value_range=(-1, 1))
    assert torch.allclose(grid[0], torch.tensor([[0.0, 0.5], [1.0, 1.0]]))  # (x + 1) / 2, clipped


def test_default_range_refuses_minus_one_one_data():
    with pytest.raises(ValueError, match=r"value_range=\(-1, 1\)"):
        viz.image_grid(_batch() * 2 - 1)


@pytest.mark.parametrize("images", [
    _batch(1, 3)[0],  # (3, H, W)
    _batch(1, 1)[0, 0],  # (H, W)
    [_batch(2, 1), _batch(1, 1)[0]],  # a list of a batch and an image
    _batch(3, 3),
])
def test_every_input_kind_gives_an_rgb_grid(images):
    grid = viz.image_grid(images)
    assert grid.shape[0] == 3 and 0 <= grid.min() and grid.max() <= 1


@pytest.mark.parametrize("bad, error, message", [
    (torch.rand(2, 4, 8, 8), ValueError, "C = 1 or 3"),
    ([torch.rand(1, 8, 8), torch.rand(1, 9, 9)], ValueError, "share a size"),
    ([], ValueError, "empty"),
    ("picture.png", TypeError, "load_image"),
])
def test_bad_inputs_raise_clear_errors(bad, error, message):
    with pytest.raises(error, match=message):
        viz.image_grid(bad)


def test_to_pil_and_save_image_round_trip(tmp_path):
    image = torch.linspace(0, 1, 3 * 4 * 5).view(3, 4, 5)
    pil = viz.to_pil(image)
    assert pil.size == (5, 4) and pil.mode == "RGB"
    path = viz.save_image(image, tmp_path / "sub" / "one.png")
    back = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255
    assert torch.allclose(back, image, atol=0.5 / 255 + 1e-6)  # exact up to 8-bit rounding, no padding
    assert Image.open(viz.save_image(_batch(6), tmp_path / "grid.png", nrow=3)).size == (3 * 8 + 4 * 2, 2 * 8 + 3 * 2)


def test_show_images_saves_headless_and_closes(tmp_path):
    before = plt.get_fignums()
    fig = viz.show_images(_batch(16), nrow=8, title="digits", save=tmp_path / "digits.png")
    assert (tmp_path / "digits.png").stat().st_size > 0 and fig.axes[0].get_title() == "digits"
    assert plt.get_fignums() == before  # Agg: our own figure is closed, nothing piles up


def test_show_images_draws_on_a_given_axis():
    fig, axes = plt.subplots(1, 2)
    assert viz.show_images(_batch(2), ax=axes[1]) is fig and len(axes[1].images) == 1
    assert plt.fignum_exists(fig.number)  # a figure the caller owns stays open
    plt.close(fig)


def test_show_side_by_side_labels_each_panel(tmp_path):
    fig = viz.show_side_by_side({"content": _batch(1, 3)[0], "samples": _batch(4) * 2 - 1}, value_range=(-1, 1),
                                save=tmp_path / "cmp.png")
    assert [ax.get_title() for ax in fig.axes] == ["content", "samples"] and (tmp_path / "cmp.png").exists()


def test_show_nearest_neighbours_pairs_each_sample_and_compares_the_distances(tmp_path):
    samples, neighbours = _batch(4) * 2 - 1, _batch(4, seed=1)  # samples in [-1, 1], training digits in [0, 1]
    distance, baseline = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0]), torch.linspace(1.0, 4.0, 9)
    fig = viz.show_nearest_neighbours(samples, neighbours, distance, baseline, save=tmp_path / "nn.png")
    top, bottom, histogram = fig.axes
    assert (top.get_title(), bottom.get_title()) == ("samples", "nearest training digit")
    assert [t.get_text() for t in bottom.texts] == ["0", "0.5", "1", "2"]  # one distance under each of the 4 pairs
    assert [t.get_text() for t in histogram.get_legend().get_texts()] == ["real test digits (9)", "samples (5)"]
    assert sum(p.get_height() * p.get_width() for p in histogram.patches[30:]) == pytest.approx(1.0)  # a density
    assert (tmp_path / "nn.png").exists() and len(viz.show_nearest_neighbours(samples, neighbours, distance).axes) == 2
    with pytest.raises(ValueError, match="one neighbour and one distance per sample"):
        viz.show_nearest_neighbours(samples, neighbours[:3], distance)


def test_plot_curves_values_pairs_and_smoothing(tmp_path):
    fig = viz.plot_curves({"loss_d": [1.0, 0.5, 0.25], "fid": [(0, 80.0), (10, 40.0)]}, smooth=0.5, logy=True,
                          save=tmp_path / "curves.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()] == ["loss_d", "fid"]
    assert list(ax.lines[2].get_xdata()) == [0, 10]  # (x, value) pairs keep their x
    assert ax.lines[1].get_ydata()[0] == pytest.approx(1.0)  # bias-corrected EMA starts at the first value
    with pytest.raises(ValueError, match="smooth"):
        viz.plot_curves({"a": [1.0]}, smooth=1.0)


def test_plot_gan_curves_two_panels_with_undecided_guides(tmp_path):
    history = {"step": [1, 10, 20], "loss_d": [1.4, 1.0, 0.8], "loss_g": [0.7, 1.2, 1.5],
               "d_real": [0.5, 0.7, 0.8], "d_fake": [0.5, 0.3, 0.2]}
    fig = viz.plot_gan_curves(history, smooth=0.5, title="run", save=tmp_path / "gan.png")
    losses, beliefs = fig.axes
    assert [t.get_text() for t in losses.get_legend().get_texts()] == ["loss D", "loss G"]
    assert [t.get_text() for t in beliefs.get_legend().get_texts()] == ["D(x)", "D(G(z))"]
    guides = [line.get_ydata()[0] for line in losses.lines if line.get_linestyle() == ":"]
    assert guides == pytest.approx([2 * np.log(2), np.log(2)])  # an undecided D: 2 log 2 and log 2
    assert list(losses.lines[0].get_xdata()) == [1, 10, 20] and (tmp_path / "gan.png").exists()
    _, axes = plt.subplots(1, 2)
    assert viz.plot_gan_curves(history, axes=axes) is axes[0].figure  # draws on given axes
    with pytest.raises(ValueError, match="d_fake"):
        viz.plot_gan_curves({k: v for k, v in history.items() if k != "d_fake"})
    plt.close("all")


def test_animate_grids_makes_html_and_gif(tmp_path):
    anim = viz.animate_grids([_batch(4, seed=s) for s in range(3)], titles=["0", "1", "2"],
                             save=tmp_path / "train.gif")
    assert "<script" in anim.to_jshtml()
    assert Image.open(tmp_path / "train.gif").n_frames == 3
    with pytest.raises(ValueError, match="titles"):
        viz.animate_grids([_batch(4)], titles=["a", "b"])


def test_interact_figure_draws_the_initial_values_and_redraws_on_change():
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    calls = []

    def draw(t, name):
        calls.append((t, name))
        fig, ax = plt.subplots()
        ax.set_title(f"{name} {t}")
        return fig

    slider = widgets.IntSlider(value=3, min=0, max=9)
    first = viz.interact_figure(draw, t=slider, name=widgets.Dropdown(options=["a", "b"], value="b"))
    assert calls == [(3, "b")] and first.axes[0].get_title() == "b 3"
    slider.value = 5
    assert calls[-1] == (5, "b")
    with pytest.raises(ValueError, match="control"):
        viz.interact_figure(draw)


@pytest.mark.parametrize("n, nrow, padding", [(6, 4, 2), (1, 8, 2), (7, 3, 0), (10, 10, 1)])
def test_image_grid_matches_torchvision_make_grid(n, nrow, padding):
    from torchvision.utils import make_grid

    x = torch.rand(n, 3, 5, 6, generator=torch.Generator().manual_seed(n))
    expected = make_grid(x, nrow=min(nrow, n), padding=padding, pad_value=1.0)
    assert torch.equal(viz.image_grid(x, nrow=nrow, padding=padding), expected)
