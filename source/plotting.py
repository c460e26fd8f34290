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


def mean_and_band(curves: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs (axis 0) and the half-width of a Student-t confidence interval of the mean."""
    from scipy.stats import t

    mean = curves.mean(axis=0)
    if len(curves) < 2:
        return mean, np.zeros_like(mean)
    standard_error = curves.std(axis=0, ddof=1) / np.sqrt(len(curves))
    return mean, t.ppf(0.5 + level / 2, df=len(curves) - 1) * standard_error


def plot_learning_curves(curves: dict[str, list[list[dict]]], title: str, acquisition_epochs: Sequence[int] = (),
                         window: int = 5):
    """Train and test RMSE (original target units) over epochs, one line per group (e.g. sampler).

    A group holds one metrics list per run (seed); with several, the line is their mean and the
    shaded band its 95% confidence interval.
    """
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    styles = ["-", "--", ":", "-."]  # distinct dashes keep identical curves (fast vs batch GPA) visible
    for index, (label, runs) in enumerate(curves.items()):
        epochs = [row["epoch"] for row in runs[0]]
        for axis, key in zip(axes, ("train_rmse", "test_rmse"), strict=False):
            smoothed = np.array([moving_average([row[key] for row in rows], window) for rows in runs])
            mean, band = mean_and_band(smoothed)
            name = label if len(runs) == 1 else f"{label} (mean of {len(runs)} seeds, 95% band)"
            line, = axis.plot(epochs, mean, label=name, linewidth=1.6, linestyle=styles[index % len(styles)])
            if len(runs) > 1:
                axis.fill_between(epochs, mean - band, mean + band, color=line.get_color(), alpha=0.2, linewidth=0)
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
