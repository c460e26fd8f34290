"""The batch selection family of Holzmueller et al. (JMLR 2023), pure NumPy, in feature space.

A feature matrix F (n_train + n_pool rows, training rows first, d columns) defines the linear
kernel k(x, y) = f_x . f_y. Transforms map features to features (`posterior_features`,
`scale_features`, `sketch_features`, composed by `transform_features`); `select_batch` maps features
to pool indices (0 = first pool row) in pick order. Nothing here forms an n x n matrix: memory is
O((n_train + n_pool) d) plus O(d^2).

Modes: "p" selects with the pool only; "tp" counts the training points as already selected
(conditioned on by maxdet/bait, centres for maxdist/kmeanspp/lcmd). Ties go to the lowest pool index.

Methods (the definitions the tests' textbook references implement with explicit kernel matrices):
- maxdiag: the n_select pool points of largest k(x, x) (no mode; apply `posterior_features` first
  for the posterior variance, which is MCDUE's rule on the MC kernel).
- maxdet: greedily the pool point of largest posterior variance k(x,x) - k_xS (K_SS + noise I)^-1 k_Sx
  given the selected set S (plus the training set in "tp"): GPA with batch size 1.
- maxdist: first (when nothing is selected) the pool point of largest k(x, x); then the point of
  largest distance to its nearest selected point, d(x, y)^2 = k(x,x) + k(y,y) - 2 k(x,y).
- kmeanspp: the first point (when nothing is selected) uniformly at random, then each point with
  probability proportional to its squared distance to the nearest selected point (inverse CDF of
  one uniform per pick from `random_state`, so deterministic given the seed); if every remaining
  distance is zero, the lowest-index unselected point.
- lcmd: first the point of largest k(x, x); then every pool point belongs to the cluster of its
  nearest selected point (earliest on ties); a cluster's size is the sum of its points' squared
  distances; among the points of the largest cluster(s), the one farthest from its centre.
- bait (forward-backward, BAIT-F): with the target set T = training + pool and posterior kernel
  k_S given S with noise, forward picks the point maximising the total target variance it removes,
  sum_{z in T} k_S(z, x)^2 / (k_S(x, x) + noise), until round(overselection * n_select) points are
  picked; backward then removes, one at a time, the picked pool point whose removal raises the
  total target variance least (the highest index on ties, so ties keep the lowest indices), until
  n_select remain (returned in pick order).
"""

from __future__ import annotations

import contextlib
import heapq
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from al_bnn.randomness import numpy_generator
from al_bnn.selection.posterior import cholesky, chunked_rows, posterior_middle, quadratic_forms, top_k
from al_bnn.selection.scaling import check_n_select, rescale, rescale_noise, scale_exponent

METHODS = ("maxdiag", "maxdet", "maxdist", "kmeanspp", "lcmd", "bait")
MODES = ("p", "tp")
# The paper's recommended mode per method (its benchmark names: lcmd-tp, kmeanspp-tp, maxdist-tp,
# maxdet-p, bait-f-p; maxdiag has none).
DEFAULT_MODES = {"maxdiag": "p", "maxdet": "p", "maxdist": "tp", "kmeanspp": "tp", "lcmd": "tp", "bait": "p"}


# ----------------------------------------------------------------------------------------- transforms

def _as_features(features, dtype=None) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D (n_train + n_pool, d) matrix, got shape {features.shape}")
    if dtype is None:
        dtype = features.dtype if features.dtype in (np.float32, np.float64) else np.float64
    features = np.ascontiguousarray(features, dtype=dtype)
    if features.size and not (np.isfinite(features.min()) and np.isfinite(features.max())):  # NaN propagates
        raise ValueError("features contain NaN or inf; the model diverged or the inputs are not finite")
    return features


def posterior_features(features, n_train: int, noise: float) -> np.ndarray:
    """Features of the posterior kernel given the training rows with noise sigma^2 = `noise`:
    k'(x, y) = k(x, y) - k_xT (K_TT + noise I)^-1 k_Ty, as F' = F L with L L^T = M (d x d)."""
    features = _as_features(features)
    _check_train(features, n_train)
    if not noise > 0:
        raise ValueError(f"noise must be > 0 for the posterior transform, got {noise}")
    # M is unitless: computed from features and noise rescaled alike (al_bnn.selection.scaling),
    # so kernels of 1e-400 or 1e320 give the posterior of the plain math
    exponent = scale_exponent(features)
    middle = posterior_middle(rescale(features[:n_train], exponent),
                               rescale_noise(noise, exponent, features.shape[1]))
    factor = cholesky(middle, "the posterior's middle matrix M").astype(features.dtype)
    out = np.empty_like(features)
    for part in chunked_rows(len(features)):
        out[part] = features[part] @ factor
    return out


