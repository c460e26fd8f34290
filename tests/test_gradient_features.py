"""Sketched gradient (finite-width NTK) features against the textbook per-example Jacobian, and the
`family_kernel: grad` samplers through a model."""

from __future__ import annotations

import numpy as np
import pytest

from al_bnn import Selector
from al_bnn.config import ConfigError, config_from_dict
from al_bnn.models import BayesianLastLayerNetwork, DropoutNetwork, EnsembleNetwork
from al_bnn.models.estimators import BNNRegressor, DropoutRegressor, EnsembleRegressor
from al_bnn.models.gradient_features import gradient_features
from al_bnn.models.tensorflow_setup import tf
from al_bnn.randomness import numpy_generator
from al_bnn.selection import make_sampler
from al_bnn.selection.family import select_batch, transform_features


def make_network(kind: str, input_dim: int = 3, layer_sizes=(6, 5), parametrization: str = "standard"):
    seeds = [4, 9]  # two runs: run 1 checks that the right slice of the stack is used
    options = dict(dtype=tf.float64, parametrization=parametrization)
    if kind == "bnn":
        return BayesianLastLayerNetwork(input_dim, list(layer_sizes), 0.5, seeds, **options)
    if kind == "dropout":
        return DropoutNetwork(input_dim, list(layer_sizes), 0.2, seeds, **options)
    return EnsembleNetwork(input_dim, list(layer_sizes), 3, seeds, **options)


def perturb_biases(network, seed=0):
    """Non-zero biases (they start at zero), so the bias gradients are not trivially aligned."""
    rng = np.random.default_rng(seed)
    for bias in [*network.hidden_biases, network.output_bias]:
        bias.assign(0.3 * rng.standard_normal(bias.shape))


def reference_jacobian(network, x, run: int) -> np.ndarray:
    """Textbook reference: (n, parameters) Jacobian of run `run`'s mean output w.r.t. its hidden kernels
    and biases and the output mean's kernel and bias, by tf.GradientTape.jacobian."""
    if isinstance(network, EnsembleNetwork):
        units = list(range(run * network.ensemble_size, (run + 1) * network.ensemble_size))
        output = network.output_kernel
    elif isinstance(network, BayesianLastLayerNetwork):
        units, output = [run], network.output_kernel_mean
    else:
        units, output = [run], network.output_kernel
    variables = [*network.hidden_kernels, *network.hidden_biases, output, network.output_bias]
    with tf.GradientTape() as tape:
        if isinstance(network, DropoutNetwork):
            mean = network._unit_mean(x, run)  # the network without dropout masks
        else:
            mean = network.predict(x)[0][run]  # the model's own predictive mean (ensemble: mean of members)
    jacobians = tape.jacobian(mean, variables)
    return np.concatenate([j.numpy()[:, unit].reshape(len(x), -1) for unit in units for j in jacobians], axis=1)


def relative_error(features, gram):
    return np.linalg.norm(features @ features.T - gram) / np.linalg.norm(gram)


@pytest.mark.parametrize("parametrization", ["standard", "ntk"])
@pytest.mark.parametrize("kind", ["bnn", "dropout", "ensemble"])
def test_exact_features_give_the_reference_gram_matrix(kind, parametrization):
    network = make_network(kind, parametrization=parametrization)
    perturb_biases(network)
    x = np.random.default_rng(1).standard_normal((25, 3))
    jacobian = reference_jacobian(network, x, run=1)
    gram = jacobian @ jacobian.T
    parameters = jacobian.shape[1]
    assert parameters == (3 * 6 + 6 + 6 * 5 + 5 + 5 + 1) * (3 if kind == "ensemble" else 1)
    exact = gradient_features(network, x, 1, sketch_dim=0)
    assert exact.shape == (25, parameters) and exact.dtype == np.float64
    np.testing.assert_allclose(exact @ exact.T, gram, atol=1e-8 * np.abs(gram).max(), rtol=0)
    roomy = gradient_features(network, x, 1, sketch_dim=parameters + 7)  # every block fits: kept exact
    assert roomy.shape == (25, parameters)
    np.testing.assert_allclose(roomy @ roomy.T, gram, atol=1e-8 * np.abs(gram).max(), rtol=0)
    # the other run is another network: its kernel differs
    other = gradient_features(network, x, 0, sketch_dim=0)
    assert relative_error(other, gram) > 1e-2


def test_sketch_error_falls_like_one_over_root_k_and_is_unbiased():
    # input 16, widths [16, 16]: two 256-wide kernel blocks that stay sketched at these budgets,
    # the biases and output (16, 16, 16, 1) kept exact: 100 -> about 25 columns per kernel block,
    # 400 -> about 175, so the error should fall by about sqrt(7) = 2.6
    network = make_network("bnn", input_dim=16, layer_sizes=(16, 16))
    perturb_biases(network)
    x = np.random.default_rng(2).standard_normal((30, 16))
    jacobian = reference_jacobian(network, x, run=0)
    gram = jacobian @ jacobian.T
    errors = {}
    for dim in (100, 400):
        features = [gradient_features(network, x, 0, sketch_dim=dim, seed=seed) for seed in range(12)]
        assert features[0].shape == (30, dim)
        errors[dim] = np.mean([relative_error(f, gram) for f in features])
        if dim == 100:  # unbiased: the mean of 12 independent sketched Gram matrices is ~sqrt(12) closer
            mean_gram = np.mean([f @ f.T for f in features], axis=0)
            assert np.linalg.norm(mean_gram - gram) / np.linalg.norm(gram) < errors[dim] / 2
    assert 1.8 < errors[100] / errors[400] < 4.0, errors
    assert errors[400] < 0.25, errors  # product sketches of 256-wide blocks in 175 columns: about 0.17
    full = gradient_features(network, x, 0, sketch_dim=jacobian.shape[1])
    assert full.shape == jacobian.shape
    np.testing.assert_allclose(full @ full.T, gram, atol=1e-8 * np.abs(gram).max(), rtol=0)


