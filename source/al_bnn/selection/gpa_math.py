"""GPA selection math, pure NumPy: greedy batches by Gaussian-process posterior variance.

The kernel is K = G G^T for a factor G (n x r): either centred function samples / sqrt(T)
(the Monte-Carlo covariance, r = T) or the closed-form last-layer features (r = width). Points
0..n_anchor-1 are the anchors (the training set, always conditioned on); the rest is the pool.

Each round takes the `batch_size` pool points of largest posterior variance given the anchors,
the points chosen so far and noise lambda, then conditions on them. The posterior variance does
not depend on labels, so no labels are needed. Two published ways to compute it:

- "batch" (Tsymbalov et al. 2019): every round, a fresh Cholesky solve against the whole
  conditioning set.
- "fast" (the 2021 thesis): the pool's dense posterior covariance once, then a rank-b update
  (Schur complement of the chosen block) per round, never re-inverting.

And one that uses the kernel's low rank r (T samples or the feature width):

- "lowrank": by Woodbury, the posterior variance of pool point p given the set S is
  g_p^T M g_p with M = (I + G_S^T G_S / lambda)^-1, an r x r matrix. Each round updates M and
  every pool variance with a rank-b update: O(n_pool r b) time and O(n r) memory per round; no
  n x n matrix is ever formed.

All three give the same picks in exact arithmetic; ties are broken towards the lowest pool index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve

from al_bnn.selection.posterior import (
    batch_posterior_variance,
    cholesky,
    posterior_middle,
    quadratic_forms,
    top_k,
)
from al_bnn.selection.scaling import check_n_select, rescale, rescale_noise, scale_exponent

METHODS = ("fast", "batch", "lowrank")
_ROW_CHUNK = 2048  # rows of the dense covariance updated at a time (bounds the temporary)


@dataclass
class GreedySelection:
    """Pool indices in pick order and each pick's posterior variance when it was picked."""

    indices: np.ndarray
    variances: np.ndarray


def centred_sample_factor(samples: np.ndarray, dtype=np.float64, exponent: int = 0) -> np.ndarray:
    """(T, n) function samples -> factor G (n, T), C-ordered, with G G^T their covariance (divisor T),
    times 2^-exponent (exact; before the cast to `dtype`, so samples of 1e-200 survive float32).

    Filled in column chunks, so the only large allocation is G itself (pools of a million points).
    """
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (T, n) with T >= 2 function samples, got shape {samples.shape}")
    num_samples, n_points = samples.shape
    mean = samples.mean(axis=0, dtype=np.float64 if exponent else dtype)
    scale = 1.0 / np.sqrt(num_samples)
    factor = np.empty((n_points, num_samples), dtype=dtype)
    for start in range(0, n_points, 65536):
        stop = start + 65536
        if exponent:
            factor[start:stop] = np.ldexp((samples[:, start:stop].T - mean[start:stop, None]) * scale, -exponent)
        else:
            factor[start:stop] = (samples[:, start:stop].T - mean[start:stop, None]) * scale
    return factor


