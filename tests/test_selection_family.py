"""The selection family against textbook references written here from the paper's definitions.

Each reference works on the explicit kernel matrix K = F F^T (float64, small sizes) and follows the
definitions in al_bnn.selection.family's docstring literally: no feature-space tricks, no laziness.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from al_bnn.selection import family
from al_bnn.selection.family import (
    DEFAULT_MODES,
    METHODS,
    posterior_features,
    scale_features,
    select_batch,
    sketch_features,
    transform_features,
)
from al_bnn.selection.gpa_math import select_gpa_from_factor

# ------------------------------------------------------------------------------- textbook references


def posterior_kernel(kernel: np.ndarray, conditioned: list[int], noise: float) -> np.ndarray:
    if not conditioned:
        return kernel.copy()
    s = np.asarray(conditioned)
    block = kernel[np.ix_(s, s)] + noise * np.eye(len(s))
    return kernel - kernel[:, s] @ np.linalg.solve(block, kernel[s, :])


def first_argmax(values) -> int:
    best = None
    for i, v in enumerate(values):
        if best is None or v > values[best]:
            best = i
    return best


def ref_maxdiag(kernel, n_train, k):
    diag = np.diag(kernel)[n_train:]
    return sorted(range(len(diag)), key=lambda i: (-diag[i], i))[:k]


def ref_maxdet(kernel, n_train, k, noise, tp):
    n_pool = len(kernel) - n_train
    chosen = list(range(n_train)) if tp else []
    picks = []
    for _ in range(k):
        post = posterior_kernel(kernel, chosen, noise)
        scores = [post[n_train + p, n_train + p] if p not in picks else -np.inf for p in range(n_pool)]
        pick = first_argmax(scores)
        picks.append(pick)
        chosen.append(n_train + pick)
    return picks


def sq_dist(kernel, i, j):
    return kernel[i, i] + kernel[j, j] - 2 * kernel[i, j]


def ref_maxdist(kernel, n_train, k, tp):
    n_pool = len(kernel) - n_train
    centres = list(range(n_train)) if tp else []
    picks = []
    for _ in range(k):
        if not centres:
            pick = first_argmax([kernel[n_train + p, n_train + p] for p in range(n_pool)])
        else:
            scores = [-np.inf if p in picks else min(sq_dist(kernel, n_train + p, c) for c in centres)
                      for p in range(n_pool)]
            pick = first_argmax(scores)
        picks.append(pick)
        centres.append(n_train + pick)
    return picks


def ref_kmeanspp(kernel, n_train, k, tp, seed):
    rng = np.random.default_rng(seed)
    n_pool = len(kernel) - n_train
    centres = list(range(n_train)) if tp else []
    picks = []
    for _ in range(k):
        if not centres:
            pick = int(rng.integers(n_pool))
        else:
            weights = [0.0 if p in picks else max(0.0, min(sq_dist(kernel, n_train + p, c) for c in centres))
                       for p in range(n_pool)]
            total = sum(weights)
            u = rng.random() * total
            pick, running = None, 0.0
            for p, w in enumerate(weights):
                running += w
                if w > 0 and running > u:
                    pick = p
                    break
            if pick is None:
                pick = max(p for p in range(n_pool) if weights[p] > 0) if total > 0 else \
                    min(p for p in range(n_pool) if p not in picks)
        picks.append(pick)
        centres.append(n_train + pick)
    return picks


def ref_lcmd(kernel, n_train, k, tp):
    n_pool = len(kernel) - n_train
    centres = list(range(n_train)) if tp else []
    picks = []
    for _ in range(k):
        if not centres:
            pick = first_argmax([kernel[n_train + p, n_train + p] for p in range(n_pool)])
        else:
            nearest, dist = [], []
            for p in range(n_pool):
                d2 = [max(0.0, sq_dist(kernel, n_train + p, c)) for c in centres]
                j = int(np.argmin(d2))  # earliest centre on ties
                nearest.append(j)
                dist.append(d2[j])
            sizes = [sum(dist[p] for p in range(n_pool) if nearest[p] == c) for c in range(len(centres))]
            largest = {c for c in range(len(centres)) if sizes[c] == max(sizes)}
            scores = [dist[p] if nearest[p] in largest and p not in picks else -np.inf for p in range(n_pool)]
            pick = first_argmax(scores)
        picks.append(pick)
        centres.append(n_train + pick)
    return picks


def ref_bait(kernel, n_train, k, noise, tp, overselection=2.0):
    n_pool = len(kernel) - n_train
    base = list(range(n_train)) if tp else []
    picks = []
    for _ in range(min(int(round(overselection * k)), n_pool)):
        post = posterior_kernel(kernel, base + [n_train + p for p in picks], noise)
        scores = [-np.inf if p in picks else
                  float(np.sum(post[:, n_train + p] ** 2) / (post[n_train + p, n_train + p] + noise))
                  for p in range(n_pool)]
        picks.append(first_argmax(scores))
    while len(picks) > k:
        traces = [np.trace(posterior_kernel(kernel, base + [n_train + q for q in picks if q != p], noise))
                  for p in picks]
        low = min(traces)
        picks.remove(max(p for p, t in zip(picks, traces, strict=True) if t == low))  # keep low indices on ties
    return picks


def reference(method, features, n_train, k, mode, noise, seed):
    kernel = features.astype(np.float64) @ features.astype(np.float64).T
    tp = mode == "tp"
    if method == "maxdiag":
        return ref_maxdiag(kernel, n_train, k)
    if method == "maxdet":
        return ref_maxdet(kernel, n_train, k, noise, tp)
    if method == "maxdist":
        return ref_maxdist(kernel, n_train, k, tp)
    if method == "kmeanspp":
        return ref_kmeanspp(kernel, n_train, k, tp, seed)
    if method == "lcmd":
        return ref_lcmd(kernel, n_train, k, tp)
    return ref_bait(kernel, n_train, k, noise, tp)


# ------------------------------------------------------------------------------- equivalence

CASES = [(method, mode) for method in METHODS for mode in ("p", "tp") if not (method == "maxdiag" and mode == "tp")]


def random_features(seed, n, d, kind):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, d))
    # "network": features of a random two-layer tanh network on clustered inputs, like last-layer
    # features of a model (correlated, low effective rank, uneven norms)
    centres = rng.standard_normal((4, 3)) * 2
    x = centres[rng.integers(4, size=n)] + 0.3 * rng.standard_normal((n, 3))
    hidden = np.tanh(x @ rng.standard_normal((3, 16)))
    return np.tanh(hidden @ rng.standard_normal((16, d)) / 4) * rng.uniform(0.5, 2, size=(1, d))


@pytest.mark.parametrize("method,mode", CASES)
@pytest.mark.parametrize("seed,n_train,n_pool,d,k,noise,kind", [
    (0, 6, 30, 5, 8, 0.01, "gaussian"),
    (1, 0, 25, 8, 6, 0.1, "gaussian"),
    (2, 10, 40, 12, 10, 1.0, "network"),
    (3, 4, 20, 30, 7, 0.05, "network"),
])
def test_picks_equal_the_textbook_reference(method, mode, seed, n_train, n_pool, d, k, noise, kind):
    features = random_features(seed, n_train + n_pool, d, kind)
    fast = select_batch(features, n_train, k, method, mode=mode, noise=noise, random_state=seed)
    expected = reference(method, features, n_train, k, mode, noise, seed)
    assert fast.tolist() == expected
    assert fast.dtype == np.int64


@pytest.mark.parametrize("method,mode", CASES)
def test_transformed_features_equal_the_reference(method, mode):
    # the paper's usual pipeline: sketch, scale, posterior given the training set
    features = random_features(5, 40, 20, "network")
    transformed = transform_features(features, 8, sketch_dim=10, scale=True, posterior_noise=0.1, seed=3)
    fast = select_batch(transformed, 8, 9, method, mode=mode, noise=0.1, random_state=1)
    assert fast.tolist() == reference(method, transformed, 8, 9, mode, 0.1, 1)


def test_float32_agrees_with_float64_on_well_separated_features():
    # fewer picks than dimensions, so no method runs into rank exhaustion (where float32 rounding decides)
    features = random_features(7, 300, 30, "gaussian")
    for method, mode in CASES:
        picks64 = select_batch(features, 50, 10, method, mode=mode, random_state=0)
        picks32 = select_batch(features.astype(np.float32), 50, 10, method, mode=mode, random_state=0)
        assert picks32.tolist() == picks64.tolist(), (method, mode)


@pytest.mark.parametrize("noise", [0.001, 0.1, 2.0])
@pytest.mark.parametrize("n_train,d", [(20, 6), (0, 9), (30, 40)])
def test_maxdet_equals_lowrank_gpa_with_batch_size_one(noise, n_train, d):
    factor = random_features(11, n_train + 400, d, "network")
    gpa = select_gpa_from_factor(factor, n_train, 25, batch_size=1, noise=noise, method="lowrank").indices
    assert select_batch(factor, n_train, 25, "maxdet", mode="tp", noise=noise).tolist() == gpa.tolist()
    # P mode is GPA on the pool alone
    gpa_pool = select_gpa_from_factor(factor[n_train:], 0, 25, batch_size=1, noise=noise, method="lowrank").indices
    assert select_batch(factor, n_train, 25, "maxdet", mode="p", noise=noise).tolist() == gpa_pool.tolist()


def test_lazy_frontiers_grow_on_large_pools():
    # more pool than the first frontier (1024 rows), with the maximum far down the initial order
    rng = np.random.default_rng(0)
    features = rng.standard_normal((3000, 4))
    features[:200] *= 3  # training rows that explain the common directions
    for method in ("maxdet", "maxdist"):
        for mode in ("p", "tp"):
            fast = select_batch(features, 200, 40, method, mode=mode, noise=0.5)
            # the eager computation (every pool point, every pick) in feature space
            eager = eager_feature_space(method, features, 200, 40, mode, 0.5)
            assert fast.tolist() == eager, (method, mode)


@pytest.mark.parametrize("seed,d,kind", [(0, 4, "network"), (1, 30, "gaussian"), (2, 24, "network"),
                                         (3, 8, "duplicates"), (4, 30, "duplicates"), (5, 6, "zeros")])
def test_maxdet_bookkeeping_with_tiny_buffers(monkeypatch, seed, d, kind):
    # a tiny exact set, gathers and coarse buckets put every path of the lazy maxdet to work: evictions,
    # partial buckets, bounds brought up to date by their decreases (one or mixed ages) or afresh
    monkeypatch.setattr(family, "_EXACT_SIZE", 8)
    monkeypatch.setattr(family, "_GATHER_ROWS", 4)
    monkeypatch.setattr(family, "_BUCKETS_PER_OCTAVE", 1 + seed % 3)
    rng = np.random.default_rng(seed)
    features = random_features(seed, 420, d, "network" if kind == "network" else "gaussian")
    if kind == "duplicates":  # equal values: the lowest index first
        features[20:] = features[20 + rng.integers(120, size=400)]
    if kind == "zeros":  # after the 30 nonzero rows only zero variances are left: index order
        features[50:] = 0.0
    for mode in ("p", "tp"):
        fast = select_batch(features, 20, 60, "maxdet", mode=mode, noise=0.05)
        assert fast.tolist() == eager_feature_space("maxdet", features, 20, 60, mode, 0.05), mode
        anchor = 20 if mode == "tp" else 0
        gpa = select_gpa_from_factor(features[20 - anchor:], anchor, 60, batch_size=1, noise=0.05, method="lowrank")
        assert fast.tolist() == gpa.indices.tolist(), mode


def test_maxdet_duplicate_rows_go_lowest_index_first():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((30, 6))
    features = base[rng.integers(30, size=2500)]
    for mode in ("p", "tp"):
        picks = select_batch(features, 100, 80, "maxdet", mode=mode, noise=0.01).tolist()
        assert picks == eager_feature_space("maxdet", features, 100, 80, mode, 0.01), mode
        pool = features[100:]
        for pick in picks:  # no earlier copy of a picked row is left unpicked
            copies = np.flatnonzero((pool == pool[pick]).all(axis=1))
            assert set(copies[copies < pick].tolist()) <= set(picks[:picks.index(pick)]), mode


@pytest.mark.parametrize("seed", range(3))
def test_maxdet_reads_float32_features_exactly(seed):
    # past d picks the variances are far below |f|^2, so rounding the first values to float32 (as
    # maxdet once did) changes picks; the float32 numbers themselves are the input
    features = random_features(seed, 1500, 6, "gaussian").astype(np.float32)
    for mode in ("p", "tp"):
        picks = select_batch(features, 20, 40, "maxdet", mode=mode, noise=0.01).tolist()
        assert picks == eager_feature_space("maxdet", features.astype(np.float64), 20, 40, mode, 0.01), mode


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=2, max_size=40))
def test_bucket_index_is_monotone(values):
    values = np.sort(np.asarray(values))
    assert np.all(np.diff(family._bucket_index(values)) >= 0)


def eager_feature_space(method, features, n_train, k, mode, noise):
    pool = features[n_train:]
    picks = []
    if method == "maxdet":
        conditioned = list(features[:n_train]) if mode == "tp" else []
        for _ in range(k):
            g = np.array(conditioned).reshape(-1, features.shape[1])
            m = noise * np.linalg.inv(noise * np.eye(features.shape[1]) + g.T @ g)
            var = np.einsum("ij,jk,ik->i", pool, m, pool)
            var[picks] = -np.inf
            picks.append(int(np.argmax(var)))
            conditioned.append(pool[picks[-1]])
        return picks
    centres = list(features[:n_train]) if mode == "tp" else []
    for _ in range(k):
        if not centres:
            picks.append(int(np.argmax((pool ** 2).sum(1))))
        else:
            c = np.array(centres)
            d2 = ((pool[:, None, :] - c[None]) ** 2).sum(-1).min(1)
            d2[picks] = -np.inf
            picks.append(int(np.argmax(d2)))
        centres.append(pool[picks[-1]])
    return picks


# ------------------------------------------------------------------------------- degenerate inputs

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_degenerate_inputs_give_valid_deterministic_picks(data):
    n_train = data.draw(st.integers(0, 6), label="n_train")
    n_pool = data.draw(st.integers(1, 25), label="n_pool")
    d = data.draw(st.integers(1, 40), label="d")  # often d > n
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_train + n_pool, d))
    n_dup = data.draw(st.integers(0, n_pool), label="duplicates")
    features[n_train + rng.integers(n_pool, size=n_dup)] = features[n_train]  # duplicate rows
    n_zero = data.draw(st.integers(0, n_pool), label="zero rows")
    features[n_train + rng.integers(n_pool, size=n_zero)] = 0.0
    method = data.draw(st.sampled_from(METHODS), label="method")
    mode = "p" if method == "maxdiag" else data.draw(st.sampled_from(["p", "tp"]), label="mode")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    k = data.draw(st.integers(1, n_pool), label="k")  # k = 0 is refused (tests/test_hostile_numerics.py)
    picks = select_batch(features.astype(dtype), n_train, k, method, mode=mode, noise=0.01, random_state=seed)
    assert picks.shape == (k,) and picks.dtype == np.int64
    assert len(set(picks.tolist())) == k
    assert k == 0 or (picks.min() >= 0 and picks.max() < n_pool)
    again = select_batch(features.astype(dtype), n_train, k, method, mode=mode, noise=0.01, random_state=seed)
    assert again.tolist() == picks.tolist()


def test_all_zero_pool_picks_in_index_order():
    features = np.zeros((12, 3))
    features[:2] = 1.0
    for method, mode in CASES:
        picks = select_batch(features, 2, 4, method, mode=mode).tolist()
        if method == "kmeanspp":  # the first pick is random by definition, then every distance is zero
            assert picks[1:] == sorted(set(range(4)) - {picks[0]})[:3], mode
        else:
            assert picks == [0, 1, 2, 3], (method, mode)


def test_kmeanspp_is_deterministic_given_the_seed_and_depends_on_it():
    features = random_features(3, 200, 5, "gaussian")
    a = select_batch(features, 20, 15, "kmeanspp", mode="tp", random_state=4)
    assert a.tolist() == select_batch(features, 20, 15, "kmeanspp", mode="tp", random_state=4).tolist()
    assert a.tolist() != select_batch(features, 20, 15, "kmeanspp", mode="tp", random_state=5).tolist()


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="nope"), "method must be one of"),
    (dict(method="lcmd", mode="x"), "mode must be"),
    (dict(method="maxdiag", mode="tp"), "maxdiag has no 'tp' mode"),
    (dict(method="maxdet", noise=0.0), "noise"),
    (dict(method="lcmd", n_select=99), "cannot select 99 points from a pool of 10"),
])
def test_bad_arguments_fail_with_the_value_and_fix(kwargs, message):
    call = dict(features=np.ones((12, 2)), n_train=2, n_select=3, method="lcmd")
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        select_batch(**call)


def test_nonfinite_features_are_rejected():
    features = np.ones((5, 2))
    features[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        select_batch(features, 1, 2, "maxdist")


# ------------------------------------------------------------------------------- transforms

def test_posterior_features_give_the_posterior_kernel():
    features = random_features(1, 30, 7, "network")
    post = posterior_features(features, 10, 0.3)
    kernel = features @ features.T
    np.testing.assert_allclose(post @ post.T, posterior_kernel(kernel, list(range(10)), 0.3), atol=1e-10)
    np.testing.assert_allclose(posterior_features(features, 0, 0.3), features, atol=1e-12)


def test_scale_and_sketch():
    features = random_features(2, 50, 300, "gaussian")
    scaled = scale_features(features, 10)
    assert np.isclose((scaled[:10] ** 2).sum(1).mean(), 1.0)
    sketch = sketch_features(features, 2000, seed=1)
    assert sketch.shape == (50, 2000)
    np.testing.assert_array_equal(sketch, sketch_features(features, 2000, seed=1))
    assert not np.array_equal(sketch, sketch_features(features, 2000, seed=2))
    exact, approx = features @ features.T, sketch @ sketch.T  # the sketch is unbiased for the kernel
    assert np.abs(approx - exact).max() < 0.15 * np.abs(np.diag(exact)).mean()
    assert sketch_features(features.astype(np.float32), 16).dtype == np.float32
    # no sketch when the sketch would not be smaller
    np.testing.assert_array_equal(transform_features(features[:, :8], 0, sketch_dim=16), features[:, :8])


def test_default_modes_are_the_papers():
    assert DEFAULT_MODES == {"maxdiag": "p", "maxdet": "p", "maxdist": "tp", "kmeanspp": "tp", "lcmd": "tp",
                             "bait": "p"}
