"""Variance recalibration: the predictive variance as a scaled sum of the model's two parts,

    std^2 = a * epistemic^2 + b * aleatoric^2,   a, b > 0,

with (a, b) chosen to maximise the Gaussian log-likelihood of residuals the model did not train on
(a held-out share of the training data). Why two scales and not one: the two parts fail in different
ways. When the mean memorises a small training set, the noise head learns noise near zero and the
intervals become far too narrow (b must grow); when the data are nearly noise-free, the weight
posterior can stay wider than the errors it should describe (a must shrink). One scale cannot fix
both. A weak log-normal prior on a and b keeps the fit stable on held-out sets of a few dozen rows.

Pure NumPy/SciPy: no TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from al_bnn.randomness import numpy_generator

PRIOR_LOG_STD = 3.0      # on log a and log b: a factor of e^3 ~ 20 in either direction is one prior std
MIN_VARIANCE = 1e-300    # keeps log() finite where both parts underflow
CALIBRATION_MIN_ROWS = 20  # below this many training rows a fit is not calibrated (too few held-out residuals)


@dataclass(frozen=True)
class VarianceScales:
    """The fitted scales and what they were fitted on."""

    epistemic: float = 1.0
    aleatoric: float = 1.0
    n_rows: int = 0
    log_likelihood_before: float = float("nan")   # mean held-out Gaussian LL, unscaled variance
    log_likelihood_after: float = float("nan")    # the same with the fitted scales

    def apply(self, epistemic_std: np.ndarray, aleatoric_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated (epistemic, aleatoric) std; their root sum of squares is the total std."""
        return (np.sqrt(self.epistemic) * np.asarray(epistemic_std, np.float64),
                np.sqrt(self.aleatoric) * np.asarray(aleatoric_std, np.float64))

    def as_dict(self) -> dict:
        return {"epistemic": self.epistemic, "aleatoric": self.aleatoric, "n_rows": self.n_rows,
                "log_likelihood_before": self.log_likelihood_before,
                "log_likelihood_after": self.log_likelihood_after}


def _mean_log_likelihood(residual: np.ndarray, variance: np.ndarray) -> float:
    variance = np.maximum(variance, MIN_VARIANCE)
    return float(np.mean(-0.5 * (np.log(2 * np.pi * variance) + residual**2 / variance)))


def fit_variance_scales(residual: np.ndarray, epistemic_std: np.ndarray, aleatoric_std: np.ndarray) -> VarianceScales:
    """(a, b) maximising the mean Gaussian log-likelihood of `residual` (held-out y - mean) under
    variance a e^2 + b u^2, plus the weak prior; every input is (n,) in the same units."""
    residual, e2, u2 = (np.asarray(v, np.float64).ravel() for v in (residual, epistemic_std, aleatoric_std))
    e2, u2 = e2**2, u2**2
    if not (len(residual) == len(e2) == len(u2)) or len(residual) < 2:
        raise ValueError(f"need at least two held-out rows with matching residuals and stds, got {len(residual)}")
    if not (np.all(np.isfinite(residual)) and np.all(np.isfinite(e2)) and np.all(np.isfinite(u2))):
        raise ValueError("held-out residuals and stds must be finite to calibrate")
    # Work in units of the residuals' RMS so the optimiser sees numbers near 1 at any target scale.
    unit = float(np.sqrt(np.mean(residual**2))) or 1.0
    r2, e2, u2 = (residual / unit) ** 2, e2 / unit**2, u2 / unit**2
    n = len(r2)

    def objective(log_scales: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = np.exp(log_scales)
        variance = np.maximum(a * e2 + b * u2, MIN_VARIANCE)
        ratio = r2 / variance
        # d/dlog a of sum 0.5 (log v + r^2 / v) = 0.5 * a e^2 (1/v - r^2/v^2)
        weight = 0.5 * (1.0 - ratio) / variance
        gradient = np.array([np.sum(weight * a * e2), np.sum(weight * b * u2)])
        value = 0.5 * np.sum(np.log(variance) + ratio)
        value += 0.5 * np.sum(log_scales**2) / PRIOR_LOG_STD**2
        gradient += log_scales / PRIOR_LOG_STD**2
        return float(value / n), gradient / n

    best = optimize.minimize(objective, np.zeros(2), jac=True, method="L-BFGS-B", bounds=[(-30.0, 30.0)] * 2)
    a, b = (float(v) for v in np.exp(best.x))
    return VarianceScales(a, b, n, _mean_log_likelihood(residual, (e2 + u2) * unit**2),
                          _mean_log_likelihood(residual, (a * e2 + b * u2) * unit**2))


def holdout_rows(n_rows: int, fraction: float, generator: np.random.Generator, minimum: int = 20) -> np.ndarray:
    """A random held-out set of rows (sorted) for calibration: `fraction` of them, at least `minimum`
    (but never more than half)."""
    size = min(max(int(round(fraction * n_rows)), minimum), n_rows // 2)
    return np.sort(generator.choice(n_rows, size=size, replace=False))


def holdout_positions(n_rows: int, fraction: float, seed: int, fit: int) -> np.ndarray:
    """The rows (sorted positions) held out for calibration in fit number `fit` of the run or
    estimator seeded `seed`: keyed by (seed, "calibration", fit), so a refit, a resumed phase or a
    replay holds out the same rows, and their number depends on n_rows only (equal across a stack,
    whose runs have equal sizes). At least half of CALIBRATION_MIN_ROWS rows, at most half the rows."""
    return holdout_rows(n_rows, fraction, numpy_generator(seed, "calibration", fit), minimum=CALIBRATION_MIN_ROWS // 2)
