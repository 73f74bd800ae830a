"""Pictures of training: the loss curves.

matplotlib is imported inside the functions, never at module import: training imports this
module, and importing matplotlib costs time and memory a training step should not pay. We draw on
a bare `matplotlib.figure.Figure` (rendered by the Agg backend), which leaves pyplot and a
notebook's own backend untouched.
"""

import io
import json
from pathlib import Path

from fromscratch.folders import write_bytes


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL training log (one JSON object per line)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction:
    m_k = w m_{k-1} + (1 - w) v_k,  smoothed_k = m_k / (1 - w^k)."""
    smoothed, average = [], 0.0
    for k, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**k))
    return smoothed


def plot_loss_curves(
    history_or_log_path: list[dict] | str | Path,
    png_path: str | Path,
    title: str | None = None,
    *,
    log_y: bool = False,
) -> Path:
    """Draw training loss (raw and smoothed) and every evaluation loss against step; save a PNG.

    Training records are those with a "loss" key; every other key ending in "loss" (such as
    "val_loss") is an evaluation curve.
    """
    from matplotlib.figure import Figure

    history = (
        read_log(history_or_log_path)
        if isinstance(history_or_log_path, (str, Path))
        else history_or_log_path
    )
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    eval_names = sorted({k for r in history for k in r if k.endswith("loss") and k != "loss"})

    figure = Figure(figsize=(7, 4.5), dpi=100)
    axes = figure.subplots()
    if train:
        steps, losses = zip(*train, strict=True)
        smoothed = len(losses) >= 10  # too few points to need it otherwise
        axes.plot(steps, losses, color="tab:blue", alpha=0.35 if smoothed else 1.0, linewidth=1,
                  label="train")
        if smoothed:
            weight = min(0.9, 1 - 20 / len(losses)) if len(losses) > 20 else 0.5  # ~1/20 of a run
            axes.plot(steps, smooth(list(losses), weight), color="tab:blue",
                      label="train (smoothed)")
    colors = ["tab:orange", "tab:green", "tab:red", "tab:purple"]
    for i, name in enumerate(eval_names):
        color = colors[i % len(colors)]
        points = [(r["step"], r[name]) for r in history if name in r]
        axes.plot(*zip(*points, strict=True), "o-", color=color, markersize=3, label=name)
    axes.set_xlabel("step (optimizer updates)")
    axes.set_ylabel("loss")
    if log_y:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    if train or eval_names:
        axes.legend()
    axes.set_title(title or "loss curves")
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png_path = Path(png_path)
    write_bytes(png_path, buffer.getvalue())
    return png_path
