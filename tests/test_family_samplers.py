"""The selection family as registered samplers: config keys, transforms, and the benchmark config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from al_bnn.config import ConfigError, config_from_dict
from al_bnn.selection import FAMILY_METHODS, SelectionRequest, make_sampler, sampler_names
from al_bnn.selection.family import DEFAULT_MODES, select_batch, transform_features
from al_bnn.selection.gpa_math import centred_sample_factor
from al_bnn_lab.sweep import load_benchmark_config

REPO = Path(__file__).resolve().parent.parent


def request_for(samples, n_train, n_select, features=None, seed=0):
    return SelectionRequest(n_select=n_select, n_train=n_train, n_pool=samples.shape[1] - n_train,
                            rng=np.random.default_rng(seed), draw_samples=lambda draw: samples, features=features)


@pytest.mark.parametrize("method", FAMILY_METHODS)
def test_every_method_is_a_registered_sampler_that_matches_select_batch(method):
    assert method in sampler_names()
    samples = np.random.default_rng(1).standard_normal((20, 90))
    config = config_from_dict({"parms": {"sample_policy": method, "gp_noise": 0.05}})
    picks = make_sampler(config.parms).select(request_for(samples, 15, 7))
    transform = 0.05 if method in ("maxdiag", "maxdet", "bait") else None  # the paper's choice ("auto")
    features = transform_features(centred_sample_factor(samples), 15, posterior_noise=transform)
    expected = select_batch(features, 15, 7, method, mode=DEFAULT_MODES[method], noise=0.05,
                            random_state=np.random.default_rng(0))
    assert picks.tolist() == expected.tolist()


def test_config_keys_reach_the_sampler():
    samples = np.random.default_rng(2).standard_normal((40, 120))
    parms = config_from_dict({"parms": {"sample_policy": "lcmd", "family_mode": "p", "family_transform": "train",
                                        "family_sketch_dim": 8}}).parms
    sampler = make_sampler(parms)
    assert (sampler.mode, sampler.transform, sampler.sketch_dim, sampler.needs) == ("p", "train", 8, "samples")
    picks = sampler.select(request_for(samples, 20, 5, seed=3))
    rng = np.random.default_rng(3)
    seed = int(rng.integers(2**31))  # the sketch's seed comes first from the request's generator
    features = transform_features(centred_sample_factor(samples), 20, sketch_dim=8, seed=seed, posterior_noise=0.01)
    assert features.shape[1] == 8
    assert picks.tolist() == select_batch(features, 20, 5, "lcmd", mode="p", random_state=rng).tolist()
    exact = make_sampler(config_from_dict({"parms": {"sample_policy": "maxdist", "family_kernel": "exact"}}).parms)
    assert exact.needs == "features"
    features = np.random.default_rng(4).standard_normal((50, 6))
    got = exact.select(request_for(np.zeros((2, 50)), 10, 4, features=features))
    assert got.tolist() == select_batch(features, 10, 4, "maxdist", mode="tp").tolist()


@pytest.mark.parametrize("raw,message", [
    ({"parms": {"family_mode": "both"}}, r"'parms.family_mode': 'both' is not allowed"),
    ({"parms": {"family_sketch_dim": -1}}, r"'parms.family_sketch_dim': -1 is out of range"),
    ({"parms": {"name_model": "ensemble", "family_kernel": "exact"}}, r"'parms.family_kernel' is 'exact', which only"),
])
def test_bad_family_keys_are_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


@pytest.mark.parametrize("quick", [False, True])
def test_the_benchmark_config_runs_the_family(quick):
    config = load_benchmark_config(REPO / "configs" / "benchmark.yaml", quick)
    family = [s for s in config.samplers if s in FAMILY_METHODS]
    assert family == (["lcmd", "bait"] if quick else ["maxdet", "maxdist", "kmeanspp", "lcmd", "bait"])
    for name in config.samplers:
        make_sampler(config_from_dict({"parms": {"sample_policy": name}}).parms)


def test_bench_selection_quick_runs_every_method():
    from al_bnn_lab.bench_selection import run

    lines = []
    rows = run([(8, 300, 10)], ["float64", "float32"], list(FAMILY_METHODS), print_row=lines.append)
    assert len(rows) == 2 * (len(FAMILY_METHODS) + 1)  # + the low-rank GPA baseline
    assert all(row["seconds"] >= 0 and row["peak_mib"] >= 0 for row in rows)
    assert lines[0].split()[:3] == ["method", "mode", "dtype"]
