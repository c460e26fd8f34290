"""Declared interfaces: a plug-in module (tests/plugins/toy_model_kernel.py) adds a model and a kernel
through al_bnn.registry alone, and a run uses them as it uses the shipped ones; unknown names are
clear errors naming the registered ones; the model Protocol describes the shipped networks."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from al_bnn import registry
from al_bnn.config import ConfigError, config_from_dict
from al_bnn.plugins import import_plugins

PLUGINS = Path(__file__).resolve().parent / "plugins"
PLUGIN = "toy_model_kernel"
SOURCE = Path(__file__).resolve().parent.parent / "source"


@pytest.fixture
def plugin(monkeypatch):
    """The plug-in imported as --plugins imports it; afterwards the registries hold the shipped
    names again (other tests' messages list those)."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    models, kernels = dict(registry._MODELS), dict(registry._KERNELS)
    sys.modules.pop(PLUGIN, None)
    import_plugins([PLUGIN])
    yield sys.modules[PLUGIN]
    sys.modules.pop(PLUGIN, None)
    registry._MODELS.clear()
    registry._MODELS.update(models)
    registry._KERNELS.clear()
    registry._KERNELS.update(kernels)


def plugin_config(**parms) -> dict:
    return {"seed": 3, "al_schedule": {"al_iter": 2, "num_al_incr": 6, "num_train_init": 12},
            "net_config": {"layer_sizes": [16], "learning_rate": 1e-2},
            "parms": {"name_model": "rf_bnn", "sample_policy": "lcmd", "family_kernel": "rff", "n_mc_samples": 8,
                      **parms},
            "train_schedule": {"num_epochs": 4, "eval_after_epochs": 2, "batch_size": 16},
            "data": {"dataset": "yacht", "size_pool": 100, "size_test": 30}}


@pytest.mark.parametrize("parms, names", [
    ({"name_model": "mlp"}, "'bnn', 'dropout', 'ensemble'"),
    ({"family_kernel": "rbf"}, "'exact', 'grad', 'mc'"),
    ({"gpa_kernel": "rbf"}, "'exact', 'grad', 'mc'"),
])
def test_an_unknown_model_or_kernel_is_a_config_error_naming_the_registered_ones(parms, names):
    key = next(iter(parms))
    with pytest.raises(ConfigError, match=rf"x.yaml: key 'parms.{key}': '\w+' is not allowed; choose one of "
                                          rf"{names} \(the registered \w+s; register your own with "
                                          r"al_bnn.registry.register_\w+ in a module passed with --plugins\)"):
        config_from_dict({"parms": parms}, "x.yaml")


def test_build_model_and_the_kernel_lookup_name_the_registered_ones():
    from al_bnn.models import build_model

    config = config_from_dict({}, "x")
    with pytest.raises(registry.UnknownNameError, match="'mlp' is not allowed; choose one of 'bnn', 'dropout', "
                                                        "'ensemble'"):
        build_model("mlp", 3, config.net_config, config.parms, [0])
    with pytest.raises(ConfigError, match=r"'mcc' is not allowed; choose one of 'exact', 'grad', 'mc' .* Did you "
                                          r"mean 'mc'\?"):
        registry.kernel_entry("mcc")


def test_config_validation_of_model_and_kernel_names_imports_no_tensorflow():
    code = ("import sys; from al_bnn.config import config_from_dict; "
            "config_from_dict({'parms': {'name_model': 'dropout', 'family_kernel': 'grad'}, "
            "'net_config': {'dropout_rate': 0.1}}); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=SOURCE, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_plugin_names_are_accepted_once_the_plugin_is_imported(plugin):
    config = config_from_dict(plugin_config(gpa_kernel="rff"), "x.yaml")
    assert (config.parms.name_model, config.parms.family_kernel, config.parms.gpa_kernel) == ("rf_bnn", "rff", "rff")
    assert {"rf_bnn", "bnn"} <= set(registry.model_names()) and {"rff", "mc", "exact", "grad"} <= set(
        registry.kernel_names())
    with pytest.raises(ConfigError, match="choose one of 'bnn', 'dropout', 'ensemble', 'rf_bnn'"):
        config_from_dict({"parms": {"name_model": "rf_bnm"}}, "x.yaml")
    # the plug-in model has closed-form features, so the "exact" kernel is allowed for it
    assert config_from_dict(plugin_config(family_kernel="exact"), "x.yaml").parms.family_kernel == "exact"


def test_without_the_plugin_its_names_are_unknown():
    with pytest.raises(ConfigError, match="'rf_bnn' is not allowed"):
        config_from_dict({"parms": {"name_model": "rf_bnn"}}, "x.yaml")
    with pytest.raises(ConfigError, match="'rff' is not allowed"):
        config_from_dict({"parms": {"family_kernel": "rff"}}, "x.yaml")


@pytest.mark.parametrize("policy", ["lcmd", "maxdet", "lrgpa"])
def test_the_plugin_kernel_is_what_the_sampler_gets(plugin, policy):
    """One selection from the plug-in model (untrained: no training needed) with the plug-in kernel
    equals the sampler run on the plug-in's features, rows in the anchors-first order."""
    from al_bnn.acquisition import select_with_model
    from al_bnn.models import Model, build_model
    from al_bnn.randomness import numpy_generator
    from al_bnn.selection import SelectionRequest, make_sampler

    config = config_from_dict(plugin_config(sample_policy=policy, gpa_kernel="rff"), "x.yaml")
    network = build_model("rf_bnn", 3, config.net_config, config.parms, [3])
    assert isinstance(network, plugin.RandomFeatureBayesianLinear) and isinstance(network, Model)
    x = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    order = np.random.default_rng(1).permutation(40)
    n_train, seed, phase = 8, 3, 1
    sampler = make_sampler(config.parms)
    selection = select_with_model(network, 0, config.parms, sampler, x, order, n_train, 5, seed, phase)
    request = SelectionRequest(n_select=5, n_train=n_train, n_pool=32, rng=numpy_generator(seed, "selection", phase))
    request.features = plugin.random_fourier_features(network, x, 0, config.parms, seed, phase)[order]
    np.testing.assert_array_equal(selection.picks, make_sampler(config.parms).select(request))
    assert len(set(selection.picks.tolist())) == 5 and selection.picks.max() < 32


@pytest.mark.slow  # trains (a few seconds)
def test_a_short_active_learning_run_uses_the_plugin_model_and_kernel(plugin):
    from al_bnn.loop import RunSpec, initial_training_set, run_experiments

    config = config_from_dict(plugin_config(), "x.yaml")
    runs = [RunSpec("rff_lcmd", config), RunSpec("rff_lcmd_again", config)]
    first, again = run_experiments(runs, show_progress=False)
    np.testing.assert_array_equal(first.train_indices, again.train_indices)  # reproducible
    picks = first.train_indices
    schedule = config.al_schedule
    assert len(picks) == schedule.num_train_init + schedule.al_iter * schedule.num_al_incr
    assert len(np.unique(picks)) == len(picks) and picks.min() >= 0 and picks.max() < 100
    np.testing.assert_array_equal(picks[:schedule.num_train_init], initial_training_set(3, 100, 12))
    assert np.isfinite([row["test_rmse"] for row in first.metrics]).all()
    # the plug-in's kernel decided the picks: the shipped mc kernel picks otherwise
    [mc] = run_experiments([RunSpec("mc_lcmd", config_from_dict(plugin_config(family_kernel="mc"), "x"))],
                           show_progress=False)
    assert not np.array_equal(mc.train_indices, picks)


@pytest.mark.slow  # a script run: TensorFlow start-up and training
def test_a_script_with_plugins_runs_the_plugin_model_and_kernel(tmp_path):
    """As a user would: the plug-in's folder on PYTHONPATH, its module named with --plugins."""
    import csv
    import os

    import yaml

    paths = []
    for policy in ("lcmd", "random"):
        paths.append(tmp_path / f"{policy}.yaml")
        paths[-1].write_text(yaml.safe_dump(plugin_config(sample_policy=policy)))
    results = tmp_path / "results"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(SOURCE)])}
    done = subprocess.run([sys.executable, str(SOURCE / "compare_gpa_rand.py"), *map(str, paths), "--results-dir",
                           str(results), "--plugins", PLUGIN, "--quiet"], capture_output=True, text=True,
                          env=environment, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(results / "selected_lcmd.csv", newline="") as handle:
        picks = [int(row["pool_index"]) for row in csv.DictReader(handle)]
    assert len(picks) == len(set(picks)) == 12 + 12 and all(0 <= p < 100 for p in picks)  # initial set, picks
    saved = yaml.safe_load((results / "config_lcmd.yaml").read_text())["parms"]
    assert (saved["name_model"], saved["family_kernel"]) == ("rf_bnn", "rff")


def public_use_problems(path: Path) -> list[str]:
    """What in a plug-in module reaches past al_bnn's public names: an import of a private name
    (or of a module that is not al_bnn's), or an assignment to an attribute of something imported
    from al_bnn (a monkeypatch of a library object)."""
    import importlib

    tree = ast.parse(path.read_text())
    problems, imported = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "al_bnn":
            module = importlib.import_module(node.module)
            public = getattr(module, "__all__", None)
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if alias.name.startswith("_") or (public is not None and alias.name not in public):
                    problems.append(f"imports the non-public {node.module}.{alias.name}")
        elif isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "al_bnn" for alias in node.names):
            problems.append("imports an al_bnn module whole (import only public names)")
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            root = target
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if root is not target and isinstance(root, ast.Name) and root.id in imported:
                problems.append(f"assigns to {ast.unparse(target)}, part of the library")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            problems.append("calls setattr")
    return problems


