"""Pictures for the notebooks: image grids, side-by-side comparisons, training curves, animations.

Plotting only: no algorithm lives here. Everything works in a notebook (figures display inline) and headless
(`save=` writes a file; with the non-interactive Agg backend the figure is closed after saving so scripts
do not pile up open figures).

Images are tensors: a batch (N, C, H, W), one image (C, H, W) or (H, W), or a list of those, with C = 1 or 3.
`value_range` says what the values mean: (0, 1) for photos (the default), (-1, 1) for GAN and diffusion
samples. With the default, values clearly below 0 raise an error that says to pass value_range=(-1, 1);
with an explicit range, values outside it are clipped for display.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["image_grid", "to_pil", "save_image", "show_images", "show_side_by_side", "show_nearest_neighbours",
           "plot_curves", "plot_gan_curves", "animate_grids", "interact_figure"]

def _as_batch(images, value_range: tuple[float, float] | None) -> torch.Tensor:
    """Any accepted image input -> (N, 3, H, W) float on the CPU in [0, 1]."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images to show: the list is empty")
        batches = [_as_batch(image, value_range) for image in images]
        sizes = {tuple(b.shape[-2:]) for b in batches}
        if len(sizes) > 1:
            raise ValueError(f"images in one grid must share a size, got {sorted(sizes)}: resize them first "
                             f"(e.g. images.load_image(x, size=...)) or use show_side_by_side")
        return torch.cat(batches)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a tensor or a list of tensors, got {type(images).__name__} "
                        f"(for a PIL image or numpy array use images.load_image first)")
    x = images.detach().float().cpu()
    x = {2: lambda: x[None, None], 3: lambda: x[None], 4: lambda: x}.get(x.ndim, lambda: None)()
    if x is None or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, C, H, W), (C, H, W) or (H, W) with C = 1 or 3, "
                         f"got shape {tuple(images.shape)}")
    return _to_unit(x, value_range).expand(-1, 3, -1, -1)


def _to_unit(x: torch.Tensor, value_range: tuple[float, float] | None) -> torch.Tensor:
    """Map value_range to [0, 1] and clip; with value_range=None the data must already be in [0, 1]."""
    if value_range is None:
        low = x.min().item() if x.numel() else 0.0
        if low < -0.02:
            raise ValueError(f"image values go down to {low:.3g}: pass value_range=(-1, 1) for GAN/diffusion "
                             f"samples in [-1, 1], or (low, high) to map any other range to black..white")
        value_range = (0.0, 1.0)
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return ((x - low) / (high - low)).clamp(0.0, 1.0)


