"""Which of the study's runs are calibrated, and what rerunning the others would cost.

An estimate here is a measured rate scaled, never a guess: a question's wall seconds per trained run
on this machine (its wall-time record, reused runs left out) times the runs a rerun would train,
times the measured cost of a calibrated fit against an uncalibrated one (the UCI protocol's cost
report, per model). The ratio scales a run's whole time, selection included, so where selection is
a large part (batch GPA on a large pool, Q5) the estimate is high.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd


def runs_calibrated(table: pd.DataFrame) -> bool:
    """Whether a question's tidy runs were calibrated: a calibrated run records the scales it fitted."""
    return "calibration_epistemic" in table and bool(table["calibration_epistemic"].notna().any())


def configured_calibration(raw: Mapping) -> str:
    """The calibration a question's config asks for now (the schema default is none)."""
    return str(((raw.get("experiment") or {}).get("train_schedule") or {}).get("calibration", "none"))


@dataclass(frozen=True)
class CostRatio:
    """A calibrated fit's seconds over the uncalibrated fit's, for one model: the median over the
    cost report's datasets of each dataset's ratio of median seconds (as the report states it)."""
    median: float
    low: float
    high: float
    datasets: int


def calibration_cost_ratios(cost: pd.DataFrame) -> dict[str, CostRatio]:
    """model -> its ratio; `cost` has one row per fit (dataset, model, split, calibration none or
    holdout, fit_seconds), the cost report's calibration_cost.csv."""
    from al_bnn_lab.bench_calibration import cost_table

    if not {"none", "holdout"} <= set(cost["calibration"]):
        raise ValueError("the calibration cost table needs fits with calibration none and holdout")
    table = cost_table(cost)
    return {str(model): CostRatio(float(part["ratio"].median()), float(part["ratio"].min()),
                                  float(part["ratio"].max()), len(part))
            for model, part in table.groupby("model", sort=True)}


def seconds_per_trained_run(entry: Mapping | None, runs: int) -> float | None:
    """A question's wall seconds per run it trained itself (its `runs` less those it reused), or
    None where nothing was trained or timed."""
    if not entry or not entry.get("parts"):
        return None
    trained = runs - int(entry.get("reused_runs", 0))
    return float(entry["seconds"]) / trained if trained > 0 else None


def rerun_hours(seconds_per_run: float, runs: int, ratios: Sequence[float]) -> tuple[float, float]:
    """(low, high) hours to train `runs` runs calibrated, at an uncalibrated rate scaled by the
    cost ratios of the models involved."""
    return (seconds_per_run * runs * min(ratios) / 3600, seconds_per_run * runs * max(ratios) / 3600)


def hours_text(hours: tuple[float, float]) -> str:
    low, high = hours
    return f"{low:.1f} h" if round(low, 1) == round(high, 1) else f"{low:.1f}-{high:.1f} h"
