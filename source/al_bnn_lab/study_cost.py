"""Which of the study's runs are calibrated, and what rerunning the others would cost.

An estimate here is a measured rate scaled, never a guess: a question's wall seconds per trained run
on this machine (its wall-time record, reused runs left out) times the runs a rerun would train,
times the measured cost of a calibrated fit against an uncalibrated one (the UCI protocol's cost
report, per model) applied to the share of that time the question's runs spent training (their
recorded training and selection seconds). The rate depends on how many runs a stack trains at once:
Q6's were stacked by the dozens, so its rate is the one to scale.
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


def training_share(table: pd.DataFrame) -> float:
    """The share of a question's measured seconds that trained models (the rest selected): only
    that part costs more when calibrated."""
    # a row's training_seconds is its whole stack's: each run's part is that divided by the runs in it
    per_run = table["training_seconds"] / (table["runs_in_stack"] if "runs_in_stack" in table else 1)
    training, selection = float(per_run.sum()), float(table["selection_seconds"].sum())
    return training / (training + selection) if training + selection > 0 else 1.0


def rerun_hours(seconds_per_run: float, runs: int, ratios: Sequence[CostRatio], share: float = 1.0
                ) -> tuple[float, float, float]:
    """(estimate, low, high) hours to train `runs` runs calibrated, at an uncalibrated rate whose
    training share is scaled by the models' cost ratios: the estimate by their median ratios
    (averaged over the models), low and high by the lowest and highest ratio the report measured."""
    def hours(ratio: float) -> float:
        return seconds_per_run * runs * (share * ratio + 1.0 - share) / 3600

    middle = sum(ratio.median for ratio in ratios) / len(ratios)
    return hours(middle), hours(min(r.low for r in ratios)), hours(max(r.high for r in ratios))


def hours_text(hours: tuple[float, float, float]) -> str:
    """'7.0 h (5.8-8.1 h)': the estimate, then the range of the measured ratios."""
    middle, low, high = hours
    return f"{middle:.1f} h ({low:.1f}-{high:.1f} h)"
