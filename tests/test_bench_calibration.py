"""The calibration cost benchmark: fits alternate in order per split, the ratio is holdout / none."""

import pandas as pd
import pytest

from al_bnn_lab import bench_calibration


def test_each_split_is_fitted_both_ways_in_alternating_order(monkeypatch):
    calls = []

    def fake_run_split(model, features, target, split, parameters):
        calls.append((split.index, model, parameters["calibration"]))
        return {"rmse": 1.0, "log_likelihood": -1.0, "coverage_90": 0.9, "coverage_50": 0.5,
                "fit_seconds": 2.0 if parameters["calibration"] == "holdout" else 1.0}

    monkeypatch.setattr(bench_calibration, "run_split", fake_run_split)
    times = bench_calibration.measure(["yacht"], ["bnn"], 2, progress=lambda _: None)
    # an untimed warm-up fit first (not in the table), then both ways per split
    assert calls == [(0, "bnn", "none"), (0, "bnn", "none"), (0, "bnn", "holdout"), (1, "bnn", "holdout"),
                     (1, "bnn", "none")]
    assert len(times) == 4
    table = bench_calibration.cost_table(times)
    assert table["ratio"].tolist() == [2.0]


def test_the_table_gives_the_ratio_of_medians_per_dataset_and_model():
    times = pd.DataFrame([
        {"dataset": "a", "model": "bnn", "split": s, "calibration": c, "fit_seconds": v}
        for s, (none, holdout) in enumerate([(1.0, 3.0), (2.0, 3.0), (10.0, 4.0)])
        for c, v in (("none", none), ("holdout", holdout))])
    table = bench_calibration.cost_table(times)
    assert table.loc[0, "none"] == 2.0 and table.loc[0, "holdout"] == 3.0
    assert table.loc[0, "ratio"] == pytest.approx(1.5)
    text = bench_calibration.render(table, "cmd")
    assert "| a | bnn | 2.0 | 3.0 | 1.50 |" in text


def test_a_non_positive_split_count_is_refused():
    with pytest.raises(bench_calibration.ConfigError, match="--splits"):
        bench_calibration.measure(["yacht"], ["bnn"], 0)
