"""Variance recalibration (al_bnn.models.calibration): the fitted scales correct over- and
under-confident stds toward the coverage the data have, on synthetic residuals with a known answer."""

import numpy as np
import pytest
from scipy import stats

from al_bnn.models.calibration import VarianceScales, fit_variance_scales, holdout_rows

Z90 = stats.norm.ppf(0.95)


def _coverage(residual, epistemic, aleatoric, scales=VarianceScales()):
    e, a = scales.apply(epistemic, aleatoric)
    return float(np.mean(np.abs(residual) <= Z90 * np.sqrt(e**2 + a**2)))


def _heteroscedastic(n, seed):
    """Residuals whose true std is sqrt(4 e^2 + 0.25 u^2): the model's epistemic part is half the
    truth and its aleatoric part twice it, with the two varying independently over the rows."""
    rng = np.random.default_rng(seed)
    epistemic = rng.uniform(0.1, 2.0, n)
    aleatoric = rng.uniform(0.1, 2.0, n)
    residual = rng.normal(size=n) * np.sqrt(4.0 * epistemic**2 + 0.25 * aleatoric**2)
    return residual, epistemic, aleatoric


def test_the_fitted_scales_recover_the_true_ones_and_the_coverage():
    residual, epistemic, aleatoric = _heteroscedastic(20000, 0)
    scales = fit_variance_scales(residual, epistemic, aleatoric)
    assert scales.epistemic == pytest.approx(4.0, rel=0.1) and scales.aleatoric == pytest.approx(0.25, rel=0.15)
    fresh = _heteroscedastic(20000, 1)  # fitted on one sample, checked on another
    assert abs(_coverage(*fresh) - 0.9) > 0.03  # the raw stds are off ...
    assert _coverage(*fresh, scales) == pytest.approx(0.9, abs=0.01)  # ... the calibrated ones are not
    assert scales.log_likelihood_after > scales.log_likelihood_before


def test_an_over_confident_model_is_widened_toward_ninety_percent():
    """Stds a fifth of the truth (a noise head that collapsed on memorised targets)."""
    rng = np.random.default_rng(2)
    epistemic, aleatoric = rng.uniform(0.01, 0.1, 400), rng.uniform(0.01, 0.1, 400)
    truth = 5.0 * np.sqrt(epistemic**2 + aleatoric**2)
    residual = rng.normal(size=400) * truth
    scales = fit_variance_scales(residual[:200], epistemic[:200], aleatoric[:200])  # 200 held-out rows
    before = _coverage(residual[200:], epistemic[200:], aleatoric[200:])
    after = _coverage(residual[200:], epistemic[200:], aleatoric[200:], scales)
    assert before < 0.5 and 0.8 <= after <= 0.97


def test_scales_do_not_depend_on_the_target_units():
    residual, epistemic, aleatoric = _heteroscedastic(2000, 3)
    base = fit_variance_scales(residual, epistemic, aleatoric)
    for unit in (1e-120, 1e-3, 1e5, 1e120):
        scaled = fit_variance_scales(residual * unit, epistemic * unit, aleatoric * unit)
        assert scaled.epistemic == pytest.approx(base.epistemic, rel=1e-6)
        assert scaled.aleatoric == pytest.approx(base.aleatoric, rel=1e-6)


def test_bad_held_out_data_are_refused():
    with pytest.raises(ValueError, match="at least two"):
        fit_variance_scales(np.ones(1), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="finite"):
        fit_variance_scales(np.array([1.0, np.nan]), np.ones(2), np.ones(2))


def test_holdout_rows_are_a_keyed_share_never_more_than_half():
    rows = holdout_rows(1000, 0.2, np.random.default_rng(0))
    assert len(rows) == 200 and len(np.unique(rows)) == 200 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, holdout_rows(1000, 0.2, np.random.default_rng(0)))
    assert len(holdout_rows(30, 0.2, np.random.default_rng(0))) == 15  # the minimum of 20, capped at half
