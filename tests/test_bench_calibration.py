"""The calibration cost benchmark: fits alternate in order per split, the ratio is holdout / none."""

import numpy as np
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


def test_the_cost_benchmark_fits_and_scores_exactly_what_the_protocol_does(tmp_path, monkeypatch):
    """The same dataset and split through bench_calibration.measure and uci_protocol.run_protocol: the arrays
    each fit is given and each prediction is made on are identical, and so are the scores (a recording
    estimator stands in for training)."""
    from al_bnn_lab import uci_protocol

    seen = {"fit": [], "predict": []}

    class Recording:
        def __init__(self, **parameters):
            self.parameters = parameters

        def get_params(self):
            return dict(self.parameters)

        def fit(self, X, y):
            seen["fit"].append((np.array(X), np.array(y)))
            self.offset = float(np.mean(y))
            return self

        def predict(self, X, return_std=False):
            seen["predict"].append(np.array(X))
            return self.offset + np.asarray(X)[:, 0], np.full(len(X), 2.0)

    monkeypatch.setattr(uci_protocol, "make_estimator",
                        lambda model, seed, parameters=None: Recording(random_state=seed, **(parameters or {})))
    times = bench_calibration.measure(["yacht"], ["bnn"], 2, progress=lambda _: None)
    timed = {"fit": seen["fit"][1:], "predict": seen["predict"][1:]}  # after the untimed warm-up fit
    seen["fit"].clear()
    seen["predict"].clear()
    protocol = uci_protocol.run_protocol(tmp_path / "protocol", ["yacht"], ["bnn"], n_splits=2,
                                         progress=lambda _: None)
    assert len(timed["fit"]) == 4 and len(seen["fit"]) == 2  # splits 0 and 1: two timed fits each, one scored
    for number in range(4):  # bench order: split 0 none, holdout; split 1 holdout, none
        split = number // 2
        (x_bench, y_bench), (x_protocol, y_protocol) = timed["fit"][number], seen["fit"][split]
        assert np.array_equal(x_bench, x_protocol) and np.array_equal(y_bench, y_protocol)
        assert np.array_equal(timed["predict"][number], seen["predict"][split])
    metrics = ["rmse", "log_likelihood", "coverage_90", "coverage_50"]
    for split in (0, 1):
        bench_rows = times[times["split"] == split][metrics].to_numpy()
        protocol_row = protocol[protocol["split"] == split][metrics].to_numpy()
        assert np.array_equal(bench_rows, np.repeat(protocol_row, 2, axis=0))
