"""Pictures of a DRAW model at work: step grids, a GIF of the canvas, attention windows, curves.

Everything takes a `models.draw.DrawTrace` (from `Draw.generate` or
`Draw.reconstruct`) or the trainer's metrics CSV, and writes one file
atomically. Canvases are drawn as dark ink on white (pixel value 1 = ink);
read windows are green, write windows red.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..atomic import atomic_write
from ..errors import QuickDrawError
from .draw import DrawTrace

READ_COLOUR = (0, 170, 0)
WRITE_COLOUR = (220, 0, 0)
GAP = 2  # pixels of white between cells of a grid


def _to_rgb(canvas: torch.Tensor | np.ndarray, scale: int) -> Image.Image:
    """(H, W) probabilities in [0, 1] -> RGB image, ink dark on white, upscaled by `scale`."""
    grey = np.asarray(canvas, dtype=np.float32).clip(0, 1)
    image = Image.fromarray(np.uint8(255 - np.round(grey * 255)), mode="L").convert("RGB")
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def _window_box(window: torch.Tensor, n: int, scale: int) -> tuple[float, float, float, float]:
    """A `Window.stack()` row (g_x, g_y, δ, σ², γ) in 1-based pixels -> the box its N×N grid
    covers (grid points ± half a stride) in the coordinates of an image upscaled by `scale`."""
    g_x, g_y, delta = (float(v) for v in window[:3])
    half = n * delta / 2
    # 1-based pixel u is centred at (u − 0.5)·scale in the upscaled image
    return (
        (g_x - half - 0.5) * scale,
        (g_y - half - 0.5) * scale,
        (g_x + half - 0.5) * scale,
        (g_y + half - 0.5) * scale,
    )


def _clip(box, image: Image.Image) -> tuple[float, float, float, float]:
    """Keep a box's edges on the image, so a window wider than the image still shows."""
    x0, y0, x1, y1 = box
    right, bottom = image.width - 1, image.height - 1
    return (
        min(max(x0, 0), right),
        min(max(y0, 0), bottom),
        min(max(x1, 0), right),
        min(max(y1, 0), bottom),
    )