def image_grid(images, *, nrow: int = 8, padding: int = 2, pad_value: float = 1.0,
               value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Tile images into one (3, H', W') tensor in [0, 1], `nrow` images per row, white padding (the layout of
    torchvision's make_grid, without importing torchvision: about 1 s at the start of every command)."""
    batch = _as_batch(images, value_range)  # (N, 3, H, W)
    n, channels, height, width = batch.shape
    if n == 1:
        return batch[0]
    columns = max(1, min(nrow, n))
    rows = -(-n // columns)  # ceil
    step_y, step_x = height + padding, width + padding
    grid = torch.full((channels, rows * step_y + padding, columns * step_x + padding), float(pad_value))
    for k in range(n):
        y, x = divmod(k, columns)
        grid[:, y * step_y + padding:y * step_y + padding + height, x * step_x + padding:x * step_x + padding + width] = batch[k]
    return grid


def to_pil(image, *, value_range: tuple[float, float] | None = None):
    """One image (C, H, W) / (1, C, H, W) / (H, W), or a batch (tiled with image_grid), as a PIL RGB image."""
    from PIL import Image
    batch = _as_batch(image, value_range)
    grid = batch[0] if batch.shape[0] == 1 else image_grid(batch, value_range=(0.0, 1.0))
    array = (grid.permute(1, 2, 0) * 255.0).round().to(torch.uint8).numpy()  # (H, W, 3) uint8
    return Image.fromarray(array)


def save_image(images, path: str | os.PathLike, *, nrow: int = 8,
               value_range: tuple[float, float] | None = None) -> Path:
    """Write images (a grid when there are several) to `path` (.png, .jpg, ...); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images, nrow=nrow, value_range=value_range)
    to_pil(grid).save(path)
    return path


def _finish(fig, save: str | os.PathLike | None, *, owned: bool = True):
    """Save if asked; close a figure we created when nothing can display it (headless Agg); return it."""
    import matplotlib
    import matplotlib.pyplot as plt
    if save is not None:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save, bbox_inches="tight")
    if owned and matplotlib.get_backend().lower() == "agg":
        plt.close(fig)  # a closed figure can still be saved; it just no longer accumulates in pyplot
    return fig


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=figsize)


def show_images(images, *, nrow: int = 8, title: str | None = None, ax=None, save: str | os.PathLike | None = None,
                value_range: tuple[float, float] | None = None, size: float = 1.0):
    """Show images as a grid, `nrow` per row, on `ax` or a new figure (`size` inches per image, 4 to 12
    inches wide). Returns the figure."""
    batch = _as_batch(images, value_range)
    grid = image_grid(batch, nrow=nrow, value_range=(0.0, 1.0))  # (3, H', W') in [0, 1]
    height, width = grid.shape[1:]
    fig_width = min(12.0, max(4.0, size * min(nrow, batch.shape[0])))
    owned = ax is None
    fig, ax = _new_axes(ax, (fig_width, fig_width * height / width))
    small = max(height, width) < 512  # tiny digits look right with crisp pixels
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest" if small else "antialiased")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return _finish(fig, save, owned=owned)


def show_side_by_side(images: dict, *, title: str | None = None, nrow: int = 8, size: float = 3.0,
                      value_range: tuple[float, float] | None = None, save: str | os.PathLike | None = None):
    """One labelled panel per entry of `images` ({"content": x, "style": y, "result": z}); each entry is an
    image or a batch (shown as a grid). Returns the figure."""
    import matplotlib.pyplot as plt
    if not images:
        raise ValueError("show_side_by_side needs at least one {label: image} entry")
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for ax, (label, image) in zip(axes[0], images.items()):
        grid = image_grid(image, nrow=nrow, value_range=value_range)
        ax.imshow(grid.permute(1, 2, 0).numpy())
        ax.set_title(str(label))
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, save)


def show_nearest_neighbours(samples, neighbours, distance, baseline=None, *, sample_range=(-1.0, 1.0),
                            train_range=(0.0, 1.0), size: float = 0.8, title: str | None = None,
                            save: str | os.PathLike | None = None):
    """Are the samples copies? Top: the samples (K, 1, H, W); below each, its nearest training digit
    (K, 1, H', W') and their distance. Right, when `baseline` is given: histograms of the samples' distances
    (N,) next to the baseline's (M,) (held-out real digits to their nearest training digit), e.g. from
    `metrics.memorisation_check`. `distance` may hold more than K values: the histogram uses them all."""
    import matplotlib.pyplot as plt
    k, distance = len(samples), torch.as_tensor(distance).detach().double().cpu()
    if len(neighbours) != k or len(distance) < k:
        raise ValueError(f"need one neighbour and one distance per sample: {k} samples, {len(neighbours)} "
                         f"neighbours, {len(distance)} distances")
    columns = [size * k, 4.5] if baseline is not None else [size * k]
    fig = plt.figure(figsize=(sum(columns), max(2.6, 2.4 * size + 0.8)))
    grid = fig.add_gridspec(2, len(columns), width_ratios=columns)
    for row, (images, value_range, label) in enumerate(((samples, sample_range, "samples"),
                                                        (neighbours, train_range, "nearest training digit"))):
        ax = fig.add_subplot(grid[row, 0])
        show_images(images, nrow=k, value_range=value_range, ax=ax, title=label)
    height, width = _as_batch(neighbours, train_range).shape[-2:]
    for column, d in enumerate(distance[:k].tolist()):  # the distance under each pair, at the column's centre
        ax.text(2 + column * (width + 2) + width / 2, height + 4, f"{d:.2g}", ha="center", va="top", fontsize=7)
    if baseline is not None:
        _distance_histograms(fig.add_subplot(grid[:, 1]), distance, torch.as_tensor(baseline).double().cpu())
    if title:
        fig.suptitle(title)
    return _finish(fig, save)


def _distance_histograms(ax, distance: torch.Tensor, baseline: torch.Tensor) -> None:
    """Samples' and real test digits' distances to their nearest training digit, on shared bins."""
    top = max(distance.max().item(), baseline.max().item(), 1e-6)
    bins = torch.linspace(0, top, 31).tolist()
    ax.hist(baseline.tolist(), bins=bins, density=True, alpha=0.6, label=f"real test digits ({len(baseline)})")
    ax.hist(distance.tolist(), bins=bins, density=True, alpha=0.6, label=f"samples ({len(distance)})")
    ax.set_xlabel("distance to the nearest training digit")
    ax.set_yticks([])
    ax.legend(fontsize=8)


def plot_curves(history: dict, *, title: str | None = None, xlabel: str = "step", ylabel: str = "loss",
                logy: bool = False, smooth: float = 0.0, ax=None, save: str | os.PathLike | None = None):
    """One line per entry of `history` ({"loss_d": [...], "loss_g": [...]}): a list of values (x = 0, 1, ...)
    or of (x, value) pairs. `smooth` in [0, 1) draws an exponential moving average over the raw curve."""
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    owned = ax is None
    fig, ax = _new_axes(ax, (6.0, 3.5))
    for label, values in history.items():
        xs, ys = _xy(values)
        line, = ax.plot(xs, ys, alpha=0.35 if smooth else 1.0, label=None if smooth else label)
        if smooth:
            ax.plot(xs, _ema(ys, smooth), color=line.get_color(), label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if history:
        ax.legend()
    if title:
        ax.set_title(title)
    return _finish(fig, save, owned=owned)


def plot_gan_curves(history: dict, *, smooth: float = 0.0, title: str | None = None, axes=None,
                    save: str | os.PathLike | None = None):
    """A GAN's training curves on two panels, with the values of an undecided discriminator drawn as guides:
    left the losses (`loss_d`, `loss_g`; D undecided: loss_d = 2 log 2, loss_g = log 2), right D's mean
    outputs (`d_real` = D(x), `d_fake` = D(G(z)); undecided: 0.5). `history` maps those keys (and `step`,
    the x axis, if present) to lists, as `gan.train_gan` and `gan_toy.train_toy_gan` record them.
    `axes`: two matplotlib axes to draw on (else a new figure). Returns the figure."""
    import math
    import matplotlib.pyplot as plt
    missing = [k for k in ("loss_d", "loss_g", "d_real", "d_fake") if k not in history]
    if missing:
        raise ValueError(f"history lacks {missing}: pass GANResult.history or ToyGAN.history")
    steps = history.get("step") or list(range(len(history["loss_d"])))
    owned = axes is None
    if owned:
        fig, axes = plt.subplots(1, 2, figsize=(11.0, 3.2))
    fig = axes[0].figure
    for ax, keys, labels, guides, ylabel in (
            (axes[0], ("loss_d", "loss_g"), ("loss D", "loss G"), (2 * math.log(2), math.log(2)), "loss"),
            (axes[1], ("d_real", "d_fake"), ("D(x)", "D(G(z))"), (0.5,), "mean D output")):
        curves = {label: list(zip(steps, history[key])) for key, label in zip(keys, labels)}
        plot_curves(curves, smooth=smooth, ylabel=ylabel, ax=ax)
        if len(steps) <= 20:  # a short run: mark the points (a single one would not show as a line)
            for line in ax.lines:
                line.set_marker("o")
        for guide in guides:
            ax.axhline(guide, color="grey", linestyle=":", linewidth=1)
    axes[1].set_ylim(-0.02, 1.02)
    if title:
        fig.suptitle(title)
    if owned:
        fig.tight_layout()
    return _finish(fig, save, owned=owned)


def _xy(values) -> tuple[list[float], list[float]]:
    values = list(values)
    if values and isinstance(values[0], (tuple, list)):
        return [float(x) for x, _ in values], [float(y) for _, y in values]
    return list(range(len(values))), [float(y) for y in values]


def _ema(values: list[float], decay: float) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard smooths curves)."""
    smoothed, average = [], 0.0
    for step, value in enumerate(values, start=1):
        average = decay * average + (1.0 - decay) * value
        smoothed.append(average / (1.0 - decay ** step))
    return smoothed


def animate_grids(grids: Sequence, *, interval: int = 300, titles: Sequence[str] | None = None, nrow: int = 8,
                  value_range: tuple[float, float] | None = None, size: float = 4.0,
                  save: str | os.PathLike | None = None):
    """An animation of training snapshots (each a grid tensor or a batch); returns a matplotlib
    `FuncAnimation`. In a notebook: `HTML(anim.to_jshtml())`; `save="x.gif"` writes a GIF."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    if len(grids) == 0:
        raise ValueError("animate_grids needs at least one grid")
    if titles is not None and len(titles) != len(grids):
        raise ValueError(f"got {len(titles)} titles for {len(grids)} grids")
    frames = [image_grid(g, nrow=nrow, value_range=value_range).permute(1, 2, 0).numpy() for g in grids]
    height, width = frames[0].shape[:2]
    fig, ax = plt.subplots(figsize=(size * width / max(height, width), size * height / max(height, width)))
    picture = ax.imshow(frames[0])
    ax.set_axis_off()

    def draw(i):
        picture.set_data(frames[i])
        if titles is not None:
            ax.set_title(titles[i])
        return (picture,)

    anim = FuncAnimation(fig, draw, frames=len(frames), interval=interval, blit=False)
    if save is not None:
        anim.save(save, writer=PillowWriter(fps=max(1, round(1000 / interval))))
    plt.close(fig)  # the animation keeps the figure; closing it avoids a duplicate static picture in notebooks
    return anim


def interact_figure(draw, **controls):
    """Like `ipywidgets.interact` for a function that returns a matplotlib figure, but the picture is an ordinary
    cell output (an IPython display handle, redrawn on every change), so its first state also shows where widgets
    do not run (nbval, nbconvert, GitHub's viewer). draw(**values) -> Figure; controls: name -> an ipywidgets
    control whose `.value` is passed as that argument. Displays the controls, then the picture; returns the
    figure drawn for the initial values."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import DisplayHandle, display
    if not controls:
        raise ValueError("interact_figure needs at least one control, e.g. t=ipywidgets.IntSlider(...)")

    def render():
        fig = draw(**{name: control.value for name, control in controls.items()})
        plt.close(fig)  # shown through the display handle only, not a second time by the inline backend
        return fig

    first = render()
    display(widgets.HBox(list(controls.values())))
    handle = DisplayHandle()
    handle.display(first)
    for control in controls.values():
        control.observe(lambda _change: handle.update(render()), names="value")
    return first
