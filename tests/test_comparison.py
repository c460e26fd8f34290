"""Pick comparisons: agreement counts rounds, and references reproduce the samplers' picks."""

import numpy as np
import pytest

from al_bnn.config import ConfigError, config_from_dict
from al_bnn.selection import GpaSampler, SelectionRequest
from al_bnn.selection.comparison import REFERENCE_SELECTIONS, agreement, reference_sampler


def test_agreement_ignores_order_within_a_round_and_stops_at_the_first_differing_round():
    picks = np.array([1, 2, 3, 4, 5, 6])
    reordered = agreement(picks, np.array([2, 1, 4, 3, 5, 6]), batch_size=2)
    assert reordered.agreed_picks == 6 and reordered.in_order == 0
    assert agreement(picks, picks.copy(), 2).in_order == 6
    result = agreement(picks, np.array([1, 2, 3, 9, 5, 6]), batch_size=2)
    assert result.agreed_picks == 2 and result.in_order == 3 and result.overlap == pytest.approx(5 / 6)
    assert agreement(picks, np.array([7, 8, 9, 10, 11, 12]), batch_size=3).agreed_picks == 0
    with pytest.raises(ValueError, match="differ in length"):
        agreement(picks, picks[:3], 2)


@pytest.mark.parametrize("method", ["fast", "batch", "lowrank"])
def test_references_make_the_samplers_picks_from_the_same_samples(method):
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(20, 5)) @ rng.normal(size=(5, 90))  # correlated, rank 5
    request = SelectionRequest(n_select=12, n_train=10, n_pool=80, rng=rng, draw_samples=lambda draw: samples)
    picks = GpaSampler(method, batch_size=4, noise=0.01).select(request)
    reference = reference_sampler(f"{method}_float64", 4, 0.01).select(request)
    np.testing.assert_array_equal(picks, reference)
    assert reference_sampler("exact", 4, 0.01).needs == "features"
    assert reference_sampler("fast_float32", 4, 0.01).needs == "samples"
    assert reference_sampler("fast_float32", 4, 0.01).dtype == np.float32
    features = rng.normal(size=(90, 6))
    features_request = SelectionRequest(n_select=12, n_train=10, n_pool=80, rng=rng, features=features)
    exact = GpaSampler("lowrank", batch_size=4, kernel="exact").select(features_request)
    np.testing.assert_array_equal(reference_sampler("exact", 4, 0.01).select(features_request), exact)
    with pytest.raises(ValueError, match="unknown reference selection"):
        reference_sampler("fast_float16", 4, 0.01)


def test_compare_with_is_validated_at_the_config_boundary():
    assert config_from_dict({"parms": {"compare_with": list(REFERENCE_SELECTIONS)}}).parms.compare_with == \
        list(REFERENCE_SELECTIONS)
    with pytest.raises(ConfigError, match="distinct names"):
        config_from_dict({"parms": {"compare_with": ["exact", "exact"]}})
    with pytest.raises(ConfigError, match="redraws them every round"):
        config_from_dict({"parms": {"sample_policy": "bgpa", "resample_every_round": True,
                                    "compare_with": ["fast_float64"]}})
    with pytest.raises(ConfigError, match="'parms.compare_with' names 'exact'"):
        config_from_dict({"parms": {"name_model": "ensemble", "compare_with": ["exact"]}})