def scale_features(features, n_train: int) -> np.ndarray:
    """Scale the kernel so that its mean diagonal over the training rows (all rows when there are
    none) is 1; an all-zero matrix is returned unchanged."""
    features = _as_features(features)
    _check_train(features, n_train)
    scaled = rescale(features, scale_exponent(features))  # exact; only outside the safe range (no underflow)
    rows = scaled[:n_train] if n_train else scaled
    mean_diag = float(np.einsum("ij,ij->", rows, rows, dtype=np.float64)) / max(len(rows), 1)
    return features if mean_diag == 0 else scaled / scaled.dtype.type(np.sqrt(mean_diag))


def sketch_features(features, sketch_dim: int, seed: int = 0, counter: int = 0) -> np.ndarray:
    """Gaussian random projection F Omega / sqrt(sketch_dim), Omega (d x sketch_dim) standard normal
    from numpy_generator(seed, "sketch", counter); the sketched kernel is unbiased for F F^T."""
    features = _as_features(features)
    if sketch_dim < 1:
        raise ValueError(f"sketch_dim must be >= 1, got {sketch_dim}")
    projection = numpy_generator(seed, "sketch", counter).standard_normal((features.shape[1], sketch_dim))
    projection = (projection / np.sqrt(sketch_dim)).astype(features.dtype)
    out = np.empty((len(features), sketch_dim), dtype=features.dtype)
    for part in chunked_rows(len(features)):
        out[part] = features[part] @ projection
    return out


def transform_features(features, n_train: int, *, sketch_dim: int = 0, scale: bool = False,
                       posterior_noise: float | None = None, seed: int = 0, counter: int = 0) -> np.ndarray:
    """The one place transforms are composed, in the paper's order: sketch (when sketch_dim > 0
    and smaller than d), scale, then the posterior given the training rows (when posterior_noise)."""
    features = _as_features(features)
    if sketch_dim and sketch_dim < features.shape[1]:
        features = sketch_features(features, sketch_dim, seed, counter)
    if scale:
        features = scale_features(features, n_train)
    if posterior_noise is not None:
        features = posterior_features(features, n_train, posterior_noise)
    return features


# ----------------------------------------------------------------------------------------- entry point

def _check_train(features: np.ndarray, n_train: int) -> None:
    if not 0 <= n_train <= len(features):
        raise ValueError(f"n_train={n_train} must be between 0 and the number of feature rows {len(features)}")


