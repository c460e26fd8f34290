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

Both give the same picks in exact arithmetic; ties are broken towards the lowest pool index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular

METHODS = ("fast", "batch")
_ROW_CHUNK = 2048  # rows of the dense covariance updated at a time (bounds the temporary)


@dataclass
class GreedySelection:
    """Pool indices in pick order and each pick's posterior variance when it was picked."""

    indices: np.ndarray
    variances: np.ndarray


def centred_sample_factor(samples: np.ndarray, dtype=np.float64) -> np.ndarray:
    """(T, n) function samples -> factor G (n, T) with G G^T their covariance (divisor T)."""
    samples = np.asarray(samples, dtype=dtype)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (T, n) with T >= 2 function samples, got shape {samples.shape}")
    centred = samples - samples.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(centred.T) / np.sqrt(samples.shape[0], dtype=dtype)


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
    if n_select < 0 or n_select > n_pool:
        raise ValueError(f"cannot select {n_select} points from a pool of {n_pool}; request at most {n_pool}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not noise > 0:
        raise ValueError(f"noise must be > 0, got {noise}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return n_pool


def top_by_variance(variance: np.ndarray, taken: np.ndarray, count: int) -> np.ndarray:
    """The `count` untaken entries of largest variance; ties go to the lowest index."""
    candidates = np.where(taken, -np.inf, variance)
    return np.argsort(-candidates, kind="stable")[:count]


def batch_posterior_variance(factor: np.ndarray, conditioning: np.ndarray, noise: float) -> np.ndarray:
    """Posterior variance of every point given the points `conditioning`, by a fresh Cholesky solve."""
    prior_variance = np.einsum("ij,ij->i", factor, factor)
    if len(conditioning) == 0:
        return prior_variance
    conditioning_factor = factor[conditioning]
    kernel = conditioning_factor @ conditioning_factor.T
    kernel[np.diag_indices_from(kernel)] += noise
    lower = np.linalg.cholesky(kernel)
    cross = solve_triangular(lower, conditioning_factor @ factor.T, lower=True)  # (|S|, n)
    return prior_variance - np.einsum("ij,ij->j", cross, cross)


def select_gpa_from_factor(factor: np.ndarray, n_anchor: int, n_select: int, batch_size: int = 10,
                           noise: float = 0.01, method: str = "fast") -> GreedySelection:
    """Greedy GPA selection for the kernel G G^T; returns pool indices (0 = first pool point)."""
    factor = np.asarray(factor)
    n_pool = _validate(factor, n_anchor, n_select, batch_size, noise, method)
    if method == "batch":
        return _select_batch(factor, n_anchor, n_pool, n_select, batch_size, noise)
    return _select_fast(factor, n_anchor, n_pool, n_select, batch_size, noise)


def select_gpa(samples: np.ndarray, n_anchor: int, n_select: int, batch_size: int = 10,
               noise: float = 0.01, method: str = "fast", dtype=np.float64) -> np.ndarray:
    """GPA on a (T, n_anchor + n_pool) sample matrix, anchor columns first; samples are centred
    per point inside. Returns n_select unique pool indices in pick order."""
    factor = centred_sample_factor(samples, dtype)
    return select_gpa_from_factor(factor, n_anchor, n_select, batch_size, noise, method).indices


def _select_batch(factor, n_anchor, n_pool, n_select, batch_size, noise) -> GreedySelection:
    taken = np.zeros(n_pool, dtype=bool)
    picks, variances = [], []
    while len(picks) < n_select:
        conditioning = np.concatenate([np.arange(n_anchor), n_anchor + np.asarray(picks, dtype=int)])
        variance = batch_posterior_variance(factor, conditioning.astype(int), noise)[n_anchor:]
        chosen = top_by_variance(variance, taken, min(batch_size, n_select - len(picks)))
        taken[chosen] = True
        picks.extend(chosen.tolist())
        variances.extend(variance[chosen].tolist())
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
        middle -= anchor_factor.T @ cho_solve(cho_factor(kernel, lower=True), anchor_factor)
    covariance = pool_factor @ middle @ pool_factor.T
    return (covariance + covariance.T) / 2


def _select_fast(factor, n_anchor, n_pool, n_select, batch_size, noise) -> GreedySelection:
    covariance = dense_pool_posterior_covariance(factor, n_anchor, noise)
    taken = np.zeros(n_pool, dtype=bool)
    picks, variances = [], []
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
        weights = cho_solve(cho_factor(block, lower=True), columns.T)  # (b, n_pool)
        for start in range(0, n_pool, _ROW_CHUNK):
            rows = slice(start, start + _ROW_CHUNK)
            covariance[rows] -= columns[rows] @ weights
    return GreedySelection(np.asarray(picks, dtype=np.int64), np.asarray(variances))