def test_same_seed_same_features_other_seed_or_counter_different():
    network = make_network("ensemble")
    x = np.random.default_rng(3).standard_normal((20, 3))
    first = gradient_features(network, x, 0, sketch_dim=40, seed=5)
    assert first.shape == (20, 40)
    np.testing.assert_array_equal(first, gradient_features(network, x, 0, sketch_dim=40, seed=5))
    assert not np.allclose(first, gradient_features(network, x, 0, sketch_dim=40, seed=6))
    assert not np.allclose(first, gradient_features(network, x, 0, sketch_dim=40, seed=5, counter=1))


@pytest.mark.parametrize("kind", ["bnn", "dropout", "ensemble"])
def test_chunking_does_not_change_the_features(kind):
    network = make_network(kind)
    x = np.random.default_rng(4).standard_normal((23, 3))
    whole = gradient_features(network, x, 1, sketch_dim=32, seed=2)
    for chunk in (1, 5, 22):
        np.testing.assert_allclose(gradient_features(network, x, 1, sketch_dim=32, seed=2, chunk_size=chunk), whole,
                                   rtol=1e-12, atol=1e-14)


def test_float32_network_works():
    network = BayesianLastLayerNetwork(3, [8, 8], 0.5, [0])
    x = np.random.default_rng(5).standard_normal((10, 3)).astype(np.float32)
    features = gradient_features(network, x, 0, sketch_dim=64)
    assert features.dtype == np.float64 and features.shape[0] == 10 and np.all(np.isfinite(features))
    narrow = gradient_features(network, x, 0, sketch_dim=64, dtype="float32")  # the same values, rounded once
    assert narrow.dtype == np.float32
    np.testing.assert_array_equal(narrow, features.astype(np.float32))
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got float16"):
        gradient_features(network, x, 0, sketch_dim=64, dtype="float16")


@pytest.mark.parametrize("kwargs,message", [
    (dict(run=2), r"run=2 is not a run of this model; give 0 <= run < 2"),
    (dict(sketch_dim=-1), r"sketch_dim must be an integer >= 0"),
    (dict(sketch_dim=3), r"sketch_dim=3 is too small: .* use sketch_dim >= "),
    (dict(chunk_size=0), r"chunk_size must be an integer >= 1"),
    (dict(x=np.zeros((4, 2))), r"x must have shape \(n, 3\), got \(4, 2\)"),
])
def test_bad_arguments_fail_with_a_clear_message(kwargs, message):
    arguments = {**dict(x=np.zeros((4, 3)), run=0, sketch_dim=32, chunk_size=8), **kwargs}
    with pytest.raises(ValueError, match=message):
        gradient_features(make_network("bnn"), arguments.pop("x"), **arguments)


# ------------------------------------------------------------------------------------ wiring

def test_config_accepts_grad_for_every_model_and_exact_only_for_bnn():
    for model in ("bnn", "dropout", "ensemble"):
        raw = {"parms": {"name_model": model, "sample_policy": "lcmd", "family_kernel": "grad"}}
        if model == "dropout":
            raw["net_config"] = {"dropout_rate": 0.1}
        parms = config_from_dict(raw, "test").parms
        assert make_sampler(parms).needs == "gradient_features"
    with pytest.raises(ConfigError, match=r"'parms.family_kernel' is 'exact', which only the `bnn` model supports"):
        config_from_dict({"parms": {"name_model": "ensemble", "family_kernel": "exact"}}, "test")


@pytest.mark.slow
@pytest.mark.parametrize("estimator_class,method", [(BNNRegressor, "lcmd"), (EnsembleRegressor, "maxdet"),
                                                    (DropoutRegressor, "kmeanspp")])
def test_grad_sampler_through_a_model_equals_select_batch_on_its_gradient_features(estimator_class, method):
    rng = np.random.default_rng(6)
    X_train, X_pool = rng.standard_normal((12, 3)), rng.standard_normal((40, 3))
    y = X_train[:, 0] - X_train[:, 1] ** 2
    kwargs = dict(ensemble_size=2) if estimator_class is EnsembleRegressor else {}
    model = estimator_class(layer_sizes=[8, 8], n_epochs=2, random_state=3, **kwargs).fit(X_train, y)
    selector = Selector(method, family_kernel="grad", family_sketch_dim=48, gp_noise=0.05)
    picks = selector.select_from_model(model, X_train, X_pool, 6)
    x = np.concatenate([X_train, X_pool]).astype(np.float32)
    features = gradient_features(model.network_, x, 0, sketch_dim=48, seed=model.random_state, counter=model.n_fits_)
    assert features.shape == (52, 48)
    sampler = make_sampler(selector.parms)
    posterior = 0.05 if sampler.transform == "train" else None
    expected = select_batch(transform_features(features, 12, posterior_noise=posterior), 12, 6, method,
                            mode=sampler.mode, noise=0.05,
                            random_state=numpy_generator(model.random_state, "selection", model.n_fits_))
    assert picks.tolist() == expected.tolist()
    # the array entry point takes gradient features as `features`
    assert len(selector.select(6, n_train=12, features=features)) == 6
