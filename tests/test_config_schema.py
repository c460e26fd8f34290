"""Issue 33, one config schema: the estimators' keywords and defaults checked against it (the name
and default differences in one table), one checker for a sweep's config sections, one `quick:`
overlay, and the docs' tables generated from the schema."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from al_bnn import config as schema
from al_bnn.config import (
    ESTIMATOR_DEFAULTS,
    ESTIMATOR_NAMES,
    ESTIMATOR_SECTIONS,
    ConfigError,
    config_from_dict,
    estimator_config_key,
    key_default,
    schema_field,
    with_quick,
)
from al_bnn.recipe import recipe_default

REPO_ROOT = Path(__file__).resolve().parent.parent
# keywords of the estimators that set no config key (everything else must map to one)
ESTIMATOR_ONLY = {"normalize_y", "warm_start", "calibration", "calibration_fraction"}
TWO_TASKS = {"datasets": ["yacht"], "samplers": ["random"], "seeds": [0],
             "schedule": {"default": {"num_train_init": 5, "num_al_incr": 5, "al_iter": 1}}}


def _estimators():
    from al_bnn.models.estimators import ESTIMATORS

    return list(ESTIMATORS.values())


def _keywords(cls) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


def test_every_estimator_default_is_the_schema_s_or_a_declared_difference():
    """Fails if a default changes in one place only: a literal in an estimator's signature, or a
    schema or recipe default the estimators no longer follow."""
    checked = set()
    for cls in _estimators():
        for name, parameter in _keywords(cls).items():
            key = estimator_config_key(name)
            if key is None:
                assert name in ESTIMATOR_ONLY, f"{cls.__name__}({name}=...) sets no config key and is not declared"
                continue
            section, _, field = key.rpartition(".")
            expected = ESTIMATOR_DEFAULTS.get(name, recipe_default(section, field, key_default(key)))
            default = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
            assert default == expected and type(default) is type(expected), \
                f"{cls.__name__}({name}={parameter.default!r}) but {key} gives {expected!r}"
            checked.add(name)
    assert {"n_epochs", "random_state", "layer_sizes", "dropout_rate", "ensemble_size", "weight_std"} <= checked


def test_the_name_table_names_real_keys_and_keywords_and_no_name_is_ambiguous():
    keywords = {name for cls in _estimators() for name in _keywords(cls)}
    for keyword, key in ESTIMATOR_NAMES.items():
        schema_field(key)  # a real config key
        assert keyword in keywords and keyword != key.rpartition(".")[2]
    for keyword in keywords - set(ESTIMATOR_NAMES):
        sections = [s for s in ESTIMATOR_SECTIONS if keyword in {f.name for f in schema._section_fields(s).values()}]
        assert len(sections) <= 1, f"{keyword} is a key of {sections}"
    for keyword in ESTIMATOR_DEFAULTS:
        assert keyword in keywords


def _non_default_config(model: str):
    """A config whose every key an estimator of `model` takes is off its default (and valid)."""
    raw = {"seed": 7, "parms": {"name_model": model, "ensemble_size": 3},
           "net_config": {"layer_sizes": [9, 7], "learning_rate": 0.01, "clip_gradient": 5.0, "activation": "relu",
                          "input_transform": "tanh", "parametrization": "ntk", "nll_beta": 0.5,
                          "dropout_rate": 0.25 if model == "dropout" else 0.0},
           "train_schedule": {"batch_size": 8, "num_epochs": 3, "num_steps": 40, "min_steps": 11,
                              "learning_rate_schedule": "linear_decay", "retrain_from": "initial"}}
    if estimator_config_key("calibration") is not None:  # the loop's calibration keys
        raw["train_schedule"].update(calibration="holdout", calibration_fraction=0.3)
    if model == "bnn":
        raw["net_config"].update(weight_std=0.3, divergence_scale=0.5, ood_std_prior=0.2, noise_std=0.3,
                                 ncp_scale=0.4, center_at_target=False)
    return config_from_dict(raw, "test")


@pytest.mark.parametrize("model", ["bnn", "dropout", "ensemble"])
def test_the_learner_and_the_estimators_map_keywords_through_the_one_table(model):
    from al_bnn.learner import estimator_for_config

    config = _non_default_config(model)
    estimator = estimator_for_config(config)
    params = estimator.get_params()
    assert params["n_epochs"] == 3 and params["n_steps"] == 40 and params["random_state"] == 7
    mapped = [name for name in params if estimator_config_key(name) is not None]
    assert len(mapped) >= 13
    back = estimator._validated_config()  # the estimator's keywords as a config again
    for name in mapped:
        key = estimator_config_key(name)
        assert schema.config_value(back, key) == schema.config_value(config, key), name
    assert back.parms.name_model == model


def test_a_config_at_the_schema_default_leaves_a_deliberately_different_estimator_default():
    from al_bnn.learner import estimator_for_config

    dropout = estimator_for_config(config_from_dict({"parms": {"name_model": "dropout"},
                                                     "net_config": {"dropout_rate": 0.3}}, "test"))
    assert dropout.dropout_rate == 0.3
    if estimator_config_key("calibration") is not None:  # the loop's calibration key
        assert estimator_for_config(config_from_dict({}, "test")).calibration == ESTIMATOR_DEFAULTS["calibration"]
        changed = config_from_dict({"train_schedule": {"calibration": "holdout", "calibration_fraction": 0.3}}, "t")
        assert estimator_for_config(changed).calibration_fraction == 0.3


def test_an_estimator_value_is_refused_with_the_schema_s_message():
    from al_bnn.models.estimators import BNNRegressor

    with pytest.raises(ConfigError, match=r"BNNRegressor parameters: key 'train_schedule.num_epochs': expected an "
                                          r"integer, got 'ten'"):
        BNNRegressor(n_epochs="ten")._validated_config()
    with pytest.raises(ConfigError, match=r"key 'net_config.layer_sizes': expected a non-empty list"):
        BNNRegressor(layer_sizes=(3, 0))._validated_config()


# -- one checker: a sweep's config sections and its data keys go through the schema ------------------


@pytest.mark.parametrize("change,message", [
    ({"experiment": {"parms": 3}}, r"b.yaml: section 'experiment.parms' must be a mapping, got 3"),
    ({"experiment": [1]}, r"b.yaml: key 'experiment' must be a mapping of config sections"),
    ({"model_settings": {"bnn": 3}}, r"b.yaml: key 'model_settings.bnn' must be a mapping of config sections"),
    ({"sampler_settings": {"random": {"parms": {"n_mc_samples": 1}}}},
     r"b.yaml: key 'sampler_settings.random.parms.n_mc_samples': 1 is out of range; it must be >= 2"),
    ({"experiment": {"net_config": {"learning_rate": -1.0}}},
     r"b.yaml: key 'experiment.net_config.learning_rate': -1.0 is out of range"),
    ({"experiment": {"net_confg": {}}},
     r"b.yaml: key 'experiment': unknown key 'net_confg'. Did you mean 'net_config'"),
    ({"test_fraction": "x"}, r"b.yaml: key 'test_fraction': expected a number, got 'x'"),
    ({"test_fraction": 1}, r"b.yaml: key 'test_fraction': 1.0 is out of range; it must be < 1.0"),
    ({"uci_root": 5}, r"b.yaml: key 'uci_root': expected a string, got 5"),
])
def test_a_sweep_checks_its_config_sections_with_the_schema(change, message):
    from al_bnn_lab import sweep

    with pytest.raises(ConfigError, match=message):
        sweep.benchmark_config_from_dict({**TWO_TASKS, **change}, "b.yaml")


def test_a_sweep_s_test_fraction_defaults_to_the_schema_s():
    from al_bnn_lab import sweep

    assert sweep.benchmark_config_from_dict(TWO_TASKS, "b.yaml").test_fraction == key_default("data.test_fraction")


# -- one quick: overlay -------------------------------------------------------------------------------


def test_the_quick_overlay_merges_layers_then_their_quick_sections_in_order():
    common = {"seeds": [0, 1, 2], "experiment": {"net_config": {"layer_sizes": [50]}},
              "quick": {"seeds": [0], "experiment": {"net_config": {"layer_sizes": [8], "learning_rate": 0.1}}}}
    own = {"samplers": ["gpa"], "experiment": {"parms": {"n_mc_samples": 10}},
           "quick": {"experiment": {"net_config": {"learning_rate": 0.2}}}}
    assert with_quick({"common": common, "own": own}, quick=False) == {
        "seeds": [0, 1, 2], "experiment": {"net_config": {"layer_sizes": [50]}, "parms": {"n_mc_samples": 10}},
        "samplers": ["gpa"]}
    assert with_quick({"common": common, "own": own}, quick=True) == {
        "seeds": [0], "samplers": ["gpa"],
        "experiment": {"net_config": {"layer_sizes": [8], "learning_rate": 0.2}, "parms": {"n_mc_samples": 10}}}
    assert "quick" in common and "quick" in own  # the inputs are left as they were
    with pytest.raises(ConfigError, match=r"own: key 'quick' must be a mapping of the keys --quick overrides"):
        with_quick({"common": common, "own": {"quick": [1]}}, quick=False)


def test_the_benchmark_the_study_and_its_cost_questions_use_the_one_overlay(tmp_path):
    from al_bnn_lab import study, sweep

    assert sweep.with_quick is with_quick and study.with_quick is with_quick
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({**TWO_TASKS, "quick": ["seeds"]}))
    with pytest.raises(ConfigError, match=r"b.yaml: key 'quick' must be a mapping"):  # was an AttributeError
        sweep.load_benchmark_config(path, quick=True)
    config_dir = REPO_ROOT / "configs" / "study"
    common, own = (yaml.safe_load((config_dir / name).read_text()) for name in ("common.yaml", "q1_samplers.yaml"))
    raw, _ = study.question_settings("q1", quick=True)
    expected = with_quick({"common": common, "own": own}, quick=True)
    expected.pop("study", None)
    assert raw["seeds"] == expected["seeds"] == common["quick"]["seeds"]
    assert raw["experiment"] == expected["experiment"]
    cost = study.cost_settings(quick=True)
    assert cost["pool_scaling"]["n_train"] == 50  # q5_cost.yaml's quick: section on top


# -- uci_protocol's --set: values checked by the schema at parse time ---------------------------------


def test_run_uci_protocol_set_values_are_checked_by_the_schema():
    from al_bnn_lab import uci_protocol

    with pytest.raises(ConfigError, match=r"--set nll_beta: 5.0 is out of range; it must be <= 1.0"):
        uci_protocol.parse_settings(["nll_beta=5"])
    with pytest.raises(ConfigError, match=r"--set n_epochs: expected an integer, got 'many'"):
        uci_protocol.parse_settings(["n_epochs=many"])
    assert uci_protocol.parse_settings(["n_epochs=3", "normalize_y=false"]) == {"n_epochs": 3, "normalize_y": False}


# -- the docs' tables are generated from the schema ---------------------------------------------------


def test_the_docs_estimator_tables_are_the_generated_ones():
    page = (REPO_ROOT / "docs" / "configs.md").read_text()
    assert schema.markdown_key_table() in page
    assert schema.markdown_estimator_tables() in page, \
        "regenerate docs/configs.md's estimator tables: python -m al_bnn.config --estimators"
