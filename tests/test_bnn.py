"""The stacked bbb network and its trainer: samples, closed forms, stacking, learning."""

import numpy as np
import pytest

from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.tensorflow_setup import tf
from al_bnn.models.trainer import StackedTrainer


def toy_problem(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
    y = (np.sin(2 * x[:, 0]) + 0.05 * rng.normal(size=n)).astype(np.float32)
    return x, y


def make_network(seeds=(0,), layer_sizes=(8, 8), weight_std=0.3, dtype=tf.float64):
    return BayesianLastLayerNetwork(1, list(layer_sizes), weight_std, seeds=list(seeds), dtype=dtype)


def test_joint_samples_covariance_matches_the_closed_form_kernel():
    network = make_network()
    x = np.linspace(-2, 2, 6)[:, None]
    num_samples = 20000
    samples = network.function_samples(x, num_samples, counters=(0,))  # (T, n)
    features = network.features(x)[0].numpy()
    exact = features @ features.T
    empirical = np.cov(samples.T, bias=True)
    # Monte-Carlo standard error of a Gaussian sample covariance entry: sqrt((S_ii S_jj + S_ij^2) / T).
    standard_error = np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + exact**2) / num_samples)
    assert np.all(np.abs(empirical - exact) < 5 * standard_error)
    # The kernel is far from diagonal here, so this test also fails if samples were drawn per point.
    correlation = exact / np.sqrt(np.outer(np.diag(exact), np.diag(exact)))
    assert correlation[0, 1] > 0.3


@pytest.mark.slow
def test_marginal_samples_have_the_right_variances_but_no_covariance():
    network = make_network()
    x = np.linspace(-2, 2, 6)[:, None]
    num_samples = 20000
    samples = network.function_samples(x, num_samples, counters=(0,), mode="marginal")
    features = network.features(x)[0].numpy()
    exact = features @ features.T
    empirical = np.cov(samples.T, bias=True)
    standard_error = np.sqrt((np.outer(np.diag(exact), np.diag(exact)) + 0 * exact) / num_samples)
    np.testing.assert_array_less(np.abs(np.diag(empirical) - np.diag(exact)), 5 * np.sqrt(2) * np.diag(standard_error))
    off_diagonal = ~np.eye(6, dtype=bool)
    assert np.all(np.abs(empirical[off_diagonal]) < 5 * standard_error[off_diagonal])
    assert np.abs(exact[off_diagonal]).max() > 20 * standard_error.max()  # the joint covariance is not ~0


def test_samples_are_keyed_by_seed_and_counters():
    network = make_network(seeds=(3, 4))
    x = np.linspace(-1, 1, 5)[:, None]
    first = network.function_samples(x, 10, counters=(1, 0))
    np.testing.assert_array_equal(first, network.function_samples(x, 10, counters=(1, 0)))
    assert not np.allclose(first, network.function_samples(x, 10, counters=(1, 1)))
    assert not np.allclose(first, network.function_samples(x, 10, counters=(1, 0), run=1))


def test_predict_gives_the_closed_form_moments():
    network = make_network(seeds=(0, 1))
    x = np.linspace(-2, 2, 7)[:, None]
    mean, epistemic, aleatoric = (t.numpy() for t in network.predict(x))
    assert mean.shape == epistemic.shape == aleatoric.shape == (2, 7)
    features = network.features(x).numpy()
    np.testing.assert_allclose(epistemic, np.sqrt((features**2).sum(-1)), rtol=1e-12)
    samples = network.function_samples(x, 20000, counters=(0,), run=1)
    np.testing.assert_allclose(samples.mean(0), mean[1], atol=5 * epistemic[1].max() / np.sqrt(20000))
    assert np.all(aleatoric > 0)


def fit(network, x, y, epochs, phase=0, learning_rate=0.01, clip_gradient=100.0, unit_groups=2):
    trainer = StackedTrainer(network, learning_rate, clip_gradient=clip_gradient, divergence_scale=1.0, batch_size=16,
                             unit_groups=unit_groups)
    return trainer, trainer.fit(x, y, x[0], y[0], num_epochs=epochs, eval_every=epochs, phase=phase)


@pytest.mark.slow
def test_training_lowers_the_error_on_a_toy_problem():
    x, y = toy_problem()
    network = make_network(layer_sizes=(32, 32), weight_std=0.1, dtype=tf.float32)
    trainer = StackedTrainer(network, 0.01, 100.0, 1.0, 16)
    before, _ = trainer.evaluate(x, y)
    trainer.fit(x[None], y[None], x, y, num_epochs=250, eval_every=250, phase=0)
    after, _ = trainer.evaluate(x, y)
    assert after[0] < 0.5 * before[0]
    assert after[0] < 0.3  # target std is about 0.7


@pytest.mark.slow
@pytest.mark.parametrize("unit_groups", [1, 2])
def test_a_run_in_a_stack_computes_what_it_computes_alone(unit_groups):
    # Three runs: with 2 groups the stack trains as programs of 2 and 1 units; run 1 (seed 5)
    # shares its program with run 0 either way.
    x, y = toy_problem()
    rng = np.random.default_rng(1)
    other, third = rng.permutation(len(x)), rng.permutation(len(x))
    alone = make_network(seeds=(5,), dtype=tf.float32)
    stacked = make_network(seeds=(9, 5, 4), dtype=tf.float32)
    _, alone_metrics = fit(alone, x[None], y[None], epochs=3)
    _, stacked_metrics = fit(stacked, np.stack([x[other], x, x[third]]), np.stack([y[other], y, y[third]]), epochs=3,
                             unit_groups=unit_groups)
    for a, b in zip(alone.get_weights(), stacked.get_weights(), strict=True):
        np.testing.assert_allclose(b[1], a[0], rtol=1e-5, atol=1e-6)
    assert stacked_metrics[-1].test_rmse[1] == pytest.approx(alone_metrics[-1].test_rmse[0], rel=1e-5)