def _validate(factor: np.ndarray, n_anchor: int, n_select: int, batch_size: int, noise: float,
              method: str) -> int:
    if factor.ndim != 2:
        raise ValueError(f"the kernel factor must be 2-D (n, r), got shape {factor.shape}")
    if not np.all(np.isfinite(factor)):
        raise ValueError("function samples / features contain NaN or inf; the model diverged or the "
                         "inputs are not finite")
    n_pool = factor.shape[0] - n_anchor
    if n_anchor < 0 or n_pool < 0:
        raise ValueError(f"n_anchor={n_anchor} must be between 0 and the number of points {factor.shape[0]}")
    check_n_select(n_select, n_pool)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not noise > 0:
        raise ValueError(f"noise must be > 0, got {noise}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return n_pool


def top_by_variance(variance: np.ndarray, taken: np.ndarray, count: int) -> np.ndarray:
    """The `count` untaken entries of largest variance, largest first; ties go to the lowest index (O(n))."""
    return top_k(np.where(taken, -np.inf, variance), count)


def _in_units(selection: GreedySelection, exponent: int) -> GreedySelection:
    """The variances of a selection made on a factor rescaled by 2^-exponent, in the factor's units."""
    if exponent:
        with np.errstate(over="ignore", under="ignore"):  # beyond float64 in those units: inf or 0, as it is
            selection.variances = np.ldexp(np.asarray(selection.variances, dtype=np.float64), 2 * exponent)
    return selection


def select_gpa_from_factor(factor: np.ndarray, n_anchor: int, n_select: int, batch_size: int = 10,
                           noise: float = 0.01, method: str = "fast") -> GreedySelection:
    """Greedy GPA selection for the kernel G G^T; returns pool indices (0 = first pool point).

    n_select: a positive integer, at most the pool size. Scale: a factor far from 1 (kernel values
    that under- or overflow) is rescaled by a power of two and the noise alike, so c G with noise
    c^2 noise picks what G with noise does (al_bnn.selection.scaling); variances in G's units."""
    factor = np.asarray(factor)
    n_pool = _validate(factor, n_anchor, n_select, batch_size, noise, method)
    n_select = int(n_select)
    exponent = scale_exponent(factor) if np.issubdtype(factor.dtype, np.floating) else 0
    factor = rescale(factor, exponent)
    noise = rescale_noise(noise, exponent, factor.shape[1])
    if method == "batch":
        return _in_units(_select_batch(lambda round_index: factor, n_anchor, n_pool, n_select, batch_size, noise),
                         exponent)
    if method == "lowrank":
        return _in_units(_select_lowrank(factor, n_anchor, n_pool, n_select, batch_size, noise), exponent)
    return _in_units(_select_fast(factor, n_anchor, n_pool, n_select, batch_size, noise), exponent)


def select_gpa(samples: np.ndarray, n_anchor: int, n_select: int, batch_size: int = 10,
               noise: float = 0.01, method: str = "fast", dtype=np.float64) -> np.ndarray:
    """GPA on a (T, n_anchor + n_pool) sample matrix, anchor columns first; samples are centred
    per point inside. Returns n_select unique pool indices in pick order. Samples far from 1 are
    rescaled by a power of two, and the noise alike (al_bnn.selection.scaling)."""
    exponent = sample_scale_exponent(samples, dtype)
    factor = centred_sample_factor(samples, dtype, exponent)
    noise = rescale_noise(noise, exponent, factor.shape[1]) if noise > 0 else noise  # (a bad noise: _validate says)
    return select_gpa_from_factor(factor, n_anchor, n_select, batch_size, noise, method).indices


def sample_scale_exponent(samples: np.ndarray, dtype=np.float64) -> int:
    """The power of two to divide function samples by before their factor is cast to `dtype`
    (al_bnn.selection.scaling.scale_exponent of the samples; 0 for samples in its safe range)."""
    samples = np.asarray(samples)
    if not np.issubdtype(samples.dtype, np.floating) or not np.all(np.isfinite([samples.min(initial=0),
                                                                                 samples.max(initial=0)])):
        return 0  # integers, or NaN/inf: _validate names the problem
    return scale_exponent(samples, dtype)


def select_gpa_batch_resampled(factor_for_round, n_anchor: int, n_select: int, batch_size: int = 10,
                               noise: float = 0.01) -> GreedySelection:
    """Batch GPA with a fresh kernel factor every round: factor_for_round(r) -> (n, rank) for round
    r = 0, 1, ... (the thesis's batch GPA redrew the function samples every round)."""
    first = np.asarray(factor_for_round(0))
    n_pool = _validate(first, n_anchor, n_select, batch_size, noise, "batch")
    exponent = scale_exponent(first) if np.issubdtype(first.dtype, np.floating) else 0  # one unit for every round
    noise = rescale_noise(noise, exponent, first.shape[1])
    first = rescale(first, exponent)
    return _in_units(_select_batch(lambda r: first if r == 0 else rescale(np.asarray(factor_for_round(r)), exponent),
                                   n_anchor, n_pool, int(n_select), batch_size, noise), exponent)


def _select_batch(factor_for_round, n_anchor, n_pool, n_select, batch_size, noise) -> GreedySelection:
    taken = np.zeros(n_pool, dtype=bool)
    picks: list[int] = []
    variances: list[float] = []
    round_index = 0
    while len(picks) < n_select:
        conditioning = np.concatenate([np.arange(n_anchor), n_anchor + np.asarray(picks, dtype=int)])
        factor = factor_for_round(round_index)
        variance = batch_posterior_variance(factor, conditioning.astype(int), noise)[n_anchor:]
        chosen = top_by_variance(variance, taken, min(batch_size, n_select - len(picks)))
        taken[chosen] = True
        picks.extend(chosen.tolist())
        variances.extend(variance[chosen].tolist())
        round_index += 1
    return GreedySelection(np.asarray(picks, dtype=np.int64), np.asarray(variances))


def dense_pool_posterior_covariance(factor: np.ndarray, n_anchor: int, noise: float) -> np.ndarray:
    """The pool's n_pool x n_pool posterior covariance given the anchors (the fast method's state).

    Computed as G_P (I - G_A^T (G_A G_A^T + lambda I)^-1 G_A) G_P^T, which is the same matrix as
    K_PP - K_PA (K_AA + lambda I)^-1 K_AP without forming K_PA.
    """
    pool_factor = factor[n_anchor:]
    rank = factor.shape[1]
    middle = np.eye(rank, dtype=factor.dtype)
    if n_anchor:
        anchor_factor = factor[:n_anchor]
        kernel = anchor_factor @ anchor_factor.T
        kernel[np.diag_indices_from(kernel)] += noise
        lower = cholesky(kernel, "the anchor kernel (K_AA + noise I)")
        middle -= anchor_factor.T @ cho_solve((lower, True), anchor_factor)
    # One n_pool x n_pool allocation; the rounds only read its diagonal and the chosen columns.
    return pool_factor @ (middle @ pool_factor.T)


def _select_fast(factor, n_anchor, n_pool, n_select, batch_size, noise) -> GreedySelection:
    covariance = dense_pool_posterior_covariance(factor, n_anchor, noise)
    taken = np.zeros(n_pool, dtype=bool)
    picks: list[int] = []
    variances: list[float] = []
    while len(picks) < n_select:
        variance = np.diag(covariance).copy()
        chosen = top_by_variance(variance, taken, min(batch_size, n_select - len(picks)))
        taken[chosen] = True
        picks.extend(chosen.tolist())
        variances.extend(variance[chosen].tolist())
        if len(picks) == n_select:
            break
        # Condition on the chosen block B: Sigma <- Sigma - Sigma_:B (Sigma_BB + lambda I)^-1 Sigma_B:
        columns = covariance[:, chosen].copy()  # (n_pool, b)
        block = columns[chosen] + noise * np.eye(len(chosen), dtype=covariance.dtype)
        weights = cho_solve((cholesky(block, "the chosen block (Sigma_BB + noise I)"), True), columns.T)
        for start in range(0, n_pool, _ROW_CHUNK):
            rows = slice(start, start + _ROW_CHUNK)
            covariance[rows] -= columns[rows] @ weights
    return GreedySelection(np.asarray(picks, dtype=np.int64), np.asarray(variances))


def _is_positive_definite(matrix: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def _select_lowrank(factor, n_anchor, n_pool, n_select, batch_size, noise) -> GreedySelection:
    """Greedy GPA in feature space, with lazily refreshed pool variances.

    Conditioning never raises a posterior variance, so a variance computed in an earlier round is
    an upper bound on the current one. Each round therefore recomputes g_p^T M g_p exactly only for
    the pool points whose stale bound could still reach the top `batch_size` (usually a few
    thousand), instead of updating all n_pool of them: O(n r^2) once, then O(m r^2) per round for
    m refreshed points, and one O(n) partition. The picks are those of the eager update.
    """
    pool_factor = factor[n_anchor:]
    middle = posterior_middle(factor[:n_anchor], noise)  # M given the anchors
    bound = quadratic_forms(pool_factor, middle)  # exact now; an upper bound later
    taken = np.zeros(n_pool, dtype=bool)
    picks: list[int] = []
    variances: list[float] = []
    while len(picks) < n_select:
        count = min(batch_size, n_select - len(picks))
        chosen = _top_with_fresh_values(bound, taken, count, pool_factor, middle, first_round=not picks)
        taken[chosen] = True
        picks.extend(chosen.tolist())
        variances.extend(bound[chosen].tolist())
        if len(picks) == n_select:
            break
        # Condition on block B: with U = G_B M and C = lambda I + U G_B^T = L L^T,
        # M <- M - U^T C^-1 U = M - V^T V with V = L^-1 U.
        block = pool_factor[chosen]
        projected = block @ middle  # U, (b, r)
        coupling = projected @ block.T
        coupling = (coupling + coupling.T) / 2
        coupling[np.diag_indices_from(coupling)] += noise
        # NumPy's own LAPACK here, not SciPy's: alternating two OpenBLAS thread pools in a hot loop
        # makes each wait for the other's spinning threads (measured: 3x slower rounds).
        whitened = np.linalg.solve(cholesky(coupling, "the coupling block (noise I + U G_B^T)"), projected)
        middle = middle - whitened.T @ whitened
        if not _is_positive_definite(middle):
            # Rounding has made M indefinite (many near-duplicate picks in float32, say):
            # recompute it from all points conditioned on so far.
            conditioned = np.concatenate([factor[:n_anchor], pool_factor[np.asarray(picks)]])
            middle = posterior_middle(conditioned, noise)
    return GreedySelection(np.asarray(picks, dtype=np.int64), np.asarray(variances))


def _top_with_fresh_values(bound: np.ndarray, taken: np.ndarray, count: int, pool_factor: np.ndarray,
                           middle: np.ndarray, first_round: bool) -> np.ndarray:
    """The `count` untaken points of largest current variance, refreshing `bound` where needed.

    Refreshes the points with the largest stale bounds until the count-th largest fresh value is at
    least every unrefreshed bound; then no unrefreshed point can beat (or tie ahead of) the picks.
    """
    if first_round:  # bounds are exact given the anchors
        return top_by_variance(bound, taken, count)
    candidates = np.where(taken, -np.inf, bound)
    n_open = int(len(candidates) - taken.sum())
    size = min(max(64 * count, 2048), n_open)
    while True:
        if size >= n_open:
            refresh = np.flatnonzero(~taken)
        else:
            refresh = np.argpartition(candidates, len(candidates) - size)[len(candidates) - size:]
        threshold = candidates[refresh].min()  # every unrefreshed open point has bound <= threshold
        rows = pool_factor[refresh]
        fresh = np.einsum("ij,ij->i", rows @ middle, rows)
        bound[refresh] = fresh
        candidates[refresh] = fresh
        order = np.lexsort((refresh, -fresh))  # by value, ties to the lowest index
        if size >= n_open or fresh[order[count - 1]] > threshold:
            return refresh[order[:count]]
        size = min(2 * size, n_open)
