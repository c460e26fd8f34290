"""Calibrated uncertainty in the simulated active-learning loop (train_schedule.calibration): the
keys are validated, the held-out rows are a keyed part of each run's training set (the test set is
never read), "none" changes nothing, "holdout" records calibrated and raw columns that bring an
over-confident model's 90% coverage toward 0.90, and a stop after a phase resumes to the same rows."""

import dataclasses

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

import al_bnn.stack_calibration as stack_calibration
from al_bnn.config import ConfigError, TrainSchedule, config_from_dict
from al_bnn.data import RegressionData
from al_bnn.models.calibration import VarianceScales
from al_bnn.models.trainer import CENTRAL_90_Z
from al_bnn.stack_calibration import CALIBRATION_MIN_ROWS, calibrated_metrics, fit_stack_scales, holdout_positions

CALIBRATED_COLUMNS = {"test_log_likelihood_raw", "test_coverage_90_raw", "calibration_epistemic",
                      "calibration_aleatoric", "calibration_rows"}


def synthetic(seed: int, n_pool: int = 120, n_test: int = 400) -> RegressionData:
    """Heteroscedastic data: y = sin(2 x0) + (0.1 + 0.6 |x0|) noise, two inputs, standardised."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n_pool + n_test, 2))
    y = np.sin(2 * x[:, 0]) + (0.1 + 0.6 * np.abs(x[:, 0])) * rng.normal(size=len(x))
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
    first = holdout_positions(60, 0.2, seed=3, phase=1)
    np.testing.assert_array_equal(first, holdout_positions(60, 0.2, seed=3, phase=1))
    assert not np.array_equal(first, holdout_positions(60, 0.2, seed=3, phase=2))
    assert not np.array_equal(first, holdout_positions(60, 0.2, seed=4, phase=1))
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