def test_the_plugin_touches_no_library_file_and_uses_only_public_names():
    plugin_file = PLUGINS / f"{PLUGIN}.py"
    assert public_use_problems(plugin_file) == []
    assert not plugin_file.resolve().is_relative_to(SOURCE)  # it lives outside the package


@pytest.mark.parametrize("line, problem", [
    ("from al_bnn.registry import _MODELS", "non-public al_bnn.registry._MODELS"),
    ("from al_bnn.models import build_model\nbuild_model.__doc__ = ''", "assigns to build_model.__doc__"),
    ("from al_bnn.registry import register_model\nregister_model.x = 1", "assigns to register_model.x"),
    ("import al_bnn.registry", "imports an al_bnn module whole"),
    ("setattr(object, 'x', 1)", "calls setattr"),
])
def test_the_public_use_check_catches_a_plugin_that_reaches_into_the_library(tmp_path, line, problem):
    offender = tmp_path / "offender.py"
    offender.write_text(line + "\n")
    assert any(problem in found for found in public_use_problems(offender))


def test_the_shipped_networks_satisfy_the_model_protocol():
    from al_bnn.models import GradientFeaturesModel, Model, TrainableModel, build_model

    for name in ("bnn", "dropout", "ensemble"):
        config = config_from_dict({"parms": {"name_model": name, "ensemble_size": 2},
                                   "net_config": {"dropout_rate": 0.1 if name == "dropout" else 0.0}}, "x")
        network = build_model(name, 2, config.net_config, config.parms, [0])
        assert isinstance(network, Model) and isinstance(network, TrainableModel)
        assert isinstance(network, GradientFeaturesModel)
        assert network.has_features == registry.model_entry(name).has_features


def test_a_builder_that_returns_no_model_is_named_with_what_it_lacks(plugin):
    from al_bnn.models import build_model

    registry.register_model("not_a_model", lambda input_dim, net_config, parms, seeds: object())
    config = config_from_dict({"parms": {"name_model": "not_a_model"}}, "x")
    with pytest.raises(TypeError, match=r"model 'not_a_model': its builder returned a object, which lacks what the "
                                        r"loop and the trainer use: .*function_samples.*predict"):
        build_model("not_a_model", 2, config.net_config, config.parms, [0])
    with pytest.raises(ValueError, match="a model named 'rf_bnn' is already registered"):
        registry.register_model("rf_bnn", lambda *arguments: None)
    with pytest.raises(ValueError, match="kind must be one of features, samples"):
        registry.register_kernel("bad", lambda *arguments: None, kind="matrix")
