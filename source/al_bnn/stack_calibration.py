"""Calibrated uncertainty in the simulated active-learning loop (config `train_schedule.calibration`).

The estimators calibrate each fit (models.estimators, `calibration="holdout"`); this is the same
recipe for a stack of K runs after a training phase: every run holds out a keyed share of its
own training rows, a fresh copy of the stack (same build, same seeds) trains on the kept rows,
and the variance scales std^2 = a epistemic^2 + b aleatoric^2 (models.calibration) are fitted on
each run's held-out residuals, then applied to the phase's final model, which trained on all
rows. The copy is a separate model: the phase's model, its training and its selection are
unchanged (see `record_phase_calibration` for why selection stays on the raw model).

Only training rows are read here: the test arrays never reach the copy or the fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from al_bnn.checkpoint import RAW_COLUMNS, SCALE_COLUMNS
from al_bnn.data import RegressionData
from al_bnn.models import build_model_and_trainer
from al_bnn.models.calibration import CALIBRATION_MIN_ROWS, VarianceScales, fit_variance_scales, holdout_positions
from al_bnn.models.trainer import CENTRAL_90_Z, stack_training_sets

logger = logging.getLogger("al_bnn")


class _Predicting(Protocol):
    """What is read of a model here: its predictive mean and stds (the models' `predict`)."""

    dtype: Any

    def predict(self, x: Any) -> tuple[Any, Any, Any]: ...


def predictions(network: _Predicting, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, epistemic and aleatoric std of every run at its own x (K, n, d): (K, n) float64 each,
    in the standardised target units the network trains in."""
    from al_bnn.models.tensorflow_setup import tf

    mean, epistemic, aleatoric = network.predict(tf.convert_to_tensor(x, network.dtype))
    return tuple(np.asarray(t.numpy(), np.float64) for t in (mean, epistemic, aleatoric))  # type: ignore[return-value]


def fit_stack_scales(config, datas: Sequence[RegressionData], train_sets: Sequence[np.ndarray],
                     seeds: Sequence[int], phase: int) -> list[VarianceScales | None]:
    """One VarianceScales per run of the stack for training phase `phase`, or None for a run that
    cannot be calibrated (fewer than CALIBRATION_MIN_ROWS rows, or a copy whose predictions are
    not finite: then its raw metrics stand, and a warning says so).

    The copy is built as the phase's model (build_model_and_trainer, the runs' seeds, hence the
    same initial weights) and trains the epochs the schedule gives its kept rows (as an estimator's
    calibration copy does), with training draws keyed by the phase: fresh, not warm-started, since
    an earlier phase's weights have seen rows now held out."""
    n_train = len(train_sets[0])
    if n_train < CALIBRATION_MIN_ROWS:
        return [None] * len(train_sets)
    fraction = config.train_schedule.calibration_fraction
    held = [holdout_positions(n_train, fraction, seed, phase) for seed in seeds]
    kept = [np.setdiff1d(np.arange(n_train), rows) for rows in held]
    train_x, train_y = stack_training_sets(datas, [indices[k] for indices, k in zip(train_sets, kept, strict=True)])
    held_x, held_y = stack_training_sets(datas, [indices[k] for indices, k in zip(train_sets, held, strict=True)])
    network, trainer = build_model_and_trainer(config, train_x.shape[2], list(seeds))
    epochs = config.train_schedule.epochs_for(train_x.shape[1])
    # evaluated once, at the end, on the held-out rows (the copy's own validation; nothing else is read)
    trainer.fit(train_x, train_y, held_x, held_y, epochs, epochs, phase=phase)
    mean, epistemic, aleatoric = predictions(network, held_x)
    scales: list[VarianceScales | None] = []
    for k, seed in enumerate(seeds):
        try:
            scales.append(fit_variance_scales(held_y[k] - mean[k], epistemic[k], aleatoric[k]))
        except ValueError as error:
            logger.warning("run with seed %d, phase %d: not calibrated (%s); its raw metrics are recorded", seed,
                           phase, error)
            scales.append(None)
    return scales


class CalibratedMetrics(NamedTuple):
    """Test metrics of one run's model with its variance scales applied."""

    log_likelihood: float  # mean Gaussian log-likelihood, in the units of y
    coverage_90: float     # share of targets inside the central 90% interval


def calibrated_metrics(y: np.ndarray, mean: np.ndarray, epistemic: np.ndarray, aleatoric: np.ndarray,
                       scales: VarianceScales) -> CalibratedMetrics:
    """The trainer's test log-likelihood and 90% coverage (StackedTrainer._evaluate_eager) with the
    std calibrated by `scales` (VarianceScales.apply), in float64; all arrays (n,) in one unit."""
    epistemic, aleatoric = scales.apply(epistemic, aleatoric)
    variance = epistemic**2 + aleatoric**2
    squared_error = (np.asarray(y, np.float64) - np.asarray(mean, np.float64)) ** 2
    log_likelihood = np.mean(-0.5 * squared_error / variance - 0.5 * np.log(2 * np.pi * variance))
    return CalibratedMetrics(float(log_likelihood), float(np.mean(squared_error <= CENTRAL_90_Z**2 * variance)))


class _PhaseResult(Protocol):
    """What record_phase_calibration reads and writes of a run's result (the loop's RunResult)."""

    label: str
    config: Any
    metrics: list[dict]
    acquisitions: list[dict]


def record_phase_calibration(results: Sequence[_PhaseResult], network: _Predicting, config,
                             datas: Sequence[RegressionData], train_sets: Sequence[np.ndarray], phase: int) -> None:
    """After training phase `phase` of a stack (its last evaluation recorded): fit each run's
    variance scales (fit_stack_scales) and rewrite the phase's last metrics row with the calibrated
    test_log_likelihood and test_coverage_90, keeping the raw ones as test_log_likelihood_raw and
    test_coverage_90_raw, plus calibration_epistemic / calibration_aleatoric (the scales a, b; NaN
    when the run was not calibrated) and calibration_rows (held-out rows, 0 when not calibrated).
    The seconds it took go to the phase's acquisitions row as calibration_seconds.

    Selection keeps reading the raw model. The kernels it reads are epistemic only (function
    samples, last-layer or gradient features), so b never enters, and a multiplies the whole
    kernel of a run by one number: rules that compare kernel values with each other (top variance,
    distances: maxdiag without conditioning, maxdist, kmeanspp, lcmd, mcdue) pick the same points
    either way; rules that add the fixed gp_noise to the kernel (GPA, maxdet, bait, the `train`
    transform) would see the noise-to-kernel ratio change by 1/a, and gp_noise was chosen for the
    raw kernel. The scales are a function of the training set and the seed, so a resumed phase
    recomputes the same ones (they are also in the saved metrics rows)."""
    started = time.perf_counter()
    rows = [result.metrics[-1] for result in results]
    if any(row["al_iter"] != phase for row in rows):
        raise ValueError(f"the last metrics rows are not phase {phase}'s: {[row['al_iter'] for row in rows]}")
    scales = fit_stack_scales(config, datas, train_sets, [result.config.seed for result in results], phase)
    test_x = np.stack([data.test_x for data in datas])
    mean, epistemic, aleatoric = predictions(network, test_x)
    seconds = time.perf_counter() - started
    for k, (result, row, run_scales, data) in enumerate(zip(results, rows, scales, datas, strict=True)):
        row.update({raw: row[name] for name, raw in RAW_COLUMNS.items()})
        if run_scales is not None:
            metrics = calibrated_metrics(data.test_y, mean[k], epistemic[k], aleatoric[k], run_scales)
            row["test_log_likelihood"] = metrics.log_likelihood - np.log(data.target_scale)
            row["test_coverage_90"] = metrics.coverage_90
        for column, scale in zip(SCALE_COLUMNS, ("epistemic", "aleatoric"), strict=True):
            row[column] = getattr(run_scales, scale) if run_scales is not None else float("nan")
        row["calibration_rows"] = run_scales.n_rows if run_scales is not None else 0
        result.acquisitions[-1]["calibration_seconds"] = seconds
        logger.info("[%s] phase %d calibrated: scales a %.3g, b %.3g; test log-lik %.4f (raw %.4f), 90%% coverage "
                    "%.3f (raw %.3f)", result.label, phase, row["calibration_epistemic"], row["calibration_aleatoric"],
                    row["test_log_likelihood"], row["test_log_likelihood_raw"], row["test_coverage_90"],
                    row["test_coverage_90_raw"])