def select_batch(features, n_train: int, n_select: int, method: str, *, mode: str = "p", noise: float = 0.01,
                 random_state=None, overselection: float = 2.0) -> np.ndarray:
    """Pick `n_select` pool points with `method` on the linear kernel of `features`.

    features: (n_train + n_pool, d), training rows first, float32 or float64 (kept; other types
    become float64). mode: "p" or "tp" (see the module docstring; maxdiag has only "p"). noise:
    sigma^2 of maxdet and bait (> 0). random_state: seed or np.random.Generator (kmeanspp only).
    overselection: bait's forward picks per returned pick. Returns pool indices in pick order.
    n_select must be a positive integer, at most the pool size (SelectionRequestError, a ValueError).
    Scale: the picks for features c F and noise c^2 noise are those for F and noise (the
    noise-free methods: for c F and any noise), also where c F's kernel under- or overflows.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'p' or 'tp', got {mode!r}")
    if method == "maxdiag" and mode != "p":
        raise ValueError("maxdiag has no 'tp' mode (it ignores the training set); use mode='p', after "
                         "posterior_features for the posterior variance")
    features = _as_features(features)
    _check_train(features, n_train)
    n_select = check_n_select(n_select, len(features) - n_train)
    if method in ("maxdet", "bait") and not noise > 0:
        raise ValueError(f"noise (sigma^2) must be > 0 for {method}, got {noise}")
    if method == "bait" and not overselection >= 1:
        raise ValueError(f"overselection must be >= 1, got {overselection}")
    # features far from 1 (kernel values that under- or overflow) are rescaled by a power of two,
    # and the noise alike: the same picks as the plain math (al_bnn.selection.scaling)
    exponent = scale_exponent(features)
    features = rescale(features, exponent)
    noise = rescale_noise(noise, exponent, features.shape[1])
    with_train = mode == "tp"
    if method == "maxdiag":
        return top_k(_row_norms(features[n_train:]), n_select)
    if method == "maxdet":
        return _maxdet(features, n_train, n_select, noise, with_train)
    if method == "bait":
        return _bait(features, n_train, n_select, noise, with_train, overselection)
    if method == "maxdist":
        return _maxdist(features, n_train, n_select, with_train)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    return _distance_greedy(features, n_train, n_select, with_train, method, rng)


def _row_norms(rows: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=rows.dtype)
    for part in chunked_rows(len(rows)):
        out[part] = np.einsum("ij,ij->i", rows[part], rows[part])
    return out


def _argmax_lowest(values: np.ndarray) -> int:
    """np.argmax already returns the first maximum: the lowest index on ties."""
    return int(np.argmax(values))


# ----------------------------------------------------------------------------------------- maxdet

_EXACT_SIZE = 2048  # points kept exact (a rank-1 update per pick: cheap while they stay in cache)
_GATHER_ROWS = 2048  # pool rows gathered at a time when bringing bounds up to date (used while in cache)
_BUCKETS_PER_OCTAVE = 64
_INCREMENTAL_AGES = 1 / 3  # times d
_NONPOSITIVE = np.iinfo(np.int64).min // 4  # the bucket of bounds <= 0
_TIE_TOLERANCE = 1e-11  # times |f|^2, above any value's rounding (M <= I): near-ties settled on recomputed values


def _one_thread_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in row blocks small enough (m n k <= 2^19 and m k <= 2^18; OpenBLAS threads gemm from
    about 10^6 and gemv from about 5 10^5) that OpenBLAS runs each on one thread: its threaded calls
    wait for the other core, milliseconds each on a busy machine."""
    out = np.empty((len(a), b.shape[1]), dtype=np.result_type(a, b))
    k = max(1, a.shape[1])
    step = max(1, min(2 ** 19 // (k * max(1, b.shape[1])), 2 ** 18 // k))
    for start in range(0, len(a), step):
        np.matmul(a[start:start + step], b, out=out[start:start + step])
    return out


def _bucket_index(values: np.ndarray) -> np.ndarray:
    """A bucket per value, monotone and exact (frexp): 64 equal-width buckets per power of two."""
    mantissa, exponent = np.frexp(values)  # value = mantissa 2^exponent, mantissa in [0.5, 1)
    index = exponent.astype(np.int64) * _BUCKETS_PER_OCTAVE
    index += np.floor((mantissa - 0.5) * (2 * _BUCKETS_PER_OCTAVE)).astype(np.int64)
    index[~(values > 0)] = _NONPOSITIVE
    return index


class _StaleBounds:
    """Pool points with an upper bound on their current value (their value at `version` picks),
    grouped into value buckets, so that the points whose bound reaches a threshold come out
    without a pass over the pool."""

    def __init__(self):
        self.buckets = {}  # bucket index -> list of (ids, bounds, versions)
        self.largest = {}  # bucket index -> its largest bound
        self.heap = []  # negated indices of the non-empty buckets

    def add(self, ids, bounds, versions) -> None:
        if not len(ids):
            return
        index = _bucket_index(bounds)
        low = index.min()
        if index.max() - low < 2 ** 16:
            order = np.argsort((index - low).astype(np.uint16), kind="stable")  # a radix sort
        else:
            order = np.argsort(index, kind="stable")
        index, ids, bounds, versions = index[order], ids[order], bounds[order], versions[order]
        cuts = (np.flatnonzero(index[1:] != index[:-1]) + 1).tolist()
        starts, stops = [0] + cuts, cuts + [len(index)]
        largest = np.maximum.reduceat(bounds, starts).tolist()
        for start, stop, top in zip(starts, stops, largest, strict=True):
            key = int(index[start])
            part = (ids[start:stop], bounds[start:stop], versions[start:stop])
            if key in self.buckets:
                self.buckets[key].append(part)
                self.largest[key] = max(self.largest[key], top)
            else:
                self.buckets[key] = [part]
                self.largest[key] = top
                heapq.heappush(self.heap, -key)

    def _pop(self, key: int):
        heapq.heappop(self.heap)
        del self.largest[key]
        return self.buckets.pop(key)

    def take_reaching(self, value: float, value_id: int):
        """Remove and return (ids, bounds, versions) of every point that could beat (value, value_id):
        bound > value, or bound == value and a lower index. With value -inf: the top bucket."""
        parts = []
        if value == -np.inf:
            if self.heap:
                parts = self._pop(-self.heap[0])
        else:
            limit = int(_bucket_index(np.array([value]))[0])
            while self.heap and -self.heap[0] > limit:  # every bound here exceeds value
                parts.extend(self._pop(-self.heap[0]))
            if self.heap and -self.heap[0] == limit and self.largest[limit] >= value:
                ids, bounds, versions = (np.concatenate(column) for column in zip(*self.buckets[limit], strict=True))
                reach = (bounds > value) | ((bounds == value) & (ids < value_id))
                if reach.all():
                    parts.extend(self._pop(limit))
                else:
                    rest = ~reach
                    self.buckets[limit] = [(ids[rest], bounds[rest], versions[rest])]
                    self.largest[limit] = float(bounds[rest].max())
                    parts.append((ids[reach], bounds[reach], versions[reach]))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _current_values(pool, ids, bounds, versions, now, middle, recent, executor=None):
    """Exact values after `now` picks of the points `ids` whose `bounds` are their values after
    `versions` picks: the bound minus the decreases since, sum_t (f . u_t)^2 (`recent` holds
    u_{now-1}, u_{now-2}, ...), while few picks have passed, else f^T M f afresh (O(d^2) a row).
    Returns (ids, values), reordered so that rows are gathered in memory order. With an
    `executor`, large calls share their blocks with its thread (each block computed alike)."""
    if not len(ids):
        return ids, bounds
    age = now - versions
    incremental_ages = max(1, int(_INCREMENTAL_AGES * pool.shape[1]))  # beyond: decreases cost more than f^T M f
    # groups: -1 current, 0 afresh, k >= 1 ages in (2^(k-2), 2^(k-1)] (a group's oldest row costs at most twice)
    group = np.where(age >= incremental_ages, 0, np.ceil(np.log2(np.maximum(age, 1))).astype(np.int64) + 1)
    group[age == 0] = -1
    order = np.argsort((group + 1) * len(pool) + ids)
    ids, versions, group = ids[order], versions[order], group[order]
    values = bounds[order]
    cuts = (np.flatnonzero(group[1:] != group[:-1]) + 1).tolist()
    blocks = [(begin, min(begin + _GATHER_ROWS, stop))
              for start, stop in zip([0] + cuts, cuts + [len(ids)], strict=True) if group[start] >= 0
              for begin in range(start, stop, _GATHER_ROWS)]

    def compute(blocks):
        for begin, end in blocks:
            rows = pool[ids[begin:end]].astype(np.float64, copy=False)
            if group[begin] == 0:
                values[begin:end] = np.einsum("ij,ij->i", _one_thread_matmul(rows, middle), rows)
                continue
            since = versions[begin:end]
            oldest = int(since.min())
            decreases = _one_thread_matmul(rows, recent[:now - oldest].T)  # column j: f . u_{now-1-j}
            decreases *= decreases
            if oldest == since.max():
                values[begin:end] -= decreases.sum(axis=1)
            else:
                np.cumsum(decreases, axis=1, out=decreases)
                values[begin:end] -= decreases[np.arange(end - begin), now - 1 - since]

    if executor is None or len(blocks) < 2:
        compute(blocks)
    else:
        other = executor.submit(compute, blocks[1::2])
        compute(blocks[::2])
        other.result()
    return ids, values


class _Exact:
    """The pool points of largest value, their values kept exact (rank-1 update per pick)."""

    def __init__(self, size: int, d: int):
        self.size = size
        self.rows = np.empty((size, d))
        self.values = np.empty(size)
        self.ids = np.empty(size, dtype=np.int64)
        self.count = 0

    def best(self) -> tuple[int, int]:
        """(position, pool index) of the largest value, lowest index on ties; (-1, -1) when empty."""
        if not self.count:
            return -1, -1
        values = self.values[:self.count]
        tied = np.flatnonzero(values == values.max())
        best = int(tied[np.argmin(self.ids[tied])]) if len(tied) > 1 else int(tied[0])
        return best, int(self.ids[best])

    def remove(self, position: int) -> np.ndarray:
        row = self.rows[position].copy()
        last = self.count - 1
        self.rows[position], self.values[position], self.ids[position] = self.rows[last], self.values[last], \
            self.ids[last]
        self.count = last
        return row

    def condition(self, step: np.ndarray) -> None:
        along = _one_thread_matmul(self.rows[:self.count], step[:, None])[:, 0]
        self.values[:self.count] -= along * along

    def merge(self, pool, ids, values, stale: _StaleBounds, now: int) -> None:
        """Keep the `size` best of the exact points and the new ones (ties: lowest index); the rest
        go back to `stale` with their exact values as bounds."""
        count = self.count
        all_values = np.concatenate([self.values[:count], values])
        all_ids = np.concatenate([self.ids[:count], ids])
        if len(all_values) > self.size:
            keep = np.argpartition(-all_values, self.size - 1)[:self.size]
            cut = all_values[keep].min()
            above = np.flatnonzero(all_values > cut)
            at_cut = np.flatnonzero(all_values == cut)
            at_cut = at_cut[np.argsort(all_ids[at_cut], kind="stable")][:self.size - len(above)]
            keep = np.sort(np.concatenate([above, at_cut]))
            dropped = np.ones(len(all_values), dtype=bool)
            dropped[keep] = False
            dropped = np.flatnonzero(dropped)
            stale.add(all_ids[dropped], all_values[dropped], np.full(len(dropped), now, dtype=np.int64))
        else:
            keep = np.arange(len(all_values))
        old = keep[:np.searchsorted(keep, count)]
        self.count = len(keep)
        self.rows[:len(old)] = self.rows[old]
        self.rows[len(old):self.count] = pool[all_ids[keep[len(old):]]]
        self.values[:self.count], self.ids[:self.count] = all_values[keep], all_ids[keep]


def _settle_near_ties(pool, exact: _Exact, stale: _StaleBounds, best: int, tolerance: float, now: int, middle,
                      recent) -> tuple[int, int]:
    """The pick among the points within `tolerance` of the best value, on values computed alike.

    Values equal in exact arithmetic (duplicate rows) reach the exact set along different paths and
    can differ by rounding; recomputed from their rows (each distinct row once) they tie exactly, so
    the lowest index wins. Returns (pool index, position in the exact set or -1)."""
    value = exact.values[best]
    positions = np.flatnonzero(exact.values[:exact.count] >= value - tolerance)
    ids, bounds, versions = stale.take_reaching(value - tolerance, -1)
    ids, values = _current_values(pool, ids, bounds, versions, now, middle, recent)
    candidates = np.concatenate([exact.ids[positions], ids[values >= value - tolerance]])
    pick = int(exact.ids[best])
    if len(candidates) > 1:
        rows, inverse = np.unique(pool[candidates].astype(np.float64), axis=0, return_inverse=True)
        fresh = np.einsum("ij,ij->i", rows @ middle, rows)[inverse.ravel()]
        pick = int(candidates[np.lexsort((candidates, -fresh))[0]])
    back = ids != pick
    stale.add(ids[back], values[back], np.full(int(back.sum()), now, dtype=np.int64))
    in_exact = positions[exact.ids[positions] == pick]
    return pick, int(in_exact[0]) if len(in_exact) else -1


def _maxdet(features, n_train, n_select, noise, with_train) -> np.ndarray:
    """Greedy posterior variance, one point at a time, evaluated lazily (Minoux).

    Posterior variances only fall as points are conditioned on, so a variance computed at an
    earlier pick bounds every later one. An `_Exact` set of the best few thousand points is kept
    exact by a rank-1 update per pick; every other point has only such a bound (`_StaleBounds`).
    A pick is made once no bound can beat the exact set's best (ties: lowest index; near-ties are
    settled on recomputed values); until then every point whose bound could is brought up to date
    and merged in. Picks equal the eager greedy's. The d x d state is float64; pool rows are read
    in their own dtype.
    """
    pool = features[n_train:]
    n_pool, d = pool.shape
    identity = not (with_train and n_train)
    middle = np.eye(d) if identity else posterior_middle(features[:n_train].astype(np.float64), noise)
    first = np.empty(n_pool)
    sq_norms = first if identity else np.empty(n_pool)  # the scale of a value's rounding (M <= I)
    for part in chunked_rows(n_pool):
        rows = pool[part].astype(np.float64, copy=False)
        first[part] = np.einsum("ij,ij->i", rows if identity else rows @ middle, rows)
        if not identity:
            sq_norms[part] = np.einsum("ij,ij->i", rows, rows)
    stale = _StaleBounds()
    stale.add(np.arange(n_pool), first, np.zeros(n_pool, dtype=np.int64))
    # u_t (M_{t+1} = M_t - u_t u_t^T) for pick t is row n_select - 1 - t: the latest steps are a contiguous
    # slice, newest first
    steps = np.empty((n_select, d))
    exact = _Exact(min(_EXACT_SIZE, n_pool), d)
    picks: list[int] = []
    # large refreshes share their blocks with a second thread
    with ThreadPoolExecutor(1) if _PASS_THREADS > 1 else contextlib.nullcontext() as executor:
        while True:
            best, best_id = exact.best()
            value = exact.values[best] if best >= 0 else -np.inf
            recent = steps[n_select - len(picks):]
            ids, bounds, versions = stale.take_reaching(value, best_id)
            if len(ids):
                ids, values = _current_values(pool, ids, bounds, versions, len(picks), middle, recent, executor)
                exact.merge(pool, ids, values, stale, len(picks))
                continue
            tolerance = min(_TIE_TOLERANCE * sq_norms[best_id], 1e-3 * value) if value > 0 else 0.0
            position = best
            if tolerance > 0:
                best_id, position = _settle_near_ties(pool, exact, stale, best, tolerance, len(picks), middle, recent)
            picks.append(best_id)
            if len(picks) == n_select:
                return np.asarray(picks, dtype=np.int64)
            picked = exact.remove(position) if position >= 0 else pool[best_id].astype(np.float64)
            direction = middle @ picked
            step = direction / np.sqrt(noise + picked @ direction)
            steps[n_select - len(picks)] = step
            middle = middle - np.outer(step, step)
            exact.condition(step)


# ----------------------------------------------------------------------------------------- distances

def _sq_dists_to(rows: np.ndarray, row_norms: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=rows.dtype)
    centre_norm = centre @ centre
    for part in chunked_rows(len(rows)):
        out[part] = row_norms[part] + centre_norm - 2 * (rows[part] @ centre)
    np.maximum(out, 0, out=out)
    return out


def _min_sq_dists_to_set(rows: np.ndarray, row_norms: np.ndarray, centres: np.ndarray):
    """(min squared distance, index of the earliest nearest centre) of every row to `centres`."""
    best = np.full(len(rows), np.inf, dtype=rows.dtype)
    nearest = np.full(len(rows), -1, dtype=np.int64)
    if len(centres) == 0:
        return best, nearest
    centre_norms = _row_norms(centres)
    block = max(1, 2 ** 22 // max(len(centres), 1))  # (the block size decides gemm's rounding: keep it)
    d2 = np.empty((min(block, len(rows)), len(centres)), dtype=np.result_type(rows, centres))
    twice = np.empty_like(d2)
    for start in range(0, len(rows), block):
        stop = min(start + block, len(rows))
        part, m = slice(start, stop), stop - start
        np.matmul(rows[part], centres.T, out=twice[:m])
        twice[:m] *= 2
        np.add(row_norms[part, None], centre_norms[None, :], out=d2[:m])
        d2[:m] -= twice[:m]
        np.maximum(d2[:m], 0, out=d2[:m])
        nearest[part] = np.argmin(d2[:m], axis=1)
        best[part] = d2[np.arange(m), nearest[part]]
    return best, nearest


class _LazyFrontier:
    """The pool points of largest upper bound, kept exact, grown only when needed.

    For greedy rules whose per-point value only falls as points are picked (here the distance to
    the selected set): the pool is sorted by a bound once (ties to the lowest index);
    the frontier is a prefix of that order whose values the caller keeps exact; `best()` grows the
    prefix (by `exact_values(new_ids)` for the new points) until its best alive value beats the
    next bound outside, so the pick equals the eager greedy's."""

    def __init__(self, bound: np.ndarray, n_select: int, exact_values, picked=(), dtype=np.float64):
        self.order = np.lexsort((np.arange(len(bound)), -bound))
        self.sorted_bound = bound[self.order]
        self.grow = max(1024, 4 * n_select)
        self.exact_values = exact_values
        self.ids = self.order[:0]
        self.values = np.empty(0, dtype=dtype)
        self.alive = np.empty(0, dtype=bool)
        self.picked = list(picked)
        self._extend(min(self.grow, len(bound)))

    def _extend(self, new_size: int) -> None:
        new_ids = self.order[len(self.ids):new_size]
        self.ids = np.concatenate([self.ids, new_ids])
        self.values = np.concatenate([self.values, self.exact_values(new_ids)])
        self.alive = np.concatenate([self.alive, ~np.isin(new_ids, self.picked)])

    def best(self) -> int:
        """Position (in the frontier) of the alive point of largest exact value, lowest pool index on ties."""
        n_pool = len(self.order)
        while True:
            masked = np.where(self.alive, self.values, -np.inf)
            best_value = masked.max()
            candidates = np.flatnonzero(masked == best_value)
            best = int(candidates[np.argmin(self.ids[candidates])])
            size = len(self.ids)
            if size == n_pool or best_value > self.sorted_bound[size]:
                return best
            self._extend(min(size + max(self.grow, size), n_pool))

    def pick(self, position: int) -> int:
        self.alive[position] = False
        self.picked.append(int(self.ids[position]))
        return self.picked[-1]


def _maxdist(features, n_train, n_select, with_train) -> np.ndarray:
    """Farthest-point traversal over a lazily grown frontier.

    Distances to the selected set only fall, so the distance after the first centres bounds every
    later one. The frontier's distances are kept exact (O(frontier d) per pick); new frontier rows
    get theirs from the picks so far (O(chunk picks d))."""
    pool = features[n_train:]
    norms = _row_norms(pool)
    picks = []
    if with_train and n_train:
        bound, _ = _min_sq_dists_to_set(pool, norms, features[:n_train])
    else:
        first = _argmax_lowest(norms)
        picks.append(first)
        if n_select == 1:
            return np.asarray(picks, dtype=np.int64)
        bound = _sq_dists_to(pool, norms, pool[first])
    first_in_bound = len(picks)  # the picks whose distances `bound` already holds
    rows, row_norms = pool[:0], norms[:0]

    def exact_values(new_ids):
        nonlocal rows, row_norms
        new_rows, new_norms = pool[new_ids], norms[new_ids]
        rows, row_norms = np.concatenate([rows, new_rows]), np.concatenate([row_norms, new_norms])
        fresh = bound[new_ids].copy()
        later = frontier_picks()[first_in_bound:]
        if later:
            extra, _ = _min_sq_dists_to_set(new_rows, new_norms, pool[np.asarray(later)])
            fresh = np.minimum(fresh, extra)
        return fresh

    frontier = None

    def frontier_picks():
        return picks if frontier is None else frontier.picked

    frontier = _LazyFrontier(bound, n_select, exact_values, picked=picks, dtype=pool.dtype)
    while len(frontier.picked) < n_select:
        best = frontier.best()
        frontier.pick(best)
        frontier.values = np.minimum(frontier.values, _sq_dists_to(rows, row_norms, rows[best]))
    return np.asarray(frontier.picked, dtype=np.int64)


def _gemv_rows(d: int) -> int:
    """Rows per matrix-vector block: about 2 MB of float64, and few enough that OpenBLAS runs it on
    one thread (see _one_thread_matmul)."""
    return max(64, 2 ** 18 // max(d, 1))


_PASS_THREADS = min(2, os.cpu_count() or 1)


class _SplitPasses:
    """Runs a pass over the pool's rows as contiguous ranges (whole blocks of `step` rows), one per
    thread: BLAS calls and ufunc loops release the GIL, so the threads share the memory traffic,
    which bounds these passes. Each range is always computed the same way, so results do not depend
    on the threads. make_scratch(rows in the range) gives each range its own buffers."""

    def __init__(self, n_rows: int, step: int, make_scratch):
        blocks = -(-n_rows // step)
        parts = max(1, min(_PASS_THREADS, blocks))
        cuts = [min(n_rows, (blocks * i // parts) * step) for i in range(parts + 1)]
        self.ranges = list(zip(cuts[:-1], cuts[1:], strict=True))
        self.scratch = [make_scratch(stop - start) for start, stop in self.ranges]
        self.executor = ThreadPoolExecutor(len(self.ranges) - 1) if len(self.ranges) > 1 else None

    def run(self, work) -> None:
        """work(start, stop, scratch) for every range; the first in this thread."""
        executor = self.executor  # None exactly when there is one range, so no others
        others = [] if executor is None else [
            executor.submit(work, start, stop, scratch)
            for (start, stop), scratch in zip(self.ranges[1:], self.scratch[1:], strict=True)]
        work(*self.ranges[0], self.scratch[0])
        for other in others:
            other.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown()


def _kmeanspp_pick(min_sq: np.ndarray, selected: np.ndarray, cumulative: np.ndarray, rng) -> int:
    """The point drawn with probability proportional to its squared distance (inverse CDF of one uniform);
    the lowest-index unselected point when every distance is zero. `cumulative` is scratch (n_pool)."""
    np.cumsum(min_sq, dtype=np.float64, out=cumulative)  # picked points weigh 0
    total = cumulative[-1]
    draw = rng.random()
    if not total > 0:
        return int(np.argmin(selected))
    pick = min(int(np.searchsorted(cumulative, draw * total, side="right")), len(min_sq) - 1)
    while min_sq[pick] == 0:  # only a rounding artefact at the top end
        pick -= 1
    return pick


def _lcmd_pick(min_sq: np.ndarray, selected: np.ndarray, cluster: np.ndarray, n_centres: int) -> int:
    """Among the points of the largest cluster(s) (size: the sum of squared distances to its centre),
    the one farthest from its centre, lowest index on ties."""
    sizes = np.bincount(cluster, weights=min_sq, minlength=n_centres + 1)
    largest = np.flatnonzero(sizes == sizes.max())
    in_largest = cluster == largest[0] if len(largest) == 1 else np.isin(cluster, largest)
    scores = np.where(in_largest, min_sq, -np.inf)
    pick = _argmax_lowest(scores)
    if not scores[pick] > 0:  # picked points score 0 too: the rare exact rule
        pick = _argmax_lowest(np.where(in_largest & ~selected, min_sq, -np.inf))
        if not in_largest[pick] or selected[pick]:
            pick = int(np.argmin(selected))
    return pick


def _distance_greedy(features, n_train, n_select, with_train, method, rng) -> np.ndarray:
    """kmeanspp and lcmd: one pass over the pool per pick (O(n_pool d)), no laziness (both need
    every point's exact distance: a sampling distribution, cluster sums). The pass runs in
    cache-sized blocks with preallocated buffers, split between threads (`_SplitPasses`); a picked
    point's distance is set to its exact 0."""
    pool = features[n_train:]
    n_pool, d = pool.shape
    norms = _row_norms(pool)
    min_sq = np.full(n_pool, np.inf, dtype=pool.dtype)
    cluster = np.zeros(n_pool, dtype=np.int64)  # 0 = no centre yet; training centres 1..n_train
    n_centres = 0
    if with_train and n_train:
        min_sq, nearest = _min_sq_dists_to_set(pool, norms, features[:n_train])
        cluster = nearest + 1
        n_centres = n_train
    selected = np.zeros(n_pool, dtype=bool)
    cumulative = np.empty(n_pool) if method == "kmeanspp" else None
    step = _gemv_rows(d)

    def assign(start, stop, scratch):
        """Distances of rows start:stop to the newest centre; the closer rows join it."""
        block, doubled, closer = scratch
        for low in range(start, stop, step):
            high = min(low + step, stop)
            m = high - low
            d2, twice, near = block[:m], doubled[:m], closer[:m]
            np.dot(pool[low:high], centre, out=twice)
            twice *= 2
            np.add(norms[low:high], centre_norm, out=d2)
            d2 -= twice  # (|x|^2 + |c|^2) - 2 x.c, as _sq_dists_to
            np.maximum(d2, 0, out=d2)
            if method == "kmeanspp":
                np.minimum(min_sq[low:high], d2, out=min_sq[low:high])
                continue
            np.less(d2, min_sq[low:high], out=near)
            np.copyto(min_sq[low:high], d2, where=near)
            np.copyto(cluster[low:high], n_centres, where=near)

    def scratch(rows):
        rows = min(rows, step)
        return np.empty(rows, dtype=pool.dtype), np.empty(rows, dtype=pool.dtype), np.empty(rows, dtype=bool)

    picks = []
    with _SplitPasses(n_pool, step, scratch) as passes:
        for _ in range(n_select):
            if n_centres == 0:
                pick = int(rng.integers(n_pool)) if method == "kmeanspp" else _argmax_lowest(norms)
            elif method == "kmeanspp":
                assert cumulative is not None  # allocated above for kmeanspp
                pick = _kmeanspp_pick(min_sq, selected, cumulative, rng)
            else:
                pick = _lcmd_pick(min_sq, selected, cluster, n_centres)
            picks.append(pick)
            selected[pick] = True
            n_centres += 1
            centre = pool[pick]
            centre_norm = centre @ centre
            passes.run(assign)
            min_sq[pick] = 0
    return np.asarray(picks, dtype=np.int64)


# ----------------------------------------------------------------------------------------- bait

def _bait(features, n_train, n_select, noise, with_train, overselection) -> np.ndarray:
    """BAIT forward-backward in feature space with the posterior's d x d matrix M.

    k_S(x, y) = f_x^T M f_y. With C = F_T^T F_T over the target set, a point's numerator is
    f_x^T M C M f_x and its denominator f_x^T M f_x + noise; a pick changes M by rank 1, so both
    update with two dot products per pool row (one O(n_pool d) pass per forward pick). The backward
    steps touch only the picked rows.
    """
    pool = features[n_train:]
    d = features.shape[1]
    target = np.zeros((d, d), dtype=np.float64)
    for part in chunked_rows(len(features)):
        target += features[part].T.astype(np.float64) @ features[part]
    # All state in float64 whatever the features' dtype: the d x d matrices, the picked rows and
    # the pool's numerators, variances and scores, with the pool rows widened as they are read.
    # In float32 the updates cancel (numerators fall by orders of magnitude once the picks span
    # the features) and the backward step's noise - variance too: the picks went wrong (issue 31).
    state = np.dtype(np.float64)
    middle = posterior_middle(features[:n_train].astype(np.float64), noise) if with_train and n_train else \
        np.eye(d)
    variance = quadratic_forms(pool, middle, state)
    numerator = quadratic_forms(pool, middle @ target @ middle, state)
    n_forward = min(int(round(overselection * n_select)), len(pool))
    scores = numerator / (variance + noise)
    gemv_rows = _gemv_rows(d)
    block = max(gemv_rows, 2 ** 15)  # rows per elementwise update (fewer, larger calls)

    def update(start, stop, scratch):
        """numerator += gain along^2 - 2 scale along across; variance -= scale along^2; the scores."""
        both, squares, cross, work = scratch
        for first in range(start, stop, block):
            last = min(first + block, stop)
            part, m = slice(first, last), last - first
            for low in range(first, last, gemv_rows):  # small products: OpenBLAS keeps them on one thread
                high = min(low + gemv_rows, last)
                np.matmul(pool[low:high], stacked, out=both[low - first:high - first])  # float32 rows widen
            along, across = both[:m, 0], both[:m, 1]
            np.multiply(along, along, out=squares[:m])
            np.multiply(along, twice, out=cross[:m])
            cross[:m] *= across
            np.multiply(squares[:m], gain, out=work[:m])
            work[:m] -= cross[:m]
            numerator[part] += work[:m]
            squares[:m] *= once
            variance[part] -= squares[:m]
            np.add(variance[part], noise, out=work[:m])
            np.divide(numerator[part], work[:m], out=scores[part])

    def scratch(rows):
        rows = min(rows, block)
        return (np.empty((rows, 2), dtype=state),) + tuple(np.empty(rows, dtype=state) for _ in range(3))

    picks = []
    with _SplitPasses(len(pool), gemv_rows, scratch) as passes:
        for step in range(n_forward):
            pick = _argmax_lowest(scores)
            picks.append(pick)
            picked = pool[pick].astype(np.float64)
            direction = middle @ picked  # w = M f_s
            scale = 1 / (noise + picked @ direction)  # fresh in float64: M stays the exact posterior
            if step == n_forward - 1:  # the backward steps need M, not the pool's scores
                middle = middle - scale * np.outer(direction, direction)
                break
            coupled = middle @ (target @ direction)  # u = M C w
            stacked = np.stack([direction, coupled], axis=1)
            gain = state.type(scale * scale * (direction @ target @ direction))
            twice, once = state.type(2 * scale), state.type(scale)
            passes.run(update)
            scores[picks] = -np.inf
            middle = middle - scale * np.outer(direction, direction)
    picks_array = np.asarray(picks, dtype=np.int64)
    keep = np.ones(len(picks), dtype=bool)
    rows = pool[picks_array].astype(np.float64)
    weighted = rows @ middle  # W = F_sel M
    weighted_target = weighted @ target  # W C
    variance_sel = np.einsum("ij,ij->i", weighted, rows)
    for _ in range(n_forward - n_select):
        gap = noise - variance_sel  # > 0 for conditioned points (<= 0 only by rounding: never removed)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            increase = np.einsum("ij,ij->i", weighted_target, weighted) / gap
        increase = np.where(keep & (gap > 0), increase, np.inf)
        low = increase[keep].min()  # inf when rounding left no gap > 0: then any kept pick may go, never a dropped one
        tied = np.flatnonzero(keep & (increase == low))
        drop = tied[np.argmax(picks_array[tied])]  # removal ties: the highest index, so low indices stay
        keep[drop] = False
        direction = weighted[drop].copy()
        scale = 1 / gap[drop]
        along = rows @ direction
        weighted += scale * np.outer(along, direction)
        weighted_target += scale * np.outer(along, target @ direction)
        variance_sel += scale * along ** 2
        middle = middle + scale * np.outer(direction, direction)
    return picks_array[keep]
