"""The Gaussian-process posterior of a linear kernel, pure NumPy: the one implementation that GPA
(al_bnn.selection.gpa_math) and the batch family (al_bnn.selection.family) share.

A feature matrix F (rows f_x) defines the kernel k(x, y) = f_x . f_y. Given the points S (rows F_S)
observed with noise lambda, the posterior kernel is

    k_S(x, y) = k(x, y) - k_xS (K_SS + lambda I)^-1 k_Sy = f_x^T M f_y,   M = lambda (lambda I + F_S^T F_S)^-1

(Woodbury), so a posterior variance is one quadratic form with the d x d "middle" matrix M and no
n x n matrix is formed (`posterior_middle`, `quadratic_forms`). `batch_posterior_variance` is the
same variance by the kernel-space Cholesky solve (Tsymbalov et al. 2019's batch GPA, the reference
the feature-space form is tested against). `cholesky` is the one factorisation both use: a matrix
made indefinite by rounding gets logged diagonal jitter, and a hopeless one a clear error.

Also the one "largest first, ties to the lowest index" selection (`top_k`) that the greedy rules share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from scipy.linalg import solve_triangular

logger = logging.getLogger("al_bnn.samplers")
ROW_CHUNK = 65536  # rows per pass over a matrix (bounds every temporary to ROW_CHUNK x d)


def chunked_rows(n: int, chunk: int = ROW_CHUNK) -> Iterator[slice]:
    """Slices covering rows 0..n-1 in blocks of `chunk`, so a pass never makes an (n, d) temporary."""
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def cholesky(matrix: np.ndarray, what: str) -> np.ndarray:
    """Lower Cholesky factor; if rounding made the matrix indefinite, retry with growing diagonal
    jitter (logged, so it is never silent) before giving up with a clear error naming `what`."""
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        pass
    scale = float(np.mean(np.abs(np.diag(matrix)))) or 1.0
    for relative in (1e-10, 1e-8, 1e-6, 1e-4):
        jitter = relative * scale
        try:
            lower = np.linalg.cholesky(matrix + jitter * np.eye(len(matrix), dtype=matrix.dtype))
        except np.linalg.LinAlgError:
            continue
        logger.warning("%s was not positive definite in %s; added jitter %.3g to its diagonal", what, matrix.dtype,
                       jitter)
        return lower
    raise np.linalg.LinAlgError(f"{what} is not positive definite even with jitter {1e-4 * scale:.3g}; the samples "
                                "or features are degenerate (NaN-free but rank-deficient beyond repair)")


def posterior_middle(conditioning: np.ndarray, noise: float) -> np.ndarray:
    """M = (I + F_S^T F_S / lambda)^-1 = lambda (lambda I + F_S^T F_S)^-1 from the conditioning rows F_S
    (|S| x d, any |S| >= 0) and the noise lambda, in their dtype; F M F^T is the posterior kernel given S.

    Exactly symmetric: M = lambda L^-T L^-1 with L the Cholesky factor of the precision, and the
    final symmetrisation makes that hold whatever the BLAS does (it changes nothing where it already holds)."""
    d = conditioning.shape[1]
    precision = conditioning.T @ conditioning
    precision[np.diag_indices(d)] += noise
    lower_inverse = np.linalg.inv(cholesky(precision, "the feature-space precision (noise I + F_S^T F_S)"))
    middle = noise * (lower_inverse.T @ lower_inverse)
    return (middle + middle.T) / 2


def quadratic_forms(rows: np.ndarray, middle: np.ndarray, dtype=None) -> np.ndarray:
    """r_i^T M r_i for every row (a posterior variance when M is `posterior_middle`), in row chunks;
    the result in `dtype` (default: the common type of the rows and M)."""
    out = np.empty(len(rows), dtype=dtype or np.result_type(rows, middle))
    for part in chunked_rows(len(rows)):
        block = rows[part]
        out[part] = np.einsum("ij,ij->i", block @ middle, block)
    return out


def batch_posterior_variance(factor: np.ndarray, conditioning: np.ndarray, noise: float) -> np.ndarray:
    """Posterior variance of every row of `factor` given the rows `conditioning` (indices), by a fresh
    Cholesky solve against K_SS + noise I: the kernel-space form, O(|S|^3 + n |S| r)."""
    prior_variance = np.einsum("ij,ij->i", factor, factor)
    if len(conditioning) == 0:
        return prior_variance
    conditioning_factor = factor[conditioning]
    kernel = conditioning_factor @ conditioning_factor.T
    kernel[np.diag_indices_from(kernel)] += noise
    lower = cholesky(kernel, "the conditioning kernel (K_SS + noise I)")
    cross = solve_triangular(lower, conditioning_factor @ factor.T, lower=True)  # (|S|, n)
    return prior_variance - np.einsum("ij,ij->j", cross, cross)


def top_k(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values, largest first, ties to the lowest index.

    O(n) (a partition, then a sort of the few candidates at or above the threshold), so a round
    over a million-point pool costs milliseconds."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count >= len(values):
        return np.argsort(-values, kind="stable")[:count].astype(np.int64)
    threshold = np.partition(values, len(values) - count)[len(values) - count]
    eligible = np.flatnonzero(values >= threshold)  # increasing index order
    return eligible[np.argsort(-values[eligible], kind="stable")][:count].astype(np.int64)
