"""The library's default sampler is the study's recommendation, lcmd on the gradient kernel
(al_bnn.recipe.DEFAULT_SAMPLER): Selector, ActiveLearner and al-bnn-suggest use it when no sampler is
named (suggest also under a --config that sets no parms.sample_policy), an explicitly named sampler keeps the
schema's settings, and lcmd-on-grad runs on every model."""

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import clone

from al_bnn import BNNRegressor, DropoutRegressor, EnsembleRegressor, Selector
from al_bnn.config import config_from_dict
from al_bnn.learner import ActiveLearner
from al_bnn.recipe import DEFAULT_SAMPLER, DEFAULT_SAMPLER_SETTINGS
from al_bnn.suggest import build_config, build_parser, main

QUICK = dict(layer_sizes=[8], n_epochs=3, min_steps=0, batch_size=16, calibration="none", random_state=0)
MODELS = {"bnn": BNNRegressor, "dropout": DropoutRegressor, "ensemble": EnsembleRegressor}


def test_the_declared_default_is_lcmd_on_the_gradient_kernel():
    assert DEFAULT_SAMPLER == "lcmd" and DEFAULT_SAMPLER_SETTINGS == {"family_kernel": "grad"}
    # the schema's own defaults stay the published ones (run keys of committed tables depend on them)
    schema = config_from_dict({}, "schema").parms
    assert schema.sample_policy == "gpa" and schema.family_kernel == "mc"


def test_selector_without_a_sampler_runs_lcmd_on_grad_and_clones_unchanged():
    selector = Selector()
    assert selector.parms.sample_policy == "lcmd" and selector.parms.family_kernel == "grad"
    assert selector.needs == "gradient_features"
    assert selector.get_params() == {"sampler": "lcmd"}  # __init__ stores the parameters as given
    copied = clone(Selector(sampling_batch_size=2))
    assert copied.get_params() == {"sampler": "lcmd", "sampling_batch_size": 2}
    assert copied.parms == Selector(sampling_batch_size=2).parms and copied.parms.family_kernel == "grad"


def test_an_explicit_sampler_keeps_the_schema_settings_and_family_kernel_is_the_users():
    schema = config_from_dict({"parms": {"sample_policy": "lrgpa"}}, "schema").parms
    assert Selector("lrgpa").parms == schema and Selector("lrgpa").parms.family_kernel == "mc"
    assert Selector("maxdist").parms.family_kernel == "mc"  # only the default sampler gets its kernel
    assert Selector("lcmd").parms == Selector().parms  # the default's name: the same recommended settings
    assert Selector("lcmd", family_kernel="mc").parms.family_kernel == "mc"
    assert Selector(family_kernel="exact").parms.family_kernel == "exact"


def test_active_learner_without_a_sampler_runs_lcmd_on_grad_and_clones_unchanged():
    learner = ActiveLearner(BNNRegressor(**QUICK))
    assert learner.sampler == "lcmd" and learner.parms.family_kernel == "grad"
    assert learner.get_params()["sampler"] == "lcmd" and "family_kernel" not in learner.get_params()
    copied = clone(learner)
    assert copied.sampler == "lcmd" and copied.settings == {} and copied.parms == learner.parms
    explicit = ActiveLearner(BNNRegressor(**QUICK), "lrgpa")
    assert explicit.parms.family_kernel == "mc" and explicit.parms.sample_policy == "lrgpa"


def _config(tmp_path, *extra):
    common = ["--labelled", "l.csv", "--target", "y", "--pool", "p.csv", "--n", "3", "--out", str(tmp_path / "o")]
    return build_config(build_parser().parse_args([*common, *extra])).parms


def test_suggest_defaults_to_lcmd_on_grad_and_keeps_a_named_or_configured_sampler(tmp_path):
    plain = _config(tmp_path)
    assert plain.sample_policy == "lcmd" and plain.family_kernel == "grad"
    named = _config(tmp_path, "--sampler", "lrgpa")
    assert named.sample_policy == "lrgpa" and named.family_kernel == "mc"
    (tmp_path / "lrgpa.yaml").write_text("parms: {sample_policy: lrgpa}\n")
    assert _config(tmp_path, "--config", str(tmp_path / "lrgpa.yaml")).sample_policy == "lrgpa"
    (tmp_path / "lcmd.yaml").write_text("parms: {sample_policy: lcmd}\n")  # the default's name: its kernel too
    assert _config(tmp_path, "--config", str(tmp_path / "lcmd.yaml")).family_kernel == "grad"
    (tmp_path / "mc.yaml").write_text("parms: {sample_policy: lcmd, family_kernel: mc}\n")
    assert _config(tmp_path, "--config", str(tmp_path / "mc.yaml")).family_kernel == "mc"
    assert _config(tmp_path, "--config", str(tmp_path / "mc.yaml"), "--sampler", "lcmd").family_kernel == "mc"
    assert _config(tmp_path, "--config", str(tmp_path / "mc.yaml"), "--sampler", "lrgpa").sample_policy == "lrgpa"
    assert "lcmd on the gradient kernel" in " ".join(build_parser().format_help().split())