def _cell(trace: DrawTrace, step: int, index: int, scale: int, windows: bool) -> Image.Image:
    image = _to_rgb(trace.canvases[step, index], scale)
    if windows:
        draw = ImageDraw.Draw(image)
        for stacked, n, colour in (
            (trace.read_windows, trace.read_n, READ_COLOUR),
            (trace.write_windows, trace.write_n, WRITE_COLOUR),
        ):
            if stacked is not None:
                box = _clip(_window_box(stacked[step, index], n, scale), image)
                draw.rectangle(box, outline=colour, width=max(1, scale // 3))
    return image


def _grid(cells: list[list[Image.Image]]) -> Image.Image:
    """Rows of equally sized cells -> one image with GAP pixels of white between them."""
    h, w = cells[0][0].height, cells[0][0].width
    rows, cols = len(cells), max(len(r) for r in cells)
    out = Image.new("RGB", (cols * w + (cols + 1) * GAP, rows * h + (rows + 1) * GAP), "white")
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            out.paste(cell, (GAP + c * (w + GAP), GAP + r * (h + GAP)))
    return out


def _save(image: Image.Image, path, **kwargs) -> Path:
    path = Path(path)
    fmt = {".png": "PNG", ".gif": "GIF"}.get(path.suffix.lower())
    if fmt is None:
        raise QuickDrawError(f"unsupported image suffix {path.suffix!r}; valid: '.png', '.gif'")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())
    return path


def _check_steps(trace: DrawTrace, steps) -> list[int]:
    total = trace.canvases.shape[0]
    steps = list(range(total)) if steps is None else list(steps)
    bad = [s for s in steps if not 0 <= s < total]
    if bad:
        raise QuickDrawError(f"steps {bad} out of range; the trace has steps 0..{total - 1}")
    return steps


def save_step_grid(
    trace: DrawTrace,
    path,
    max_images: int = 16,
    steps=None,
    scale: int = 2,
    windows: bool = False,
) -> Path:
    """The report's figure: one row per image, one column per step (every step by default),
    the last column being the finished drawing. PNG."""
    steps = _check_steps(trace, steps)
    n = min(max_images, trace.canvases.shape[1])
    cells = [[_cell(trace, s, i, scale, windows) for s in steps] for i in range(n)]
    return _save(_grid(cells), path)


def save_sample_grid(trace: DrawTrace, path, step: int = -1, cols: int = 8, scale: int = 2):
    """The images of one step (the final canvas by default) as a cols-wide grid. PNG."""
    step = _check_steps(trace, [step % trace.canvases.shape[0]])[0]
    images = [_cell(trace, step, i, scale, False) for i in range(trace.canvases.shape[1])]
    cells = [images[i : i + cols] for i in range(0, len(images), cols)]
    return _save(_grid(cells), path)


def save_gif(
    trace: DrawTrace,
    path,
    max_images: int = 16,
    cols: int = 4,
    scale: int = 4,
    windows: bool = True,
    frame_ms: int = 120,
    hold_ms: int = 1200,
) -> Path:
    """An animated GIF of the canvases building up, one frame per step, the attention
    windows drawn on them; the last frame is held for `hold_ms`."""
    n = min(max_images, trace.canvases.shape[1])
    frames = []
    for step in range(trace.canvases.shape[0]):
        images = [_cell(trace, step, i, scale, windows) for i in range(n)]
        frames.append(_grid([images[i : i + cols] for i in range(0, n, cols)]))
    durations = [frame_ms] * (len(frames) - 1) + [hold_ms]
    return _save(
        frames[0], path, save_all=True, append_images=frames[1:], duration=durations, loop=0
    )


def save_attention(trace: DrawTrace, path, index: int = 0, steps=None, scale: int = 6) -> Path:
    """One image's steps side by side with its read (green) and write (red) windows. PNG."""
    if not 0 <= index < trace.canvases.shape[1]:
        raise QuickDrawError(f"index {index} out of range; the trace has {trace.canvases.shape[1]}")
    if trace.read_windows is None and trace.write_windows is None:
        raise QuickDrawError("this model has no attention windows to draw (attention is off)")
    steps = _check_steps(trace, steps)
    return _save(_grid([[_cell(trace, s, index, scale, True) for s in steps]]), path)


def load_metrics(csv_path) -> dict[str, dict[str, np.ndarray]]:
    """The trainer's metrics CSV -> {split: {"step", "recon", "kl": arrays}}.

    Reads either a long table (`step`, `split`, `recon`, `kl` columns) or a wide
    one (`step`, `<split>_recon`, `<split>_kl`, ...); rows where a value is
    missing are dropped per split.
    """
    import pandas as pd

    path = Path(csv_path)
    if not path.is_file():
        raise QuickDrawError(f"metrics file not found: {path}")
    table = pd.read_csv(path)
    if "step" not in table.columns:
        raise QuickDrawError(f"{path}: no 'step' column; columns are {list(table.columns)}")
    curves: dict[str, dict[str, np.ndarray]] = {}
    if {"split", "recon", "kl"} <= set(table.columns):
        for split, rows in table.groupby("split", sort=False):
            rows = rows.dropna(subset=["recon", "kl"])
            curves[str(split)] = {k: rows[k].to_numpy(float) for k in ("step", "recon", "kl")}
    else:
        for column in table.columns:
            if column.endswith("recon"):
                prefix = column[: -len("recon")]
                kl_column = prefix + "kl"
                if kl_column not in table.columns:
                    continue
                rows = table.dropna(subset=[column, kl_column])
                curves[prefix.rstrip("_/") or "train"] = {
                    "step": rows["step"].to_numpy(float),
                    "recon": rows[column].to_numpy(float),
                    "kl": rows[kl_column].to_numpy(float),
                }
    if not curves:
        raise QuickDrawError(
            f"{path}: found no recon/kl columns to plot; columns are {list(table.columns)}"
        )
    return curves


def plot_curves(csv_path, path, title: str | None = None) -> Path:
    """Training curves of L^x and L^z (nats) per split from the trainer's metrics CSV. PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = load_metrics(csv_path)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for split, curve in curves.items():
        for ax, key in zip(axes, ("recon", "kl"), strict=True):
            ax.plot(
                curve["step"], curve[key], label=split, marker="." if len(curve[key]) < 30 else None
            )
    axes[0].set_title("$L^x$ (reconstruction, nats)")
    axes[1].set_title("$L^z$ (KL, nats)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())
    return Path(path)


def save_reconstructions(
    originals: torch.Tensor, trace: DrawTrace, path, steps=None, scale: int = 3
) -> Path:
    """One row per image: the original, then its reconstruction at each step with the read
    (green) and write (red) windows. `originals` (B, H, W) in [0, 1]. PNG."""
    steps = _check_steps(trace, steps)
    cells = [
        [_to_rgb(originals[i], scale), *(_cell(trace, s, i, scale, True) for s in steps)]
        for i in range(trace.canvases.shape[1])
    ]
    return _save(_grid(cells), path)
