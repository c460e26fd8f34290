"""The public API: estimators in scikit-learn's conventions, safe save/load, selectors, and the
README's example run verbatim."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

import al_bnn
from al_bnn import BNNRegressor, DropoutRegressor, EnsembleRegressor, Selector, load_estimator, select_gpa
from al_bnn.config import NetConfig, TrainSchedule
from al_bnn.safe_arrays import ArrayFileError

README = Path(__file__).resolve().parent.parent / "README.md"
# A small network with the published training settings (the config schema's), 30 epochs exactly: the
# conventions tested here do not depend on the recipe; the stack-of-one test below uses the default one.
_NET, _TRAIN = NetConfig(), TrainSchedule()  # the schema's defaults are the published settings
PUBLISHED_TRAINING = dict(parametrization=_NET.parametrization, activation=_NET.activation,
                          input_transform=_NET.input_transform, nll_beta=_NET.nll_beta,
                          learning_rate_schedule=_TRAIN.learning_rate_schedule, retrain_from=_TRAIN.retrain_from,
                          min_steps=_TRAIN.min_steps)
SMALL = dict(layer_sizes=[16, 16], learning_rate=1e-2, n_epochs=30, batch_size=16, **PUBLISHED_TRAINING)
PUBLISHED_BNN = dict(weight_std=_NET.weight_std, divergence_scale=_NET.divergence_scale)  # the bnn's prior, KL weight


def toy(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 1))
    return X, np.sin(2 * X[:, 0]) + 0.05 * rng.normal(size=n)


@pytest.fixture(scope="module")
def fitted():
    X, y = toy()
    return BNNRegressor(**SMALL, random_state=3).fit(X, y), X, y


def test_fit_returns_self_with_learned_state_and_predictions_of_every_kind(fitted):
    model, X, y = fitted
    assert model.n_features_in_ == 1 and model.n_fits_ == 1 and model.history_[-1]["epoch"] == SMALL["n_epochs"]
    mean = model.predict(X)
    assert mean.shape == (60,) and np.isfinite(mean).all()
    _, total = model.predict(X, return_std=True)
    _, epistemic = model.predict(X, return_std=True, std_kind="epistemic")
    _, aleatoric = model.predict(X, return_std=True, std_kind="aleatoric")
    np.testing.assert_allclose(total**2, epistemic**2 + aleatoric**2, rtol=1e-6)
    assert (epistemic > 0).all() and (aleatoric > 0).all()
    assert model.get_params()["random_state"] == 3 and "layer_sizes=[16, 16]" in repr(model)


@pytest.mark.slow
def test_training_reduces_the_error():
    X, y = toy()
    short = BNNRegressor(**{**SMALL, "n_epochs": 1}, **PUBLISHED_BNN, random_state=0).fit(X, y)
    longer = BNNRegressor(**{**SMALL, "n_epochs": 300}, **PUBLISHED_BNN, random_state=0).fit(X, y)
    assert longer.score(X, y) > 0.9 > 0.5 > short.score(X, y)


def test_same_random_state_same_model_and_another_differs(fitted):
    model, X, y = fitted
    again = BNNRegressor(**SMALL, random_state=3).fit(X, y)
    other = BNNRegressor(**SMALL, random_state=4).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert not np.allclose(other.predict(X), model.predict(X))


def test_function_samples_share_one_weight_draw_per_row(fitted):
    model, X, _ = fitted
    x = np.linspace(-2, 2, 5)[:, None]
    samples = model.sample_functions(x, n_samples=4000)
    assert samples.shape == (4000, 5)
    np.testing.assert_array_equal(samples, model.sample_functions(x, n_samples=4000))
    assert not np.allclose(samples, model.sample_functions(x, n_samples=4000, random_state=1))
    features = model.features(x)
    exact = features @ features.T
    empirical = np.cov(samples.T, bias=True)
    standard_error = np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + exact**2) / len(samples))
    assert np.all(np.abs(empirical - exact) < 5 * standard_error)
    # the raw epistemic std is the features' norm: the same kernel (calibration scales the reported std only)
    np.testing.assert_allclose(model.predict(x, return_std=True, std_kind="epistemic", calibrated=False)[1],
                               np.sqrt(np.diag(exact)), rtol=1e-5)


def test_normalize_y_reports_everything_in_the_targets_units():
    X, y = toy()
    y_big = 1000.0 + 50.0 * y
    plain = BNNRegressor(**SMALL, random_state=1).fit(X, y)
    scaled = BNNRegressor(**SMALL, random_state=1, normalize_y=True).fit(X, y_big)
    assert abs(scaled.predict(X).mean() - 1000.0) < 20.0
    assert scaled.y_scale_ == pytest.approx(y_big.std())
    np.testing.assert_allclose(scaled.sample_functions(X, 5).mean(), scaled.predict(X).mean(), rtol=0.01)
    assert plain.y_scale_ == 1.0


def test_warm_start_continues_from_the_current_weights():
    X, y = toy()
    model = BNNRegressor(**SMALL, random_state=0, warm_start=True).fit(X, y)
    first = model.predict(X)
    model.fit(X, y)
    assert model.n_fits_ == 2 and len(model.history_) == 2 and not np.allclose(model.predict(X), first)
    restart = BNNRegressor(**SMALL, random_state=0).fit(X, y).fit(X, y)  # warm_start=False starts over
    np.testing.assert_array_equal(restart.predict(X), first)


@pytest.mark.slow
def test_a_single_estimator_is_a_stack_of_one_of_the_experiment_engine():
    """The estimator trains what the stacked trainer trains for the same seed (sweeps stack many)."""
    from al_bnn.models.bnn import BayesianLastLayerNetwork
    from al_bnn.models.trainer import StackedTrainer
    from al_bnn.recipe import DEFAULT_RECIPE

    X, y = toy()
    model = BNNRegressor(layer_sizes=[16, 16], n_epochs=30, min_steps=0, random_state=5).fit(X, y)  # the recipe
    net, train = DEFAULT_RECIPE["net_config"], DEFAULT_RECIPE["train_schedule"]
    network = BayesianLastLayerNetwork(1, [16, 16], net["weight_std"], seeds=[5, 6], activation=net["activation"],
                                       input_transform=net["input_transform"], parametrization=net["parametrization"],
                                       nll_beta=net["nll_beta"])
    trainer = StackedTrainer(network, net["learning_rate"], 100.0, net["divergence_scale"], train["batch_size"],
                             learning_rate_schedule=train["learning_rate_schedule"])
    x32, y32 = np.stack([X, X]).astype(np.float32), np.stack([y, y]).astype(np.float32)
    trainer.fit(x32, y32, x32, y32, 30, 30, phase=0)
    np.testing.assert_allclose(network.predict(X.astype(np.float32))[0].numpy()[0], model.predict(X),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls, extra", [(DropoutRegressor, {"dropout_rate": 0.1}),
                                        (EnsembleRegressor, {"ensemble_size": 3})])
@pytest.mark.slow
def test_dropout_and_ensemble_estimators(cls, extra):
    X, y = toy()
    model = cls(**SMALL, **extra, random_state=0).fit(X, y)
    samples = model.sample_functions(X[:7], n_samples=6)
    assert samples.shape == ((3, 7) if cls is EnsembleRegressor else (6, 7))
    assert not model.has_features
    with pytest.raises(ValueError, match="no closed-form kernel features; use sample_functions"):
        model.features(X)


def test_save_and_load_round_trip_exactly(fitted, tmp_path):
    model, X, y = fitted
    path = model.save(tmp_path / "model.npz")
    loaded = load_estimator(path)
    assert type(loaded) is BNNRegressor and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict(X, return_std=True)[1], model.predict(X, return_std=True)[1])
    np.testing.assert_array_equal(loaded.sample_functions(X, 10), model.sample_functions(X, 10))
    assert loaded.history_ == model.history_
    # training on from a loaded model continues exactly as from the original
    original = BNNRegressor(**SMALL, random_state=3, warm_start=True).fit(X, y)
    original.save(tmp_path / "warm.npz")
    restored = load_estimator(tmp_path / "warm.npz")
    np.testing.assert_array_equal(original.fit(X, y).predict(X), restored.fit(X, y).predict(X))


def test_loading_never_unpickles_and_names_the_bad_file(fitted, tmp_path):
    model, _, _ = fitted

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ArrayFileError, match=r"evil.npz: this is a pickle file .* refused"):
        load_estimator(evil)
    objects = tmp_path / "objects.npz"
    np.savez(objects, __header__=np.array([Exploit()], dtype=object))
    with pytest.raises(ArrayFileError, match="objects.npz: unreadable"):
        load_estimator(objects)
    assert not (tmp_path / "pwned").exists()
    good = model.save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArrayFileError, match="truncated.npz: unreadable"):
        load_estimator(truncated)


@pytest.mark.parametrize("parameters, message", [
    (dict(layer_sizes=[0]), r"key 'net_config.layer_sizes': expected a non-empty list of positive integers"),
    (dict(learning_rate=-1.0), r"key 'net_config.learning_rate': -1.0 is out of range"),
    (dict(n_epochs=0), r"key 'train_schedule.num_epochs': 0 is out of range"),
    (dict(warm_start="yes"), r"warm_start must be True or False"),
])
def test_bad_parameters_are_named_with_the_fix(parameters, message):
    X, y = toy()
    with pytest.raises(ValueError, match=message):
        BNNRegressor(**parameters).fit(X, y)


def test_bad_data_is_named():
    X, y = toy()
    with pytest.raises(ValueError, match=r"(?s)Expected 2D array, got 1D array .*reshape\(-1, 1\) if your data has a "
                                         "single feature"):
        BNNRegressor(**SMALL).fit(X[:, 0], y)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[60, 59\]"):
        BNNRegressor(**SMALL).fit(X, y[:-1])
    bad = X.copy()
    bad[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"X has a NaN or infinite value at index \(4, 0\)"):
        BNNRegressor(**SMALL).fit(bad, y)
    with pytest.raises(RuntimeError, match="not fitted yet"):
        BNNRegressor().predict(X)
    with pytest.raises(ValueError, match="X has 2 features, but BNNRegressor is expecting 1 features as input"):
        BNNRegressor(**SMALL).fit(X, y).predict(np.zeros((3, 2)))


def test_selectors_work_on_samples_features_and_models(fitted):
    model, X, _ = fitted
    X_pool = np.linspace(-3, 3, 80)[:, None]
    x_all = np.concatenate([X, X_pool])
    samples = model.sample_functions(x_all, 50)
    picks = Selector("lrgpa", sampling_batch_size=2).select(6, n_train=len(X), samples=samples)
    np.testing.assert_array_equal(picks, select_gpa(samples, len(X), 6, batch_size=2, noise=0.01, method="lowrank"))
    from_features = Selector("lrgpa", gpa_kernel="exact").select(6, n_train=len(X), features=model.features(x_all))
    assert len(set(from_features)) == 6
    random = Selector("random").select(5, n_pool=80, random_state=2)
    assert len(set(random)) == 5 and random.max() < 80
    # through the model: the model's draw-0 samples after its last fit, as the experiment loop uses
    via_model = Selector("lrgpa", sampling_batch_size=2, n_mc_samples=50).select_from_model(model, X, X_pool, 6)
    np.testing.assert_array_equal(via_model, picks)
    for name in al_bnn.sampler_names():
        assert len(Selector(name).select_from_model(model, X, X_pool, 4)) == 4
    with pytest.raises(ValueError, match="needs function samples"):
        Selector("mcdue").select(3, n_train=0, features=np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"key 'parms.gp_noise': -1.0 is out of range"):
        Selector("lrgpa", gp_noise=-1.0).select(1, samples=np.ones((3, 4)))


@pytest.mark.slow
def test_the_readme_example_runs_verbatim(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"<!-- api example -->\n```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "the README must have one ```python block after <!-- api example -->"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.md api example", "exec"), namespace)
    assert len(namespace["picks"]) == 10 and len(set(namespace["picks"].tolist())) == 10
