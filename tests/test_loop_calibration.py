"""Calibrated uncertainty in the simulated active-learning loop (train_schedule.calibration): the
keys are validated, the held-out rows are a keyed part of each run's training set (the test set is
never read), "none" changes nothing, "holdout" records calibrated and raw columns that bring an
over-confident model's 90% coverage toward 0.90, and a stop after a phase resumes to the same rows."""

import dataclasses
import threading

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

import al_bnn.loop as loop
import al_bnn.stack_calibration as stack_calibration
from al_bnn.checkpoint import CALIBRATION_COLUMNS
from al_bnn.config import ConfigError, TrainSchedule, config_from_dict
from al_bnn.data import RegressionData
from al_bnn.models.calibration import VarianceScales
from al_bnn.models.trainer import CENTRAL_90_Z
from al_bnn.stack_calibration import CALIBRATION_MIN_ROWS, calibrated_metrics, fit_stack_scales, holdout_positions

# the one declared tuple (what the benchmark's tidy tables read) and the held-out row count
CALIBRATED_COLUMNS = {*CALIBRATION_COLUMNS, "calibration_rows"}


def synthetic(seed: int, n_pool: int = 120, n_test: int = 400) -> RegressionData:
    """Heteroscedastic data: y = sin(2 x0) + 0.3 (0.2 + |x1|) noise, two inputs, standardised."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n_pool + n_test, 2))
    y = np.sin(2 * x[:, 0]) + 0.3 * (0.2 + np.abs(x[:, 1])) * rng.normal(size=len(x))
    x_scaler, y_scaler = StandardScaler().fit(x[:n_pool]), StandardScaler().fit(y[:n_pool, None])
    x = x_scaler.transform(x).astype(np.float32)
    y = y_scaler.transform(y[:, None])[:, 0].astype(np.float32)
    return RegressionData(x[:n_pool], y[:n_pool], x[n_pool:], y[n_pool:], x_scaler, y_scaler, "synthetic")


def tiny_config(calibration: str, seed: int = 0, **train) -> dict:
    return {"seed": seed, "al_schedule": {"al_iter": 1, "num_al_incr": 10, "num_train_init": 40},
            "net_config": {"layer_sizes": [16, 16], "learning_rate": 1e-2},
            "parms": {"sample_policy": "random"},
            "train_schedule": {"num_epochs": 20, "eval_after_epochs": 10, "batch_size": 16,
                               "calibration": calibration, **train}}


def numbers(rows: list[dict]) -> list[dict]:
    """Rows without their timings (selection_seconds, training_seconds, calibration_seconds)."""
    return [{key: value for key, value in row.items() if not key.endswith("_seconds")} for row in rows]


def run(calibration: str, seeds=(0, 1), checkpoint_dir=None, stop=None, **train):
    specs = [loop.RunSpec(f"run{seed}", config_from_dict(tiny_config(calibration, seed, **train), "test"))
             for seed in seeds]
    return loop.run_experiments(specs, show_progress=False, data_for=lambda spec: synthetic(spec.config.seed),
                                checkpoint_dir=checkpoint_dir, stop=stop)


# -- the keys ------------------------------------------------------------------------------------
def test_the_calibration_keys_are_validated_with_messages_naming_key_value_and_choices():
    with pytest.raises(ConfigError, match=r"train_schedule\.calibration'.*'isotonic' is not allowed.*'none', "
                                          r"'holdout'"):
        config_from_dict({"train_schedule": {"calibration": "isotonic"}}, "test")
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError, match=r"train_schedule\.calibration_fraction'.*out of range"):
            config_from_dict({"train_schedule": {"calibration_fraction": fraction}}, "test")
    config = config_from_dict({"train_schedule": {"calibration": "holdout", "calibration_fraction": 0.3}}, "test")
    assert (config.train_schedule.calibration, config.train_schedule.calibration_fraction) == ("holdout", 0.3)


def test_the_schema_default_is_a_valid_setting_and_holdout_is_the_other():
    # Switching the default is a one-line change of the schema: both values are valid settings.
    default = {f.name: f for f in dataclasses.fields(TrainSchedule)}["calibration"]
    assert default.default in ("none", "holdout") and set(default.metadata["choices"]) == {"none", "holdout"}


# -- the held-out rows ---------------------------------------------------------------------------
def test_held_out_positions_are_keyed_by_seed_and_phase_and_their_number_by_the_size_only():
    first = holdout_positions(60, 0.2, seed=3, fit=1)
    np.testing.assert_array_equal(first, holdout_positions(60, 0.2, seed=3, fit=1))
    assert not np.array_equal(first, holdout_positions(60, 0.2, seed=3, fit=2))
    assert not np.array_equal(first, holdout_positions(60, 0.2, seed=4, fit=1))
    assert {len(holdout_positions(60, 0.2, seed, 1)) for seed in range(10)} == {12}
    assert len(holdout_positions(30, 0.2, 0, 0)) == CALIBRATION_MIN_ROWS // 2  # at least 10 rows
    assert len(holdout_positions(30, 0.9, 0, 0)) == 15                         # at most half
    assert np.all(np.diff(first) > 0) and first.min() >= 0 and first.max() < 60


@pytest.mark.slow  # one small training, but its compilation takes seconds
def test_the_copy_trains_on_the_kept_rows_is_scored_on_the_held_out_ones_and_never_reads_the_test_set(monkeypatch):
    config = config_from_dict(tiny_config("holdout"), "test")
    datas = []
    for seed in (0, 1):
        data = synthetic(seed)
        data.test_x = np.full_like(data.test_x, np.nan)  # any use of the test set would make the scales NaN
        data.test_y = np.full_like(data.test_y, np.nan)
        datas.append(data)
    train_sets = [np.arange(5, 45), np.arange(60, 100)[::-1]]
    stacked = []

    def recording(datas_, indices):
        stacked.append([np.array(i) for i in indices])
        return real(datas_, indices)

    real = stack_calibration.stack_training_sets
    monkeypatch.setattr(stack_calibration, "stack_training_sets", recording)
    scales = fit_stack_scales(config, datas, train_sets, seeds=[0, 1], phase=2)
    kept, held = stacked  # the copy's training rows, then the rows it is scored on
    for k, (seed, train_set) in enumerate(zip([0, 1], train_sets, strict=True)):
        positions = holdout_positions(len(train_set), 0.2, seed, 2)
        np.testing.assert_array_equal(held[k], train_set[positions])
        np.testing.assert_array_equal(np.sort(np.concatenate([kept[k], held[k]])), np.sort(train_set))
        assert not set(kept[k]) & set(held[k])
        assert scales[k] is not None and scales[k].n_rows == len(positions)
        assert np.isfinite([scales[k].epistemic, scales[k].aleatoric]).all()
    assert not np.array_equal(holdout_positions(40, 0.2, 0, 2), holdout_positions(40, 0.2, 1, 2))  # per run


def test_a_phase_under_the_minimum_rows_is_not_calibrated():
    config = config_from_dict(tiny_config("holdout"), "test")
    assert fit_stack_scales(config, [synthetic(0)], [np.arange(CALIBRATION_MIN_ROWS - 1)], [0], 0) == [None]


def test_calibrated_metrics_are_the_trainers_formulas_with_the_scaled_variance():
    rng = np.random.default_rng(0)
    y, mean = rng.normal(size=200), rng.normal(size=200)
    epistemic, aleatoric = rng.uniform(0.1, 1, 200), rng.uniform(0.1, 1, 200)
    scales = VarianceScales(epistemic=2.0, aleatoric=0.5)
    variance = 2.0 * epistemic**2 + 0.5 * aleatoric**2
    expected_ll = np.mean(-0.5 * (y - mean) ** 2 / variance - 0.5 * np.log(2 * np.pi * variance))
    expected_coverage = np.mean(np.abs(y - mean) <= CENTRAL_90_Z * np.sqrt(variance))
    result = calibrated_metrics(y, mean, epistemic, aleatoric, scales)
    assert result.log_likelihood == pytest.approx(expected_ll, rel=1e-12)
    assert result.coverage_90 == expected_coverage
    unscaled = calibrated_metrics(y, mean, epistemic, aleatoric, VarianceScales())
    assert unscaled.log_likelihood != pytest.approx(result.log_likelihood)


# -- the loop ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_none_changes_nothing_and_holdout_adds_calibrated_last_rows_of_each_phase(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("calibration: none must not calibrate")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "record_phase_calibration", never)
        plain = run("none")
    calibrated = run("holdout")
    for plain_run, calibrated_run in zip(plain, calibrated, strict=True):
        np.testing.assert_array_equal(plain_run.train_indices, calibrated_run.train_indices)
        assert len(plain_run.metrics) == len(calibrated_run.metrics) == 4  # 2 phases x 2 evaluations
        last = {phase: max(i for i, row in enumerate(plain_run.metrics) if row["al_iter"] == phase)
                for phase in (0, 1)}
        for i, (row, calibrated_row) in enumerate(zip(numbers(plain_run.metrics), numbers(calibrated_run.metrics),
                                                      strict=True)):
            assert not CALIBRATED_COLUMNS & set(row)
            if i not in last.values():
                assert calibrated_row == row  # bitwise: the copy does not touch the phase's model
                continue
            assert set(calibrated_row) == set(row) | CALIBRATED_COLUMNS
            assert calibrated_row["test_log_likelihood_raw"] == row["test_log_likelihood"]
            assert calibrated_row["test_coverage_90_raw"] == row["test_coverage_90"]
            for key in set(row) - {"test_log_likelihood", "test_coverage_90"}:
                assert calibrated_row[key] == row[key], key
            assert calibrated_row["calibration_rows"] == 10  # 40 and 50 rows: 20% rounds under the 10-row minimum
            assert calibrated_row["calibration_epistemic"] > 0 and calibrated_row["calibration_aleatoric"] > 0
            assert calibrated_row["test_log_likelihood"] != row["test_log_likelihood"]
        assert all("calibration_seconds" in row for row in calibrated_run.acquisitions)
        assert not any("calibration_seconds" in row for row in plain_run.acquisitions)


@pytest.mark.slow
def test_a_stop_after_a_phase_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path, monkeypatch):
    reference = run("holdout")
    stop = threading.Event()
    real = loop.record_phase_calibration

    def then_stop(*args, **kwargs):
        real(*args, **kwargs)
        stop.set()  # after phase 0's calibration: the loop saves the phase and stops

    monkeypatch.setattr(loop, "record_phase_calibration", then_stop)
    with pytest.raises(loop.StopRequested):
        run("holdout", checkpoint_dir=tmp_path, stop=stop)
    monkeypatch.setattr(loop, "record_phase_calibration", real)
    resumed = run("holdout", checkpoint_dir=tmp_path)
    for expected, got in zip(reference, resumed, strict=True):
        assert numbers(got.metrics) == numbers(expected.metrics)  # same seed, same numbers, calibrated included
        assert numbers(got.acquisitions) == numbers(expected.acquisitions)
        np.testing.assert_array_equal(got.train_indices, expected.train_indices)
        assert any("calibration_rows" in row for row in got.metrics if row["al_iter"] == 0)  # saved, then resumed


@pytest.mark.slow
def test_an_over_confident_model_is_calibrated_toward_90_percent_coverage():
    # A wide bnn with a weak KL term trained long on 150 heteroscedastic rows memorises them: its
    # noise head shrinks and its weight posterior stays narrow, so the raw intervals are too narrow.
    specs = []
    for seed in (0, 1):
        raw = tiny_config("holdout", seed, num_epochs=600, eval_after_epochs=600)
        raw["al_schedule"] = {"al_iter": 0, "num_al_incr": 1, "num_train_init": 150}
        raw["net_config"] = {"layer_sizes": [64, 64], "learning_rate": 1e-2, "divergence_scale": 0.01}
        specs.append(loop.RunSpec(f"run{seed}", config_from_dict(raw, "test")))
    results = loop.run_experiments(specs, show_progress=False,
                                   data_for=lambda spec: synthetic(spec.config.seed, n_pool=150, n_test=1000))
    rows = [result.metrics[-1] for result in results]
    raw_coverage = np.array([row["test_coverage_90_raw"] for row in rows])
    coverage = np.array([row["test_coverage_90"] for row in rows])
    assert raw_coverage.mean() < 0.8  # the set-up is over-confident (else the test shows nothing)
    assert np.all(np.abs(coverage - 0.9) < np.abs(raw_coverage - 0.9))
    assert np.abs(coverage - 0.9).mean() < np.abs(raw_coverage - 0.9).mean() / 2
    for row in rows:
        assert row["test_log_likelihood"] > row["test_log_likelihood_raw"] + 0.1
        assert row["calibration_rows"] == 30 and row["calibration_aleatoric"] > 1  # the noise is widened


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dropout", "ensemble"])
def test_the_other_models_are_calibrated_in_the_loop_too(model):
    specs = []
    for seed in (0, 1):
        raw = tiny_config("holdout", seed, num_epochs=10)
        raw["al_schedule"]["al_iter"] = 0
        raw["parms"]["name_model"] = model
        raw["net_config"]["dropout_rate"] = 0.1 if model == "dropout" else 0.0
        specs.append(loop.RunSpec(f"run{seed}", config_from_dict(raw, "test")))
    results = loop.run_experiments(specs, show_progress=False, data_for=lambda spec: synthetic(spec.config.seed))
    for result in results:
        row = result.metrics[-1]
        assert CALIBRATED_COLUMNS <= set(row) and row["calibration_rows"] == 10
        assert np.isfinite([row["test_log_likelihood"], row["calibration_epistemic"],
                            row["calibration_aleatoric"]]).all()
        assert 0 <= row["test_coverage_90"] <= 1
