"""The study's calibration statement and rerun estimates (al_bnn_lab.study_cost): each helper on
hand-made inputs, and the committed report's paragraph against the numbers it is computed from."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn_lab import study_cost

REPO = Path(__file__).resolve().parents[1]


def test_runs_are_calibrated_only_where_a_run_recorded_its_scales():
    assert not study_cost.runs_calibrated(pd.DataFrame({"test_rmse": [1.0]}))
    assert not study_cost.runs_calibrated(pd.DataFrame({"calibration_epistemic": [np.nan, np.nan]}))
    assert study_cost.runs_calibrated(pd.DataFrame({"calibration_epistemic": [np.nan, 1.3]}))


def test_configured_calibration_defaults_to_none():
    assert study_cost.configured_calibration({}) == "none"
    raw = {"experiment": {"train_schedule": {"calibration": "holdout"}}}
    assert study_cost.configured_calibration(raw) == "holdout"


def _fits(seconds: dict[tuple[str, str], tuple[list[float], list[float]]]) -> pd.DataFrame:
    rows = []
    for (dataset, model), (plain, calibrated) in seconds.items():
        for split, (a, b) in enumerate(zip(plain, calibrated, strict=True)):
            rows += [{"dataset": dataset, "model": model, "split": split, "calibration": "none", "fit_seconds": a},
                     {"dataset": dataset, "model": model, "split": split, "calibration": "holdout", "fit_seconds": b}]
    return pd.DataFrame(rows)


def test_cost_ratio_is_the_median_over_datasets_of_the_ratio_of_median_seconds():
    fits = _fits({("a", "bnn"): ([1.0, 2.0, 9.0], [2.0, 4.0, 4.0]),     # medians 2 -> 4: ratio 2
                  ("b", "bnn"): ([1.0, 1.0, 1.0], [3.0, 3.0, 3.0]),     # 3
                  ("c", "bnn"): ([2.0, 2.0, 2.0], [5.0, 5.0, 5.0]),     # 2.5
                  ("a", "ensemble"): ([4.0, 4.0, 4.0], [6.0, 6.0, 6.0])})  # 1.5
    ratios = study_cost.calibration_cost_ratios(fits)
    assert ratios["bnn"] == study_cost.CostRatio(median=2.5, low=2.0, high=3.0, datasets=3)
    assert ratios["ensemble"] == study_cost.CostRatio(median=1.5, low=1.5, high=1.5, datasets=1)


def test_cost_ratio_refuses_a_table_without_both_settings():
    fits = _fits({("a", "bnn"): ([1.0], [2.0])})
    with pytest.raises(ValueError, match="none and holdout"):
        study_cost.calibration_cost_ratios(fits[fits["calibration"] == "none"])


def test_seconds_per_trained_run_leaves_reused_runs_out():
    assert study_cost.seconds_per_trained_run({"seconds": 600.0, "parts": 2, "reused_runs": 40}, 100) == 10.0
    assert study_cost.seconds_per_trained_run({"seconds": 600.0, "parts": 1}, 100) == 6.0
    assert study_cost.seconds_per_trained_run(None, 100) is None
    assert study_cost.seconds_per_trained_run({"seconds": 0.0, "parts": 0, "reused_runs": 100}, 100) is None
    assert study_cost.seconds_per_trained_run({"seconds": 5.0, "parts": 1, "reused_runs": 100}, 100) is None


def test_rerun_hours_scale_by_the_lowest_and_highest_ratio():
    assert study_cost.rerun_hours(36.0, 100, [2.0, 1.5]) == pytest.approx((1.5, 2.0))
    assert study_cost.hours_text((1.5, 2.0)) == "1.5-2.0 h"
    assert study_cost.hours_text((2.04, 2.01)) == "2.0 h"


def test_the_committed_report_states_the_estimates_its_numbers_give():
    """docs/study.md's calibration paragraph, recomputed from the committed wall times, run tables
    and cost report."""
    import json

    text = (REPO / "docs" / "study.md").read_text()
    paragraph = next(line for line in text.splitlines() if line.startswith("**Calibration.**"))
    walls = json.loads((REPO / "docs" / "study_data" / "wall_times.json").read_text())
    ratios = study_cost.calibration_cost_ratios(pd.read_csv(REPO / "docs/uci_protocol/cost/calibration_cost.csv"))
    for model, ratio in ratios.items():
        assert f"{ratio.median:.2f}x ({model})" in paragraph
    keys = ["dataset", "model", "sampler", "seed"]
    tables = {q: pd.read_csv(REPO / "docs" / "study_data" / f"{q}.csv.gz") for q in ("q6", "q7", "q9")}
    assert study_cost.runs_calibrated(tables["q9"]) and not study_cost.runs_calibrated(tables["q6"])
    q6_runs = tables["q6"].groupby(keys).ngroups
    q6_rate = study_cost.seconds_per_trained_run(walls["q6"], q6_runs)
    reusable = tables["q9"].groupby(keys).ngroups
    q6_hours = study_cost.rerun_hours(q6_rate, q6_runs - reusable, [ratios["bnn"].median])
    match = re.search(r"Q6 trained ([\d,]+) runs in (\d+) min here \(([\d.]+) s per run\), so its ([\d,]+) runs "
                      r"calibrated \(less the ([\d,]+) of Q9, its settings calibrated\) would take about ([\d.-]+ h)",
                      paragraph)
    assert match is not None, paragraph
    assert int(match[1].replace(",", "")) == q6_runs - walls["q6"]["reused_runs"]
    assert float(match[3]) == pytest.approx(q6_rate, abs=0.05)
    assert int(match[4].replace(",", "")) == q6_runs and int(match[5].replace(",", "")) == reusable
    assert match[6] == study_cost.hours_text(q6_hours)
    q7_rate = study_cost.seconds_per_trained_run(walls["q7"], tables["q7"].groupby(keys).ngroups)
    q7_hours = study_cost.rerun_hours(q7_rate, tables["q7"].groupby(keys).ngroups,
                                      [ratios[m].median for m in set(tables["q7"]["model"])])
    assert f"would take about {study_cost.hours_text(q7_hours)}" in paragraph
