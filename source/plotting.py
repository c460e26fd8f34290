"""Plots of learning curves: RMSE against epochs, one line per run."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average; the first points average what is available so far."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def plot_learning_curves(metrics_by_run: dict[str, list[dict]], title: str, acquisition_epochs: Sequence[int] = (),
                         window: int = 5):
    """Train and test RMSE (original target units) over epochs, with acquisitions marked."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for label, rows in metrics_by_run.items():
        epochs = [row["epoch"] for row in rows]
        for axis, key in zip(axes, ("train_rmse", "test_rmse"), strict=False):
            axis.plot(epochs, moving_average([row[key] for row in rows], window), label=label, linewidth=1.4)
    for axis, name in zip(axes, ("train", "test"), strict=False):
        for epoch in acquisition_epochs:
            axis.axvline(epoch, color="0.8", linewidth=0.8, zorder=0)
        axis.set_xlabel("epoch (grey lines: acquisitions)")
        axis.set_ylabel(f"{name} RMSE (target units)")
        axis.set_title(f"{name} RMSE, moving average over {window} evaluations")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure
