"""The standard UCI protocol: the shipped splits, the scores, the test split kept out of fitting, resume."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from al_bnn.config import ConfigError
from al_bnn.data import SHIPPED_UCI_ROOT, DataFileError, read_uci_folder
from al_bnn_lab import uci_protocol
from al_bnn_lab.uci_protocol import STANDARD_DATASETS, read_splits, run_protocol, score, summarise

TINY = {"layer_sizes": [8], "n_epochs": 2, "min_steps": 0, "batch_size": 64}


@pytest.mark.parametrize("name", STANDARD_DATASETS)
def test_the_twenty_standard_splits_are_shipped_and_partition_the_rows_90_10(name):
    features, target = read_uci_folder(SHIPPED_UCI_ROOT / name)
    splits = read_splits(SHIPPED_UCI_ROOT / name, len(target))
    assert len(splits) == 20
    for split in splits:
        assert np.intersect1d(split.train, split.test).size == 0
        assert len(np.unique(np.concatenate([split.train, split.test]))) == len(target)
        assert abs(len(split.test) / len(target) - 0.1) < 0.01


def test_a_split_with_a_row_in_train_and_test_is_refused(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "n_splits.txt").write_text("1\n")
    (tmp_path / "splits" / "index_train_0.txt").write_text("0\n1\n2\n")
    (tmp_path / "splits" / "index_test_0.txt").write_text("2\n3\n")
    with pytest.raises(DataFileError, match="both its training and its test"):
        read_splits(tmp_path, 4)
    (tmp_path / "splits" / "index_test_0.txt").write_text("3\n4\n")
    with pytest.raises(DataFileError, match=r"in \[0, 4\)"):
        read_splits(tmp_path, 4)


def test_scores_are_the_gaussian_log_density_and_interval_shares():
    rng = np.random.default_rng(0)
    y, mean, std = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.5, 2, size=50)
    result = score(y, mean, std)
    assert result["log_likelihood"] == pytest.approx(np.mean(stats.norm.logpdf(y, mean, std)), rel=1e-12)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((y - mean) ** 2)), rel=1e-12)
    inside = stats.norm.cdf(np.abs(y - mean) / std) - stats.norm.cdf(-np.abs(y - mean) / std)
    assert result["coverage_90"] == np.mean(inside <= 0.9)
    assert result["coverage_50"] == np.mean(inside <= 0.5)


def test_fitting_never_sees_the_test_rows(monkeypatch):
    """Every array passed to fit comes from the training rows: the test targets are replaced by NaN,
    so any use of them during fitting would show up as a NaN fit (the estimators refuse NaN)."""
    features, target = read_uci_folder(SHIPPED_UCI_ROOT / "yacht")
    split = read_splits(SHIPPED_UCI_ROOT / "yacht", len(target))[0]
    seen = []

    class Recording:
        def __init__(self, **parameters):
            self.parameters = parameters

        def fit(self, X, y):
            seen.append((np.array(X), np.array(y)))
            return self

        def predict(self, X, return_std=False):
            return np.zeros(len(X)), np.ones(len(X))

    monkeypatch.setattr(uci_protocol, "make_estimator", lambda model, seed, parameters=None: Recording())
    poisoned = target.copy()
    poisoned[split.test] = np.nan
    uci_protocol.run_split("bnn", features, poisoned, split)
    X_fit, y_fit = seen[0]
    assert len(y_fit) == len(split.train) and np.all(np.isfinite(y_fit))
    standardised = (features[split.train] - features[split.train].mean(0)) / features[split.train].std(0)
    np.testing.assert_allclose(X_fit, standardised, rtol=1e-12)


@pytest.mark.slow
def test_a_tiny_protocol_run_resumes_and_reports(tmp_path):
    out = tmp_path / "out"
    messages = []
    table = run_protocol(out, ["yacht"], ["bnn"], n_splits=2, parameters=TINY, progress=messages.append)
    assert list(table["split"]) == [0, 1] and np.all(np.isfinite(table["log_likelihood"]))
    assert messages[0] == "0 fits done before, 2 to run"
    again = run_protocol(out, ["yacht"], ["bnn"], n_splits=2, parameters=TINY, progress=messages.append)
    assert messages[-1] == "2 fits done before, 0 to run"
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(ConfigError, match="other settings"):
        run_protocol(out, ["yacht"], ["bnn"], n_splits=2, parameters={**TINY, "layer_sizes": [9]})
    # another model joins the folder; its settings are recorded beside the first's
    run_protocol(out, ["yacht"], ["dropout"], n_splits=1, parameters=TINY, progress=messages.append)
    assert messages[-1].startswith("[1/1] yacht dropout split 0")
    recorded = yaml.safe_load((out / uci_protocol.SETTINGS_FILE).read_text())
    assert set(recorded["models"]) == {"bnn", "dropout"}
    with pytest.raises(ConfigError, match="other settings.*: bnn"):
        run_protocol(out, ["yacht"], ["bnn", "dropout"], n_splits=1, parameters={**TINY, "n_epochs": 3})
    markdown = uci_protocol.write_report(out, table, "test")
    assert "| yacht | bnn | 2 |" in markdown
    assert (out / "summary.md").is_file() and (out / "log_likelihood.png").is_file()
    summary = summarise(table)
    assert summary.loc[0, "ll_minus_published"] == pytest.approx(table["log_likelihood"].mean() - (-1.25))


def test_bad_requests_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="--splits"):
        run_protocol(tmp_path / "a", ["yacht"], ["bnn"], n_splits=0)
    with pytest.raises(ConfigError, match="has only 20 splits"):
        run_protocol(tmp_path / "b", ["yacht"], ["bnn"], n_splits=21)
    with pytest.raises(ConfigError, match="no standard splits"):
        run_protocol(tmp_path / "c", ["airfoil"], ["bnn"], n_splits=1)
    assert not Path(tmp_path / "a").exists() or not any(Path(tmp_path / "a").iterdir())



def test_estimator_settings_from_the_command_line_are_parsed_and_checked(tmp_path):
    assert uci_protocol.parse_settings(["calibration=none", "layer_sizes=[8, 8]", "nll_beta=0.5"]) == \
        {"calibration": "none", "layer_sizes": [8, 8], "nll_beta": 0.5}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        uci_protocol.parse_settings(["calibration"])
    with pytest.raises(ConfigError, match="--set: .*no_such_keyword"):
        run_protocol(tmp_path / "d", ["yacht"], ["bnn"], n_splits=1, parameters={"no_such_keyword": 1})


def _runs(ll, coverage, seconds, model="bnn"):
    return pd.DataFrame({"dataset": "yacht", "model": model, "split": range(len(ll)), "rmse": 1.0,
                         "log_likelihood": ll, "coverage_90": coverage, "coverage_50": 0.5, "fit_seconds": seconds})


def test_the_paired_comparison_is_per_split_differences():
    calibrated = _runs([-1.0, -1.5, -0.5], [0.9, 0.8, 0.95], [2.0, 2.0, 2.0])
    raw = _runs([-2.0, -1.5, -1.5], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    row = uci_protocol.paired_comparison(calibrated, raw).iloc[0]
    gains = np.array([1.0, 0.0, 1.0])
    assert row["ll_gain"] == pytest.approx(gains.mean())
    assert row["ll_gain_se"] == pytest.approx(gains.std(ddof=1) / np.sqrt(3))
    assert row["seconds_ratio"] == pytest.approx(2.0) and row["coverage_90_baseline"] == 1.0


def test_the_target_check_counts_against_the_published_numbers():
    table = pd.concat([_runs([-1.0, -1.2], [0.9, 0.9], [1, 1]),                    # yacht: MC dropout LL -1.25
                       _runs([-1.6, -1.6], [0.7, 0.7], [1, 1]).assign(dataset="energy")])  # -1.21: 0.39 below
    text = uci_protocol.target_check(summarise(table))
    assert "at least MC dropout's on 1 of 2 datasets" in text
    assert "more than 0.3 nats below on: energy" in text
    assert "below 0.75 on: energy" in text


def test_the_committed_report_is_what_its_committed_runs_give(tmp_path):
    """docs/uci_protocol's summary tables are regenerated from the runs committed beside them."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "uci_protocol"
    validation = docs / "validation"  # each setting paired with the default recipe (docs/uci-protocol.md)
    reports = [(docs, docs / "uncalibrated"), (docs / "uncalibrated", None), (docs / "candidate_kl0.1", docs),
               (docs / "candidate_balanced", docs),
               (validation / "default", None),
               *((folder, validation / "default") for folder in sorted(validation.iterdir())
                 if folder.is_dir() and folder.name != "default")]
    assert len(reports) >= 9
    for folder, baseline in reports:
        table = pd.read_csv(folder / "runs.csv")
        compare = pd.read_csv(baseline / "runs.csv") if baseline else None
        uci_protocol.write_report(tmp_path / folder.name, table, "test", compare,
                                  baseline.name if baseline else "uncalibrated")
        fresh = pd.read_csv(tmp_path / folder.name / "summary.csv")
        pd.testing.assert_frame_equal(fresh, pd.read_csv(folder / "summary.csv"))
        committed = (folder / "summary.md").read_text().split("\n\n", 2)[2]  # after the command line
        assert (tmp_path / folder.name / "summary.md").read_text().split("\n\n", 2)[2] == committed


def test_validation_splits_hold_out_training_rows_only_keyed_by_the_split():
    """--validation: each split is scored on a share of its own training rows; its test rows are used
    nowhere, and the same split always gives the same division."""
    features, target = read_uci_folder(SHIPPED_UCI_ROOT / "yacht")
    splits = read_splits(SHIPPED_UCI_ROOT / "yacht", len(target))[:3]
    divided = uci_protocol.validation_splits(splits, 0.2)
    for split, part in zip(splits, divided, strict=True):
        assert part.index == split.index
        assert np.array_equal(np.sort(np.concatenate([part.train, part.test])), np.sort(split.train))
        assert len(np.intersect1d(part.train, part.test)) == 0
        assert len(np.intersect1d(np.concatenate([part.train, part.test]), split.test)) == 0
        assert len(part.test) == round(0.2 * len(split.train))
    again = uci_protocol.validation_splits(splits, 0.2)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(divided, again, strict=True))
    assert not np.array_equal(divided[0].test, divided[1].test)
    with pytest.raises(ConfigError, match="--validation"):
        uci_protocol.validation_splits(splits, 1.5)
    assert uci_protocol.settings_record(["bnn"], None, 0.2)["validation_fraction"] == 0.2
    assert "validation_fraction" not in uci_protocol.settings_record(["bnn"], None)


