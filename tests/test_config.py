"""Config loading: defaults, validation messages, and the published configs."""

from pathlib import Path

import pytest

from al_bnn.config import ConfigError, config_from_dict, describe_keys, dump_config, load_config, markdown_key_table

REPO_ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ["config_gpa.yaml", "config_rand.yaml", "config_small_fgpa.yaml", "config_small_bgpa.yaml"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_configs_load_with_defaults_filled_in(name):
    config = load_config(REPO_ROOT / "configs" / name)
    assert config.net_config.weight_std == 0.1 and config.net_config.clip_gradient == 100.0
    assert config.net_config.dropout_rate == 0.0 and config.parms.gp_noise == 0.01
    assert config.parms.function_samples == "joint"
    assert "weight_std: 0.1" in dump_config(config)


def test_published_values():
    gpa = load_config(REPO_ROOT / "configs" / "config_gpa.yaml")
    assert (gpa.al_schedule.al_iter, gpa.al_schedule.num_al_incr, gpa.al_schedule.num_train_init) == (5, 200, 500)
    assert gpa.net_config.layer_sizes == [100, 100] and gpa.net_config.learning_rate == 1e-4
    assert gpa.parms.sample_policy == "gpa" and gpa.parms.n_mc_samples == 100
    assert gpa.train_schedule.num_epochs == 1000 and gpa.train_schedule.batch_size == 16
    assert load_config(REPO_ROOT / "configs" / "config_rand.yaml").parms.n_mc_samples == 200
    small = load_config(REPO_ROOT / "configs" / "config_small_bgpa.yaml")
    assert small.parms.sample_policy == "bgpa" and small.net_config.layer_sizes == [50, 50]
    assert (small.al_schedule.al_iter, small.al_schedule.num_al_incr, small.al_schedule.num_train_init) == (3, 50, 50)


@pytest.mark.parametrize("raw,message", [
    ({"al_schedule": {"al_itr": 3}},
     r"x.yaml: section 'al_schedule': unknown key 'al_itr'. Did you mean 'al_iter'\?"),
    ({"trian_schedule": {}}, r"unknown key 'trian_schedule'. Did you mean 'train_schedule'\?"),
    ({"al_schedule": {"al_iter": "five"}}, r"key 'al_schedule.al_iter': expected an integer, got 'five'"),
    ({"al_schedule": {"al_iter": 2.5}}, r"key 'al_schedule.al_iter': expected an integer"),
    ({"net_config": {"learning_rate": 0}}, r"key 'net_config.learning_rate': 0.0 is out of range; it must be > 0"),
    ({"net_config": {"layer_sizes": [100, 0]}}, r"key 'net_config.layer_sizes': expected a non-empty list"),
    ({"parms": {"function_samples": "independent"}},
     r"'independent' is not allowed; choose one of 'joint', 'marginal'"),
    ({"parms": {"sample_policy": "gpaa"}}, r"unknown sampler 'gpaa'. Did you mean 'gpa'\?"),
    ({"parms": {"n_mc_samples": 1}}, r"key 'parms.n_mc_samples': 1 is out of range; it must be >= 2"),
    ({"parms": {"resample_every_round": True}}, r"resample_every_round' is true, which only batch GPA"),
    ({"train_schedule": {"num_epochs": True}}, r"expected an integer, got True"),
    ({"net_config": {"ood_std_prior": 0.5, "noise_std": 0.0}}, r"need input noise > 0"),
    ({"parms": {"name_model": "dropout"}}, r"`name_model: dropout` needs a rate in \(0, 1\)"),
    ({"net_config": {"dropout_rate": 0.2}}, r"the `bnn` model has no dropout"),
    ({"parms": {"name_model": "ensemble", "gpa_kernel": "exact"}}, r"'parms.gpa_kernel' is 'exact', which only"),
    ({"parms": {"name_model": "ensemble", "ensemble_size": 1}}, r"'parms.ensemble_size': 1 is out of range"),
    ({"parms": {"name_model": "mlp"}}, r"'mlp' is not allowed; choose one of 'bnn', 'dropout', 'ensemble'"),
    ({"data": {"size_pool": 100}}, r"key 'data.size_pool' is 100, but the schedule labels 1500 points"),
    ({"seed": -1}, r"key 'seed': -1 is out of range"),
    ({"net_config": 3}, r"section 'net_config' must be a mapping"),
    ([1, 2], r"the top level must be a mapping"),
])
def test_bad_configs_fail_with_a_message_naming_file_key_and_fix(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, "x.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("al_schedule: {al_iter: 3\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty).parms.sample_policy == "gpa"


def test_docs_key_table_is_the_generated_one():
    page = (REPO_ROOT / "docs" / "configs.md").read_text()
    for key, _, _ in describe_keys():
        assert f"`{key}`" in page, f"docs/configs.md does not document config key {key}"
    assert markdown_key_table() in page, "regenerate the key table of docs/configs.md: python -m al_bnn.config"


@pytest.mark.parametrize("name,model", [("config_gpa_ncp.yaml", "bnn"), ("config_gpa_dropout.yaml", "dropout"),
                                        ("config_gpa_ensemble.yaml", "ensemble")])
def test_one_config_per_model_loads(name, model):
    config = load_config(REPO_ROOT / "configs" / name)
    assert config.parms.name_model == model
    assert (config.net_config.ood_std_prior is not None) == (name == "config_gpa_ncp.yaml")
