"""Hostile inputs: whatever comes in, the answer is a correct result or a clear, typed error."""

import logging

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from al_bnn.config import ConfigError, config_from_dict
from al_bnn.data import DataFileError, read_table, read_uci_folder
from al_bnn.selection import select_gpa, select_gpa_from_factor

SECTIONS = ["seed", "al_schedule", "net_config", "parms", "train_schedule", "data", "sede", "parm"]
KEYS = ["al_iter", "num_al_incr", "num_train_init", "layer_sizes", "learning_rate", "sample_policy", "n_mc_samples",
        "batch_size", "num_epochs", "gp_noise", "function_samples", "dataset", "size_pool", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8), st.lists(st.integers(-3, 200), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.one_of(scalars, st.dictionaries(st.sampled_from(SECTIONS),
                                          st.one_of(scalars, st.dictionaries(st.sampled_from(KEYS), scalars)))))
def test_config_loader_accepts_or_names_the_problem(raw):
    try:
        config = config_from_dict(raw, "fuzz.yaml")
    except ConfigError as error:
        assert str(error).startswith("fuzz.yaml")
        return
    assert config.final_train_size >= 1 and config.parms.n_mc_samples >= 2  # a valid config
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())), "again") == config


cells = st.one_of(st.integers(-100, 100).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["x", "", "1e400", "-", "nan", "3,5"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(cells, min_size=0, max_size=4), max_size=6), st.lists(st.integers(-1, 4), max_size=3),
       st.lists(st.integers(-1, 4), max_size=2))
def test_uci_folder_loader_reads_or_names_the_file(tmp_path, rows, features, target):
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    (folder / "data.txt").write_text("\n".join(" ".join(row) for row in rows))
    (folder / "index_features.txt").write_text("\n".join(map(str, features)))
    (folder / "index_target.txt").write_text("\n".join(map(str, target)))
    try:
        x, y = read_uci_folder(folder)
    except DataFileError as error:
        assert str(folder) in str(error)
        return
    assert x.shape[0] == y.shape[0] >= 2 and np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.ptp(y) > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(cells, min_size=1, max_size=3), max_size=6), st.sampled_from(["a", "b", "0", "9", None]))
def test_csv_loader_reads_or_names_the_file(tmp_path, rows, target):
    path = tmp_path / "fuzz.csv"
    path.write_text("a,b,c\n" + "\n".join(",".join(row) for row in rows))
    try:
        x, y = read_table(path, target)
    except DataFileError as error:
        assert str(path) in str(error)
        return
    assert len(x) == len(y) and np.all(np.isfinite(x)) and np.ptp(y) > 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.integers(0, 12), st.integers(0, 8), st.integers(-2, 14), st.integers(0, 4),
       st.sampled_from(["fast", "batch", "lowrank"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_selection_gives_valid_picks_or_a_value_error(num_samples, n_points, n_anchor, n_select, batch_size, method,
                                                      poison, seed):
    rng = np.random.default_rng(seed)
    samples = rng.normal(size=(num_samples, n_points))
    poisoned = poison and samples.size > 0
    if poisoned:
        samples.flat[rng.integers(samples.size)] = np.nan
    try:
        picks = select_gpa(samples, n_anchor, n_select, batch_size=batch_size, method=method)
    except ValueError as error:
        assert str(error)  # a message, not a bare exception
        return
    n_pool = n_points - n_anchor
    assert not poisoned and num_samples >= 2 and batch_size >= 1
    assert picks.shape == (n_select,) and len(set(picks.tolist())) == n_select
    assert np.all((0 <= picks) & (picks < n_pool))


def test_duplicate_points_and_a_tiny_noise_get_logged_jitter_not_a_crash(caplog):
    factor = np.repeat(np.random.default_rng(0).normal(size=(5, 3)), 4, axis=0)  # every point four times
    with caplog.at_level(logging.WARNING, logger="al_bnn.samplers"):
        picks = {m: select_gpa_from_factor(factor, 8, 6, 3, 1e-30, m).indices for m in ("batch", "fast", "lowrank")}
    assert "not positive definite" in caplog.text and "added jitter" in caplog.text
    for indices in picks.values():
        assert len(set(indices.tolist())) == 6


def test_constant_features_and_duplicate_rows_in_a_dataset_are_fine(tmp_path):
    from al_bnn.data import split_by_seed
    x = np.column_stack([np.ones(40), np.repeat(np.arange(20.0), 2)])  # a constant column, every row twice
    y = np.repeat(np.arange(20.0), 2)
    data = split_by_seed(x, y, "dupes", seed=0)
    assert np.all(np.isfinite(data.pool_x)) and data.pool_x.shape == (32, 2)


@pytest.mark.parametrize("method", ["fast", "batch", "lowrank"])
def test_selecting_the_whole_remaining_pool_at_the_last_iteration(method):
    samples = np.random.default_rng(1).normal(size=(10, 25))
    picks = select_gpa(samples, n_anchor=20, n_select=5, batch_size=10, method=method)
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4]