def test_the_ll_gap_to_mc_dropout_splits_into_the_rmse_part_and_the_shape_part():
    """A bnn of calibrated constant width (LL = -log(RMSE) - 1.419 per split) at twice MC dropout's
    RMSE: the RMSE accounts for -log 2 and its shape gains nothing; the rest is MC dropout's shape."""
    rmse, ll = uci_protocol.PUBLISHED["concrete"]["MC dropout"]
    constant = uci_protocol.GAUSSIAN_CONSTANT
    splits = [2 * rmse * 0.9, 2 * rmse * 1.1]
    table = pd.DataFrame({"dataset": "concrete", "model": ["bnn", "bnn", "dropout"], "split": [0, 1, 0],
                          "rmse": [*splits, rmse], "log_likelihood": [-np.log(s) - constant for s in splits] + [ll]})
    gaps = uci_protocol.log_likelihood_gaps(table).iloc[0]
    assert gaps["splits"] == 2  # the bnn's rows only
    assert gaps["shape"] == pytest.approx(0.0, abs=1e-12)
    assert gaps["from_rmse"] == pytest.approx(-np.mean(np.log(np.array(splits) / rmse)), rel=1e-12)
    assert gaps["from_shape"] == pytest.approx(-(ll + np.log(rmse) + constant), rel=1e-12)
    assert gaps["from_rmse"] + gaps["from_shape"] == pytest.approx(gaps["ll_minus_published"], rel=1e-12)
    assert uci_protocol.log_likelihood_gaps(table.assign(dataset="not published")).empty
