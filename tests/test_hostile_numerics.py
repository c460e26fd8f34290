"""Issue 31, items 20-21: selection at extreme scales, n_select that is not a positive integer, and
bait in float32. Pure NumPy, small and fast. Every comparison is of picks (integer indices) and is
exact; the inputs are random, so no two candidates are within rounding of a tie.

Scale: maxdiag, maxdist, kmeanspp and lcmd have no noise and are invariant under c F outright.
maxdet, bait and GPA are invariant under (c F, c^2 noise): the kernel and the noise in the same
units. Before the fix, features or samples of 1e-200 had kernel values of 1e-400 (0.0) and every
method returned the index order [0..k); 1e155-1e160 overflowed (inf, NaN, argmax of an empty
sequence). (At 1e150 the kernel, 1e300, still fits a float64, and some methods were right.)
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from al_bnn.selection import (
    FamilySampler,
    GpaSampler,
    SelectionRequest,
    select_batch,
    select_gpa,
    select_gpa_from_factor,
)

N_TRAIN, N_SELECT = 20, 6
NOISE_FREE = [("maxdiag", "p"), ("maxdist", "p"), ("maxdist", "tp"), ("kmeanspp", "p"), ("kmeanspp", "tp"),
              ("lcmd", "p"), ("lcmd", "tp")]
WITH_NOISE = [("maxdet", "p"), ("maxdet", "tp"), ("bait", "p"), ("bait", "tp")]
GPA_METHODS = ["fast", "batch", "lowrank"]


def features() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((220, 16))  # 20 training rows, a pool of 200


def samples() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((24, 220))  # 24 function samples, 20 anchors


def family_picks(values, method, mode, noise=0.01) -> list[int]:
    with np.errstate(all="ignore"):  # before the fix: overflow warnings, then wrong picks or an error
        return select_batch(values, N_TRAIN, N_SELECT, method, mode=mode, noise=noise, random_state=3).tolist()


def gpa_picks(values, method, noise=0.01) -> list[int]:
    with np.errstate(all="ignore"):
        return select_gpa(values, N_TRAIN, N_SELECT, batch_size=3, noise=noise, method=method).tolist()


# ----------------------------------------------------------------------------------------- item 20: scale

@pytest.mark.parametrize("scale", [1e-200, 1e160])
@pytest.mark.parametrize(("method", "mode"), NOISE_FREE)
def test_noise_free_methods_pick_the_same_points_at_any_scale(method, mode, scale):
    expected = family_picks(features(), method, mode)
    assert expected != list(range(N_SELECT))
    assert family_picks(features() * scale, method, mode) == expected


@pytest.mark.parametrize(("method", "mode"), WITH_NOISE)
def test_noise_methods_pick_the_same_points_with_the_kernel_and_the_noise_in_the_same_units(method, mode):
    scale = 1e155  # kernel values ~1e311 overflow; the noise scaled alike, 1e308, is still a float64
    expected = family_picks(features(), method, mode, noise=0.01)
    assert family_picks(features() * scale, method, mode, noise=0.01 * scale * scale) == expected


@pytest.mark.parametrize("method", GPA_METHODS)
def test_gpa_picks_the_same_points_with_the_samples_and_the_noise_in_the_same_units(method):
    scale = 1e155
    expected = gpa_picks(samples(), method, noise=0.01)
    assert gpa_picks(samples() * scale, method, noise=0.01 * scale * scale) == expected
    factor, scale = np.random.default_rng(2).standard_normal((220, 24)), 1e-150  # variances of ~1e-300 still fit
    result = select_gpa_from_factor(factor, N_TRAIN, N_SELECT, 3, 0.01, method)
    scaled = select_gpa_from_factor(factor * scale, N_TRAIN, N_SELECT, 3, 0.01 * scale * scale, method)
    assert scaled.indices.tolist() == result.indices.tolist()
    np.testing.assert_allclose(scaled.variances, result.variances * scale * scale, rtol=1e-9)  # in the factor's units


@pytest.mark.parametrize(("method", "mode"), WITH_NOISE)
def test_a_tiny_kernel_with_the_default_noise_is_not_answered_in_index_order(method, mode):
    """Features of 1e-200 with noise 0.01: the noise is 1e398 times the kernel, so conditioning
    changes no variance by more than 1e-398 of itself: the picks are those of the plain features
    with any noise that dwarfs the kernel (1e30: changes below 1e-28, far under float64 rounding)."""
    expected = family_picks(features(), method, mode, noise=1e30)
    assert expected != list(range(N_SELECT))
    assert family_picks(features() * 1e-200, method, mode, noise=0.01) == expected


@pytest.mark.parametrize("method", GPA_METHODS)
def test_gpa_on_tiny_samples_with_the_default_noise_is_not_answered_in_index_order(method):
    expected = gpa_picks(samples(), method, noise=1e30)  # as above: the noise dwarfs the kernel
    assert expected != list(range(N_SELECT))
    assert gpa_picks(samples() * 1e-200, method, noise=0.01) == expected


def test_float32_samplers_see_samples_of_1e_200_not_zeros():
    """The samplers cast to gpa_dtype float32: samples of 1e-200 were zeros there."""
    values = samples()

    def request(scale):
        return SelectionRequest(n_select=N_SELECT, n_train=N_TRAIN, n_pool=200, rng=np.random.default_rng(5),
                                draw_samples=lambda draw: values * scale)

    for method in ("maxdist", "lcmd"):
        sampler = FamilySampler(method, kernel="mc", dtype="float32")
        expected = sampler.select(request(1.0)).tolist()
        assert expected != list(range(N_SELECT))
        assert sampler.select(request(1e-200)).tolist() == expected, method
    expected = GpaSampler("lowrank", 3, noise=1e30, dtype="float32").select(request(1.0)).tolist()
    assert GpaSampler("lowrank", 3, noise=0.01, dtype="float32").select(request(1e-200)).tolist() == expected


def test_ordinary_features_are_not_rescaled():
    """Inside the safe range nothing is rescaled: the picks are bit-for-bit those of the plain math
    (the equivalence tests of test_selection_family.py hold them to the textbook references)."""
    from al_bnn.selection.scaling import scale_exponent
    assert scale_exponent(features()) == 0 and scale_exponent(features() * 1e-20) == 0
    assert scale_exponent(features() * 1e-200) != 0 and scale_exponent(features() * 1e160) != 0
    assert scale_exponent(features().astype(np.float32) * 1e8) != 0  # float32's range is narrower


# ----------------------------------------------------------------------------------------- item 20: n_select

BAD_COUNTS = [2.5, True, 0, -1, np.float64(3.0), "3"]


@pytest.mark.parametrize("n_select", BAD_COUNTS, ids=repr)
def test_n_select_must_be_a_positive_integer_in_every_entry(n_select):
    values = features()
    message = "n_select must be a positive integer"
    for method, mode in NOISE_FREE + WITH_NOISE:
        with pytest.raises(ValueError, match=message):
            select_batch(values, N_TRAIN, n_select, method, mode=mode)
    for method in GPA_METHODS:
        with pytest.raises(ValueError, match=message):
            select_gpa(samples(), N_TRAIN, n_select, method=method)
        with pytest.raises(ValueError, match=message):
            select_gpa_from_factor(values, N_TRAIN, n_select, method=method)
    with pytest.raises(ValueError, match=message):  # every sampler, plug-ins included, gets a SelectionRequest
        SelectionRequest(n_select=n_select, n_train=N_TRAIN, n_pool=200, rng=np.random.default_rng(0))


def test_n_select_above_the_pool_is_refused_and_numpy_integers_are_accepted():
    with pytest.raises(ValueError, match="cannot select 201 points from a pool of 200; request at most 200"):
        select_batch(features(), N_TRAIN, 201, "maxdist")
    assert len(select_batch(features(), N_TRAIN, np.int64(4), "maxdist")) == 4
    assert len(select_gpa(samples(), N_TRAIN, np.int32(4))) == 4


# ----------------------------------------------------------------------------------------- item 21: bait float32

def test_bait_float32_picks_equal_its_float64_picks():
    """P mode, 2,000 pool rows x 32 features, 50 picks (100 forward): once the picks span the
    features, the numerators fall by orders of magnitude, and float32 updates of them kept only
    9 of the 50 float64 picks. The float64 picks are stable under float32 rounding of the inputs
    (the second assertion), so the float32 run must give them exactly."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal((2100, 32))
    expected = select_batch(values, 100, 50, "bait", mode="p").tolist()
    rounded = values.astype(np.float32)
    assert select_batch(rounded.astype(np.float64), 100, 50, "bait", mode="p").tolist() == expected
    assert select_batch(rounded, 100, 50, "bait", mode="p").tolist() == expected


def test_bait_returns_n_select_points_even_when_rounding_leaves_no_gap():
    """A near-noiseless posterior (noise 1e-30 of the kernel) leaves every backward gap to
    rounding; the backward step once removed an already removed pick and returned too many."""
    logging.getLogger("al_bnn.samplers").setLevel(logging.ERROR)
    picks = select_batch(features() * 1e160, N_TRAIN, 8, "bait", mode="p", noise=0.01)
    assert len(picks) == 8 and len(set(picks.tolist())) == 8
