"""Plots of learning curves: RMSE against labelled points and against epochs, one line per sampler."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average; the first points average what is available so far."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def mean_and_band(curves: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs (axis 0) and the half-width of the Student-t interval of the mean, by
    al_bnn_lab.stats' convention: nan from one run (no spread is known), which matplotlib's
    fill_between leaves undrawn, so a single run's plot shows the line alone."""
    from al_bnn_lab.stats import column_half_widths

    curves = np.asarray(curves, dtype=float)
    return curves.mean(axis=0), column_half_widths(curves, level)


def geometric_mean_and_interval(curves: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geometric mean over runs (axis 0) of positive values (RMSEs) and a Student-t interval
    computed on their logarithms: (centre, low, high), all positive, so a band over few seeds never
    goes below zero. With one run there is no interval: low and high are nan (no band is drawn)."""
    logs = np.log(np.asarray(curves, dtype=float))
    centre, half_width = mean_and_band(logs, level)
    return np.exp(centre), np.exp(centre - half_width), np.exp(centre + half_width)


BAND_TEXT = "geometric mean over seeds; bands: 95% interval computed on log RMSE"


def phase_end_rows(metrics: list[dict]) -> list[dict]:
    """The last evaluation of each training phase: one point per AL step."""
    last = {}
    for row in metrics:
        last[row["al_iter"]] = row
    return [last[phase] for phase in sorted(last)]


def plot_learning_curves(curves: dict[str, list[list[dict]]], title: str, acquisition_epochs: Sequence[int] = (),
                         window: int = 5):
    """Test RMSE against labelled points (one point per AL step, at the end of each training
    phase), and train and test RMSE over epochs (moving average), one line per group (sampler).

    A group holds one metrics list per run (seed); with several, the line is their geometric mean
    and the band its 95% interval, computed on log RMSE (so it stays above zero).
    """
    figure, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    styles = ["-", "--", ":", "-."]  # distinct dashes keep identical curves (fast vs batch GPA) visible
    several = any(len(runs) > 1 for runs in curves.values())
    for index, (label, runs) in enumerate(curves.items()):
        name = label if len(runs) == 1 else f"{label} ({len(runs)} seeds)"
        style = dict(linestyle=styles[index % len(styles)], linewidth=1.6)
        ends = [phase_end_rows(rows) for rows in runs]
        labelled = [row["n_train"] for row in ends[0]]
        centre, low, high = geometric_mean_and_interval([[row["test_rmse"] for row in rows] for rows in ends])
        line, = axes[0].plot(labelled, centre, marker="o", markersize=4, label=name, **style)
        if len(runs) > 1:
            axes[0].fill_between(labelled, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        epochs = [row["epoch"] for row in runs[0]]
        for axis, key in zip(axes[1:], ("train_rmse", "test_rmse"), strict=True):
            smoothed = np.array([moving_average([row[key] for row in rows], window) for rows in runs])
            centre, low, high = geometric_mean_and_interval(smoothed)
            axis.plot(epochs, centre, label=name, color=line.get_color(), **style)
            if len(runs) > 1:
                axis.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    axes[0].set_xlabel("labelled points")
    axes[0].set_ylabel("test RMSE (target units)")
    axes[0].set_title("test RMSE at the end of each phase")
    for axis, name in zip(axes[1:], ("train", "test"), strict=True):
        for epoch in acquisition_epochs:
            axis.axvline(epoch, color="0.8", linewidth=0.8, zorder=0)
        axis.set_xlabel("epoch (grey lines: acquisitions)")
        axis.set_ylabel(f"{name} RMSE (target units)")
        axis.set_title(f"{name} RMSE, moving average over {window} evaluations")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title + (f"\nlines: {BAND_TEXT}" if several else ""))
    figure.tight_layout()
    return figure
