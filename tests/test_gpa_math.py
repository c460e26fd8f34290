"""GPA selection math: fast == batch, against an independent dense reference, on float64 samples."""

import numpy as np
import pytest

from al_bnn.selection import select_gpa, select_gpa_from_factor
from al_bnn.selection.gpa_math import batch_posterior_variance, centred_sample_factor, dense_pool_posterior_covariance


def random_samples(seed, num_samples, n_points):
    """Function samples with real correlation between points (a random low-rank process)."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n_points, 3))
    weights = rng.normal(size=(3, num_samples))
    return (np.tanh(inputs @ weights) + 0.1 * rng.normal(size=(n_points, num_samples))).T


def reference_selection(samples, n_anchor, n_select, batch_size, noise):
    """Textbook greedy GPA with an explicit matrix inverse: the independent check."""
    kernel = np.cov(samples.T, bias=True)
    n_pool = samples.shape[1] - n_anchor
    picks = []
    while len(picks) < n_select:
        conditioning = list(range(n_anchor)) + [n_anchor + p for p in picks]
        pool = np.arange(n_anchor, n_anchor + n_pool)
        if conditioning:
            inverse = np.linalg.inv(kernel[np.ix_(conditioning, conditioning)] + noise * np.eye(len(conditioning)))
            cross = kernel[np.ix_(pool, conditioning)]
            variance = np.diag(kernel)[pool] - np.einsum("ij,jk,ik->i", cross, inverse, cross)
        else:
            variance = np.diag(kernel)[pool].copy()
        variance[picks] = -np.inf
        order = np.argsort(-variance, kind="stable")
        picks.extend(order[: min(batch_size, n_select - len(picks))].tolist())
    return np.array(picks)


CASES = [  # (seed, T, n_anchor, n_pool, n_select, batch_size)
    (0, 50, 20, 80, 30, 10),
    (1, 100, 50, 200, 47, 10),   # n_select not a multiple of the batch size
    (2, 30, 10, 60, 25, 1),
    (3, 100, 0, 120, 33, 7),     # no anchors
    (4, 20, 40, 70, 70, 10),     # select the whole pool
]


@pytest.mark.parametrize("seed,num_samples,n_anchor,n_pool,n_select,batch_size", CASES)
def test_fast_batch_and_lowrank_pick_the_same_points_as_the_reference(seed, num_samples, n_anchor, n_pool, n_select,
                                                              batch_size):
    samples = random_samples(seed, num_samples, n_anchor + n_pool)
    factor = centred_sample_factor(samples)
    fast = select_gpa_from_factor(factor, n_anchor, n_select, batch_size, 0.01, "fast")
    batch = select_gpa_from_factor(factor, n_anchor, n_select, batch_size, 0.01, "batch")
    lowrank = select_gpa_from_factor(factor, n_anchor, n_select, batch_size, 0.01, "lowrank")
    np.testing.assert_array_equal(fast.indices, batch.indices)
    np.testing.assert_array_equal(lowrank.indices, batch.indices)
    np.testing.assert_allclose(fast.variances, batch.variances, rtol=1e-8, atol=0)
    np.testing.assert_allclose(lowrank.variances, batch.variances, rtol=1e-8, atol=0)
    np.testing.assert_array_equal(fast.indices, reference_selection(samples, n_anchor, n_select, batch_size, 0.01))
    assert len(np.unique(fast.indices)) == n_select
    assert fast.indices.min() >= 0 and fast.indices.max() < n_pool


def test_select_gpa_returns_pool_indices_for_both_methods():
    samples = random_samples(5, 40, 100)
    fast = select_gpa(samples, n_anchor=30, n_select=15, method="fast")
    batch = select_gpa(samples, n_anchor=30, n_select=15, method="batch")
    np.testing.assert_array_equal(fast, batch)
    np.testing.assert_array_equal(select_gpa(samples, n_anchor=30, n_select=15, method="lowrank"), batch)
    assert fast.dtype == np.int64 and fast.shape == (15,)


def test_posterior_variance_of_a_conditioned_point_drops_to_the_noise_level():
    samples = random_samples(6, 200, 30)
    factor = centred_sample_factor(samples)
    noise = 0.01
    prior = batch_posterior_variance(factor, np.array([], dtype=int), noise)
    after = batch_posterior_variance(factor, np.array([7]), noise)
    # Conditioning on a noisy observation of point 7 leaves k * noise / (k + noise) < noise.
    assert after[7] == pytest.approx(prior[7] * noise / (prior[7] + noise), rel=1e-10)
    assert after[7] < noise < prior[7]
    assert np.all(after <= prior + 1e-12)


def test_dense_posterior_covariance_matches_the_textbook_formula():
    samples = random_samples(7, 60, 50)
    factor = centred_sample_factor(samples)
    kernel = factor @ factor.T
    anchors, pool = np.arange(20), np.arange(20, 50)
    inverse = np.linalg.inv(kernel[np.ix_(anchors, anchors)] + 0.05 * np.eye(20))
    expected = kernel[np.ix_(pool, pool)] - kernel[np.ix_(pool, anchors)] @ inverse @ kernel[np.ix_(anchors, pool)]
    np.testing.assert_allclose(dense_pool_posterior_covariance(factor, 20, 0.05), expected, atol=1e-10)


def test_ties_go_to_the_lowest_pool_index():
    samples = np.tile(random_samples(8, 30, 1), (1, 12))  # 12 identical points
    for method in ("fast", "batch", "lowrank"):
        assert select_gpa(samples, n_anchor=0, n_select=3, batch_size=3, method=method).tolist() == [0, 1, 2]


@pytest.mark.parametrize("method", ["fast", "batch", "lowrank"])
def test_bad_requests_fail_clearly(method):
    samples = random_samples(9, 20, 30)
    with pytest.raises(ValueError, match="cannot select 21 points from a pool of 20"):
        select_gpa(samples, n_anchor=10, n_select=21, method=method)
    with pytest.raises(ValueError, match="T >= 2"):
        select_gpa(samples[:1], n_anchor=10, n_select=2, method=method)
    with pytest.raises(ValueError, match="NaN or inf"):
        select_gpa(np.where(samples > 0.5, np.nan, samples), n_anchor=10, n_select=2, method=method)
    with pytest.raises(ValueError, match="noise must be > 0"):
        select_gpa(samples, n_anchor=10, n_select=2, noise=0.0, method=method)
    with pytest.raises(ValueError, match="method must be one of"):
        select_gpa(samples, n_anchor=10, n_select=2, method="slow")
    with pytest.raises(ValueError, match="n_select must be a positive integer, got 0"):
        select_gpa(samples, n_anchor=10, n_select=0, method=method)


def test_lowrank_recomputes_from_scratch_when_its_matrix_loses_definiteness(monkeypatch):
    from al_bnn.selection import gpa_math
    samples = random_samples(10, 40, 150)
    expected = select_gpa(samples, n_anchor=30, n_select=37, batch_size=5, method="batch")
    monkeypatch.setattr(gpa_math, "_is_positive_definite", lambda matrix: False)  # force the guard every round
    np.testing.assert_array_equal(select_gpa(samples, n_anchor=30, n_select=37, batch_size=5, method="lowrank"),
                                  expected)


def test_float32_path_agrees_with_float64_on_the_first_picks():
    samples = random_samples(11, 100, 600)
    factor64 = centred_sample_factor(samples, np.float64)
    factor32 = centred_sample_factor(samples, np.float32)
    assert factor32.dtype == np.float32
    exact = select_gpa_from_factor(factor64, 100, 40, 10, 0.01, "lowrank")
    for method in ("lowrank", "fast", "batch"):
        single = select_gpa_from_factor(factor32, 100, 40, 10, 0.01, method)
        assert len(np.unique(single.indices)) == 40
        # The first round has no accumulated rounding: same set of picks, variances to float32 accuracy.
        assert set(single.indices[:10]) == set(exact.indices[:10])
        np.testing.assert_allclose(np.sort(single.variances[:10]), np.sort(exact.variances[:10]), rtol=1e-4)


def test_exact_kernel_features_drive_the_same_selection():
    rng = np.random.default_rng(12)
    features = rng.normal(size=(200, 16)) * rng.uniform(0.1, 1.0, size=16)  # a width-16 kernel
    reference = reference_selection_from_kernel(features @ features.T, 50, 30, 10, 0.01)
    for method in ("fast", "batch", "lowrank"):
        np.testing.assert_array_equal(select_gpa_from_factor(features, 50, 30, 10, 0.01, method).indices, reference)


def reference_selection_from_kernel(kernel, n_anchor, n_select, batch_size, noise):
    picks = []
    pool = np.arange(n_anchor, kernel.shape[0])
    while len(picks) < n_select:
        conditioning = list(range(n_anchor)) + [n_anchor + p for p in picks]
        inverse = np.linalg.inv(kernel[np.ix_(conditioning, conditioning)] + noise * np.eye(len(conditioning)))
        cross = kernel[np.ix_(pool, conditioning)]
        variance = np.diag(kernel)[pool] - np.einsum("ij,jk,ik->i", cross, inverse, cross)
        variance[picks] = -np.inf
        picks.extend(np.argsort(-variance, kind="stable")[: min(batch_size, n_select - len(picks))].tolist())
    return np.array(picks)


def test_mcdue_takes_the_pool_points_of_largest_sample_variance():
    from al_bnn.selection import McdueSampler, SelectionRequest
    samples = random_samples(13, 50, 90)
    request = SelectionRequest(n_select=12, n_train=30, n_pool=60, rng=np.random.default_rng(0),
                               draw_samples=lambda draw: samples)
    picks = McdueSampler().select(request)
    variance = samples[:, 30:].var(axis=0)
    np.testing.assert_array_equal(picks, np.argsort(-variance, kind="stable")[:12])


def test_batch_gpa_with_a_fresh_factor_per_round():
    from al_bnn.selection.gpa_math import select_gpa_batch_resampled
    factor = centred_sample_factor(random_samples(14, 30, 120))
    same = select_gpa_batch_resampled(lambda r: factor, 20, 23, 5, 0.01)
    np.testing.assert_array_equal(same.indices, select_gpa_from_factor(factor, 20, 23, 5, 0.01, "batch").indices)
    rounds = []
    factors = [centred_sample_factor(random_samples(15 + r, 30, 120)) for r in range(5)]

    def factor_for_round(r):
        rounds.append(r)
        return factors[r]

    redrawn = select_gpa_batch_resampled(factor_for_round, 20, 23, 5, 0.01)
    assert rounds == [0, 1, 2, 3, 4] and len(set(redrawn.indices.tolist())) == 23  # 5 rounds for 23 picks
    # Each round's picks are the top of that round's own posterior variance.
    conditioning = np.concatenate([np.arange(20), 20 + redrawn.indices[:10]])
    variance = batch_posterior_variance(factors[2], conditioning, 0.01)[20:]
    variance[redrawn.indices[:10]] = -np.inf
    np.testing.assert_array_equal(np.sort(redrawn.indices[10:15]), np.sort(np.argsort(-variance)[:5]))