def test_suggest_with_a_config_that_sets_no_sampler_runs_the_default_like_no_config(tmp_path):
    plain = _config(tmp_path)
    for name, text in [("net.yaml", "net_config: {layer_sizes: [8]}\n"),
                       ("parms.yaml", "parms: {n_mc_samples: 20, sampling_batch_size: 2}\n"),
                       ("empty.yaml", "{}\n")]:
        (tmp_path / name).write_text(text)
        configured = _config(tmp_path, "--config", str(tmp_path / name))
        assert configured.sample_policy == DEFAULT_SAMPLER == plain.sample_policy, name  # not the schema's gpa
        for key in ("family_kernel", "family_sketch_dim"):  # the kernel settings of the no-config path
            assert getattr(configured, key) == getattr(plain, key), (name, key)
        assert configured.family_kernel == DEFAULT_SAMPLER_SETTINGS["family_kernel"]
    assert _config(tmp_path, "--config", str(tmp_path / "parms.yaml")).sampling_batch_size == 2  # its keys kept
    (tmp_path / "kernel.yaml").write_text("parms: {family_kernel: exact}\n")  # no sampler, its own kernel: kept
    kernel = _config(tmp_path, "--config", str(tmp_path / "kernel.yaml"))
    assert kernel.sample_policy == DEFAULT_SAMPLER and kernel.family_kernel == "exact"


def test_suggest_warns_when_a_config_sets_gpa_only_keys_but_no_sampler(tmp_path, caplog):
    (tmp_path / "gpa_keys.yaml").write_text("parms: {gpa_kernel: exact}\n")
    with caplog.at_level("WARNING", logger="al_bnn.suggest"):
        assert _config(tmp_path, "--config", str(tmp_path / "gpa_keys.yaml")).sample_policy == DEFAULT_SAMPLER
    assert "sets parms.gpa_kernel, which only the GPA samplers read, but names no parms.sample_policy" in caplog.text
    caplog.clear()
    (tmp_path / "gpa_named.yaml").write_text("parms: {gpa_kernel: exact, sample_policy: lrgpa}\n")
    with caplog.at_level("WARNING", logger="al_bnn.suggest"):
        assert _config(tmp_path, "--config", str(tmp_path / "gpa_named.yaml")).gpa_kernel == "exact"
        _config(tmp_path, "--config", str(tmp_path / "gpa_keys.yaml"), "--sampler", "lrgpa")
        _config(tmp_path)  # no config at all
    assert "only the GPA samplers read" not in caplog.text


@pytest.mark.parametrize("sampler", ["gpa", "lrgpa", "maxdist", "random"])
def test_suggest_with_a_config_that_names_a_sampler_keeps_it_and_the_schema_kernel(tmp_path, sampler):
    (tmp_path / "named.yaml").write_text(f"parms: {{sample_policy: {sampler}}}\n")
    named = _config(tmp_path, "--config", str(tmp_path / "named.yaml"))
    assert named.sample_policy == sampler
    assert named.family_kernel == config_from_dict({}, "schema").parms.family_kernel == "mc"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_lcmd_on_grad_queries_every_model_through_active_learner(name):
    rng = np.random.default_rng(1)
    X, X_pool = rng.normal(size=(24, 3)), rng.normal(size=(60, 3))
    learner = ActiveLearner(MODELS[name](**QUICK)).fit(X, X.sum(1))
    query = learner.query(X_pool, 5)
    assert len(set(query.indices.tolist())) == 5 and query.indices.max() < 60
    assert np.isfinite(query.scores).all() and query.score_kind == "epistemic_variance"


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_lcmd_on_grad_suggests_for_every_model(tmp_path, model):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 2))
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X.sum(1)})
    frame[:12].to_csv(tmp_path / "labelled.csv", index=False)
    frame[12:][["a", "b"]].to_csv(tmp_path / "pool.csv", index=False)
    (tmp_path / "tiny.yaml").write_text("net_config: {layer_sizes: [8]}\n"
                                        "train_schedule: {num_epochs: 3, min_steps: 0, calibration: none}\n")
    assert main(["--labelled", str(tmp_path / "labelled.csv"), "--target", "y", "--pool", str(tmp_path / "pool.csv"),
                 "--n", "4", "--out", str(tmp_path / "out"), "--config", str(tmp_path / "tiny.yaml"),
                 "--model", model]) == 0  # the config names no sampler: the default, lcmd on grad
    picks = pd.read_csv(tmp_path / "out" / "suggestions.csv")
    assert len(picks) == 4 and picks["pool_row"].is_unique
    written = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert written["parms"]["sample_policy"] == "lcmd" and written["parms"]["family_kernel"] == "grad"
    assert written["parms"]["name_model"] == model
