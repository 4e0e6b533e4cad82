"""Pictures of networks drawn from the model itself (matplotlib): the blocks a forward pass runs, the tensor shape
each one outputs, and how they connect. Nothing is typed by hand, so the picture cannot drift from the code.

- `draw_unet(model, image_size)`: the diffusion U-Net (`course_lib.unet.UNet`) as a U, the encoder down the left,
  the decoder up the right, the middle block at the bottom, skip connections across, and where the time step and
  the class label enter. Shapes come from `unet.shape_walk` on one dummy input.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch

from .unet import UNet, shape_walk

__all__ = ["unet_layout", "draw_unet"]

_BOX_W, _BOX_H, _DECODER_X, _ROW = 3.0, 0.72, 6.0, 1.0  # box size, the decoder column's x, row pitch
_COLORS = {"res": "#dbe8f6", "attn": "#f6e3c8", "downsample": "#e3f1dc", "upsample": "#e3f1dc", "cat": "#eeeeee",
           "io": "#ffffff", "emb": "#fde0c8"}
_EMB_COLOR = "#e8771e"  # the time (and label) embedding, and the dot on every ResBlock it enters


def _kind(name: str) -> str:
    """"down1.res0" -> "res", "up0.cat" -> "cat", "mid" -> "res", "stem" -> "io"."""
    part = name.split(".")[-1].rstrip("0123456789")
    return "res" if name == "mid" else part if part in _COLORS else "io"


def _label(name: str, model: UNet) -> str:
    """What a block is, in words (the first line of its box)."""
    p = model.patch_size
    words = {"stem": f"stem: PixelUnshuffle({p}) + conv" if p > 1 else "stem: conv", "mid": "middle ResBlock",
             "head": f"head: conv + PixelShuffle({p})" if p > 1 else "head: conv", "input": "input x_t",
             "output": "output (eps, x0 or v)", "res": "ResBlock", "attn": "self-attention",
             "downsample": "downsample: conv, stride 2", "upsample": "upsample: nearest + conv",
             "cat": "concat the skip"}
    return words.get(name, words.get(_kind(name), name))


def unet_layout(walk: list[tuple[str, tuple[int, ...]]]) -> dict[str, tuple[float, float]]:
    """(x, y) of each block of a shape walk (plus "input" and "output"): the encoder down the left column, one band
    of rows per level, the decoder up the right column in the same bands, the middle block centred below."""
    names = [name for name, _ in walk if name not in ("time_mlp", "label_emb")]
    levels = sorted({int(n[len("down")]) for n in names if n.startswith("down")})
    place = {"input": (0.0, 0.0), "stem": (0.0, -_ROW), "output": (_DECODER_X, 0.0), "head": (_DECODER_X, -_ROW)}
    top = -2 * _ROW
    for level in levels:
        encoder = [n for n in names if n.startswith(f"down{level}.")]  # in forward order: top to bottom
        decoder = [n for n in names if n.startswith(f"up{level}.")]  # in forward order: bottom to top
        rows = max(len(encoder), len(decoder))
        place.update({n: (0.0, top - i * _ROW) for i, n in enumerate(encoder)})
        place.update({n: (_DECODER_X, top - (rows - 1 - i) * _ROW) for i, n in enumerate(decoder)})
        top -= rows * _ROW
    place["mid"] = (_DECODER_X / 2, top)
    return place


def _box(ax, xy, text: str, kind: str, gid: str) -> None:
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0.02",
                                facecolor=_COLORS[kind], edgecolor="#444444", linewidth=0.8, gid=gid))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, start, end, *, color="#444444", dashed=False, gid=None, corner: str | None = None) -> None:
    """An arrow from start to end; corner "down-right" or "right-up" bends it once at a right angle."""
    bend = {"down-right": "angle,angleA=90,angleB=0,rad=0", "right-up": "angle,angleA=0,angleB=90,rad=0"}
    ax.annotate("", xy=end, xytext=start, gid=gid, arrowprops=dict(
        arrowstyle="-|>", color=color, linewidth=1.0, linestyle="--" if dashed else "-", shrinkA=2, shrinkB=2,
        connectionstyle=bend.get(corner, "arc3")))


def _edge(xy: tuple[float, float], toward: tuple[float, float]) -> tuple[float, float]:
    """The point on the box at xy where a line towards `toward` leaves it (top, bottom or side)."""
    (x, y), (tx, ty) = xy, toward
    if abs(ty - y) > 1e-9 and abs(tx - x) < _BOX_W / 2:
        return x, y + (_BOX_H / 2 if ty > y else -_BOX_H / 2)
    return x + (_BOX_W / 2 if tx > x else -_BOX_W / 2), y


def draw_unet(model: UNet, image_size: int, *, figsize: tuple[float, float] | None = None) -> plt.Figure:
    """The U-Net `model` drawn from one forward pass on a (1, C, image_size, image_size) dummy input (with label 0 if
    the model is conditional): each box a block and its output shape C x H x W, arrows the data flow, dashed grey
    arrows the skip connections, an orange dot on every ResBlock that the time (and label) embedding enters.
    Box patches carry the block's shape-walk name as gid ("input" and "output" too). Returns the figure."""
    device = next(model.parameters()).device
    x = torch.zeros(1, model.in_channels, image_size, image_size, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    labels = torch.zeros(1, dtype=torch.long, device=device) if model.num_classes is not None else None
    walk = shape_walk(model, x, t, labels)
    shapes = dict(walk) | {"input": tuple(x.shape), "output": tuple(x.shape)}
    place = unet_layout(walk)
    order = ["input"] + [n for n, _ in walk if n in place and n != "input"] + ["output"]
    height = -min(y for _, y in place.values()) + 2.5
    fig, ax = plt.subplots(figsize=figsize or (9, 0.55 * height + 1))
    for name in order:
        shape = "x".join(str(s) for s in shapes[name][1:])
        _box(ax, place[name], f"{_label(name, model)}\n{shape}", _kind(name), name)
        if _kind(name) == "res":
            ax.plot(place[name][0] - _BOX_W / 2 + 0.12, place[name][1] + _BOX_H / 2 - 0.12, "o", color=_EMB_COLOR, ms=5)
    for a, b in zip(order[:-1], order[1:]):  # the data flow, in forward order
        (xa, ya), (xb, yb) = place[a], place[b]
        if b == "mid":  # down out of the encoder, right into the middle block
            _arrow(ax, (xa, ya - _BOX_H / 2), (xb - _BOX_W / 2, yb), corner="down-right")
        elif a == "mid":  # right out of the middle block, up into the decoder
            _arrow(ax, (xa + _BOX_W / 2, ya), (xb, yb - _BOX_H / 2), corner="right-up")
        else:
            _arrow(ax, _edge(place[a], place[b]), _edge(place[b], place[a]))
    for level in range(model.num_levels):  # the skip: what the encoder level outputs before downsampling
        source = [n for n in order if n.startswith(f"down{level}.") and not n.endswith("downsample")][-1]
        target = f"up{level}.cat"
        _arrow(ax, _edge(place[source], place[target]), _edge(place[target], place[source]), color="#888888",
               dashed=True, gid=f"skip{level}")
    emb_text = [f"time step t -> sinusoid -> MLP: {shapes['time_mlp'][1]}"]
    if "label_emb" in shapes:
        emb_text.append(f"+ class label y -> embedding ({model.num_classes} digits + null): {shapes['label_emb'][1]}")
    emb_text.append("added inside every ResBlock (orange dot)")
    ax.text(_DECODER_X / 2, 1.1, "\n".join(emb_text), ha="center", va="bottom", fontsize=8, color=_EMB_COLOR,
            bbox=dict(boxstyle="round", facecolor=_COLORS["emb"], edgecolor=_EMB_COLOR), gid="embedding")
    ax.set_xlim(-_BOX_W / 2 - 0.3, _DECODER_X + _BOX_W / 2 + 0.3)
    ax.set_ylim(place["mid"][1] - _BOX_H, 2.4)
    ax.set_axis_off()
    ax.set_title(f"U-Net on {image_size}x{image_size} (patch size {model.patch_size}): the shape after each block "
                 f"(channels x height x width)", fontsize=9)
    fig.tight_layout()
    return fig
