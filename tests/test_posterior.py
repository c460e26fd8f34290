"""The one feature-space posterior (al_bnn.selection.posterior) that GPA and the batch family share.

The frozen `_old_*` functions below are the two implementations as they were before issue 33 merged
them (gpa_math's low-rank GPA and family.py), kept here only to show that the shared code computes
bit for bit what each computed, so neither caller's picks move.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from al_bnn.selection import family, gpa_math, posterior
from al_bnn.selection.posterior import (
    batch_posterior_variance,
    cholesky,
    chunked_rows,
    posterior_middle,
    quadratic_forms,
    top_k,
)

# ----------------------------------------------------------------------------- frozen pre-merge copies

def _old_gpa_feature_space_posterior(conditioning_factor, noise):
    rank = conditioning_factor.shape[1]
    precision = conditioning_factor.T @ conditioning_factor
    precision[np.diag_indices(rank)] += noise
    lower_inverse = np.linalg.inv(np.linalg.cholesky(precision))
    return noise * (lower_inverse.T @ lower_inverse)


def _old_family_posterior_middle(conditioning, noise):
    d = conditioning.shape[1]
    precision = conditioning.T @ conditioning
    precision[np.diag_indices(d)] += noise
    lower_inverse = np.linalg.inv(np.linalg.cholesky(precision))
    middle = noise * (lower_inverse.T @ lower_inverse)
    return (middle + middle.T) / 2


def _old_gpa_quadratic_form_rows(factor, middle):
    out = np.empty(factor.shape[0], dtype=np.result_type(factor, middle))
    for start in range(0, factor.shape[0], 65536):
        rows = factor[start:start + 65536]
        out[start:start + 65536] = np.einsum("ij,ij->i", rows @ middle, rows)
    return out


def _old_family_quadratic_forms(rows, middle, dtype=None):
    out = np.empty(len(rows), dtype=dtype or rows.dtype)
    for start in range(0, len(rows), 65536):
        block = rows[start:start + 65536]
        out[start:start + 65536] = np.einsum("ij,ij->i", block @ middle, block)
    return out


def _old_top(values, count):
    if count >= len(values):
        return np.argsort(-values, kind="stable")[:count]
    threshold = np.partition(values, len(values) - count)[len(values) - count]
    eligible = np.flatnonzero(values >= threshold)
    return eligible[np.argsort(-values[eligible], kind="stable")][:count]


def _random_cases(count=50, seed=33):
    rng = np.random.default_rng(seed)
    for case in range(count):
        dtype = (np.float32, np.float64)[case % 2]
        n, d = int(rng.integers(0, 80)), int(rng.integers(1, 30))
        rows = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-2, 1)
        if case % 3 == 0 and n > 1:
            rows[n // 2:] = rows[: n - n // 2]  # duplicate rows: the near-ties of greedy selection
        yield rng, rows.astype(dtype), float(10.0 ** rng.uniform(-4, 0))


# ----------------------------------------------------------------------------- one implementation


def test_gpa_and_the_family_use_the_one_posterior():
    for name in ("cholesky", "posterior_middle", "quadratic_forms", "batch_posterior_variance", "top_k"):
        assert getattr(gpa_math, name, None) in (None, getattr(posterior, name))
    assert gpa_math.posterior_middle is family.posterior_middle is posterior.posterior_middle
    assert gpa_math.quadratic_forms is family.quadratic_forms is posterior.quadratic_forms
    assert gpa_math.cholesky is family.cholesky is posterior.cholesky
    for old in ("_feature_space_posterior", "_quadratic_form_rows"):
        assert not hasattr(gpa_math, old)
    for old in ("_posterior_middle", "_quadratic_forms", "_chunked_rows", "_top_k"):
        assert not hasattr(family, old)


def test_the_shared_middle_equals_both_former_implementations_bit_for_bit():
    for _, rows, noise in _random_cases():
        middle = posterior_middle(rows, noise)
        assert middle.dtype == rows.dtype
        np.testing.assert_array_equal(middle, _old_gpa_feature_space_posterior(rows, noise))
        np.testing.assert_array_equal(middle, _old_family_posterior_middle(rows, noise))
        np.testing.assert_array_equal(middle, middle.T)  # exactly symmetric


def test_the_shared_quadratic_forms_equal_both_former_implementations_bit_for_bit():
    for rng, rows, noise in _random_cases():
        middle = posterior_middle(rng.standard_normal((40, rows.shape[1])).astype(rows.dtype), noise)
        np.testing.assert_array_equal(quadratic_forms(rows, middle), _old_gpa_quadratic_form_rows(rows, middle))
        np.testing.assert_array_equal(quadratic_forms(rows, middle), _old_family_quadratic_forms(rows, middle))
        wide = middle.astype(np.float64)  # bait's float64 state on rows of either dtype
        np.testing.assert_array_equal(quadratic_forms(rows, wide, np.float64),
                                      _old_family_quadratic_forms(rows, wide, np.float64))


def test_top_k_equals_the_former_selections_with_ties_to_the_lowest_index():
    rng = np.random.default_rng(5)
    for _ in range(50):
        values = rng.integers(0, 6, size=int(rng.integers(1, 40))).astype(float)  # many ties
        count = int(rng.integers(1, len(values) + 2))
        np.testing.assert_array_equal(top_k(values, count), _old_top(values, count))
        taken = rng.random(len(values)) < 0.3
        np.testing.assert_array_equal(gpa_math.top_by_variance(values, taken, count),
                                      _old_top(np.where(taken, -np.inf, values), count))
    assert top_k(np.array([1.0, 3.0, 3.0, 2.0]), 2).tolist() == [1, 2]


# ----------------------------------------------------------------------------- the math


@pytest.mark.parametrize("n_conditioning", [0, 3, 25])
def test_the_feature_space_posterior_is_the_kernel_space_posterior(n_conditioning):
    """f^T M f (Woodbury, d x d) equals k(x,x) - k_xS (K_SS + noise I)^-1 k_Sx from an explicit inverse."""
    rng = np.random.default_rng(n_conditioning)
    features, noise = rng.standard_normal((60, 8)), 0.05
    conditioning = np.arange(n_conditioning)
    kernel = features @ features.T
    inverse = np.linalg.inv(kernel[np.ix_(conditioning, conditioning)] + noise * np.eye(n_conditioning))
    textbook = np.diag(kernel) - np.einsum("ij,jk,ki->i", kernel[:, conditioning], inverse,
                                           kernel[conditioning, :])
    via_middle = quadratic_forms(features, posterior_middle(features[conditioning], noise))
    np.testing.assert_allclose(via_middle, textbook, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batch_posterior_variance(features, conditioning, noise), textbook,
                               rtol=1e-10, atol=1e-12)


def test_chunked_rows_cover_every_row_once():
    assert [(part.start, part.stop) for part in chunked_rows(5, 2)] == [(0, 2), (2, 4), (4, 5)]
    assert list(chunked_rows(0)) == []


def test_cholesky_adds_logged_jitter_to_a_matrix_rounding_made_indefinite(caplog):
    matrix = np.ones((3, 3)) - 1e-14 * np.eye(3)  # rank one, pushed just below positive semi-definite
    with caplog.at_level(logging.WARNING, logger="al_bnn.samplers"):
        lower = cholesky(matrix, "the test matrix")
    assert "the test matrix was not positive definite" in caplog.text and "added jitter" in caplog.text
    np.testing.assert_allclose(lower @ lower.T, matrix, atol=1e-8)


def test_cholesky_names_the_matrix_when_no_jitter_helps():
    with pytest.raises(np.linalg.LinAlgError, match="the test matrix is not positive definite even with jitter"):
        cholesky(-np.eye(2), "the test matrix")