@pytest.mark.slow
def test_unit_groups_change_speed_not_results():
    """Training a stack as 1, 2 or 3 concurrent programs gives each run the same weights and Adam
    state (float32, rtol 1e-5: XLA may pick other matmul code for another group shape)."""
    x, y = toy_problem()
    rng = np.random.default_rng(3)
    orders = [rng.permutation(len(x)) for _ in range(3)]
    xs, ys = np.stack([x[o] for o in orders]), np.stack([y[o] for o in orders])
    results = {}
    for groups in (1, 2, 3):
        network = make_network(seeds=(1, 2, 3), dtype=tf.float32)
        trainer, _ = fit(network, xs, ys, epochs=2, unit_groups=groups)
        assert trainer._group_bounds == {1: [(0, 3)], 2: [(0, 2), (2, 3)], 3: [(0, 1), (1, 2), (2, 3)]}[groups]
        results[groups] = network.get_weights() + trainer.get_optimizer_state()
    steps = 2 * -(-len(x) // 16)
    for groups in (2, 3):
        assert results[groups][-1] == results[1][-1] == steps  # one Adam step count for the stack
        for a, b in zip(results[1], results[groups], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    # The runs really differ (different seeds and data orders), so equal stacks are not trivially equal.
    assert not np.allclose(results[1][0][0], results[1][0][1])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_unit_groups_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="unit_groups must be a positive integer"):
        StackedTrainer(make_network(), 0.01, 100.0, 1.0, 16, unit_groups=bad)
    assert StackedTrainer(make_network(seeds=(0, 1, 2)), 0.01, 100.0, 1.0, 16, unit_groups=np.int64(5)).unit_groups == 3


def test_with_parameters_swaps_every_variable():
    network = make_network(seeds=(0, 1))
    x = np.linspace(-1, 1, 4)[:, None]
    doubled = [2 * v for v in network.trainable_variables]
    view = network.with_parameters(doubled)
    assert all(p is q for p, q in zip(view.trainable_variables, doubled, strict=True))
    assert all(isinstance(v, tf.Variable) for v in network.trainable_variables)  # the original is untouched
    assert not np.allclose(view.predict(x)[0], network.predict(x)[0])
    with pytest.raises(ValueError, match="expected 9 parameter tensors"):
        network.with_parameters(doubled[:-1])
    with pytest.raises(TypeError):  # the copy may hold a group of units: its unit count is not the stack's
        _ = view.num_units


@pytest.mark.slow
def test_gradient_clipping_is_per_run():
    from al_bnn.models.trainer import _squared_norm_per_run

    rng = np.random.default_rng(2)
    for shape in [(3,), (3, 7), (3, 5, 7)]:
        gradient = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(_squared_norm_per_run(tf.constant(gradient)).numpy(),
                                   (gradient.reshape(3, -1) ** 2).sum(1), rtol=1e-5)
    # With a clip far below the gradient norms every step is clipped, and runs still do not interact.
    x, y = toy_problem()
    alone = make_network(seeds=(5,), dtype=tf.float32)
    stacked = make_network(seeds=(9, 5), dtype=tf.float32)
    fit(alone, x[None], y[None], epochs=2, clip_gradient=1e-3)
    fit(stacked, np.stack([x[::-1], x]), np.stack([y[::-1], y]), epochs=2, clip_gradient=1e-3, unit_groups=1)
    for a, b in zip(alone.get_weights(), stacked.get_weights(), strict=True):
        np.testing.assert_allclose(b[1], a[0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_same_seed_same_numbers_and_optimizer_reset():
    x, y = toy_problem()
    first, second = make_network(seeds=(2,), dtype=tf.float32), make_network(seeds=(2,), dtype=tf.float32)
    trainer_a, metrics_a = fit(first, x[None], y[None], epochs=2)
    _, metrics_b = fit(second, x[None], y[None], epochs=2)
    assert metrics_a[-1].train_rmse[0] == metrics_b[-1].train_rmse[0]
    trainer_a.reset_optimizer()
    assert all(np.all(v == 0) for v in trainer_a.get_optimizer_state())


def test_one_runs_features_equal_its_slice_of_the_stack():
    network = make_network(seeds=(0, 1, 2))
    x = np.linspace(-2, 2, 9)[:, None]
    np.testing.assert_allclose(network.features(x, run=2).numpy(), network.features(x)[2].numpy(), rtol=1e-12)


@pytest.mark.slow
def test_noise_contrastive_prior_raises_epistemic_std_away_from_the_data():
    from al_bnn.models.trainer import NoiseContrastivePrior
    x, y = toy_problem()  # inputs in [-2, 2]
    far = np.linspace(2.5, 4.0, 8)[:, None].astype(np.float32)
    epistemic_far = {}
    for name, ncp in (("plain", None), ("ncp", NoiseContrastivePrior(0.3, 0.1, 1.0, center_at_target=True))):
        network = make_network(layer_sizes=(32, 32), weight_std=0.1, dtype=tf.float32)  # same seed, same start
        trainer = StackedTrainer(network, 0.01, 100.0, 1.0, 16, ncp)
        trainer.fit(x[None], y[None], x, y, num_epochs=200, eval_every=200, phase=0)
        epistemic_far[name] = network.predict(far)[1].numpy().mean()
    assert epistemic_far["ncp"] > 1.5 * epistemic_far["plain"]
