"""The training recipe's parts: the input transform, the learning-rate schedule, the activation,
and that the recipe keeps the properties the experiments rely on (a run in a stack equals the run
alone, resume equals an uninterrupted phase, NCP raises far-away epistemic std)."""

import numpy as np
import pytest

from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.tensorflow_setup import tf
from al_bnn.models.trainer import NoiseContrastivePrior, StackedTrainer
from test_bnn import toy_problem

RECIPE = dict(activation="relu", input_transform="tanh")


def network(seeds=(0,), **options):
    return BayesianLastLayerNetwork(1, [16, 16], 0.3, seeds=list(seeds), dtype=tf.float64, **{**RECIPE, **options})


def trainer(net, schedule="linear_decay", ncp=None, learning_rate=0.01):
    return StackedTrainer(net, learning_rate, 100.0, 1.0, 16, ncp, learning_rate_schedule=schedule)


# The default recipe's network options (al_bnn.recipe) on the toy problem's small network, with a
# learning rate for the ntk parametrisation.
DEFAULT_OPTIONS, DEFAULT_LEARNING_RATE = dict(parametrization="ntk", nll_beta=1.0), 0.3


def test_the_input_transform_soft_clips_beyond_five_standard_deviations():
    net = network()
    x = np.array([[-20.0], [-5.0], [0.0], [0.1], [5.0], [20.0]])
    transformed = net.transform_inputs(x).numpy()[:, 0]
    np.testing.assert_allclose(transformed, 5 * np.tanh(x[:, 0] / 5))
    assert abs(transformed[3] - 0.1) < 1e-4 and transformed[-1] < 5.0 and transformed[0] > -5.0
    np.testing.assert_array_equal(network(input_transform="none").transform_inputs(x).numpy(), x)
    with pytest.raises(ValueError, match="input_transform must be one of none, tanh, got 'log'"):
        network(input_transform="log")
    with pytest.raises(ValueError, match="activation must be one of leaky_relu, relu, got 'gelu'"):
        network(activation="gelu")


@pytest.mark.slow
def test_linear_decay_reaches_zero_at_the_end_of_the_phase():
    """The last step of a phase has a learning rate of (almost) zero: training one more epoch at
    the schedule's end barely moves the weights, unlike the constant schedule."""
    x, y = toy_problem()
    moved = {}
    for schedule in ("constant", "linear_decay"):
        net = network()
        train = trainer(net, schedule)
        train.fit(x[None], y[None], x, y, num_epochs=30, eval_every=29, phase=0)
        # fit stops at its evaluation points: epoch 29 then 30; compare the weights over the last epoch
        before = [w.copy() for w in net.get_weights()]
        train.fit(x[None], y[None], x, y, num_epochs=30, eval_every=30, phase=0, first_epoch=29)
        moved[schedule] = max(np.abs(a - b).max() for a, b in zip(net.get_weights(), before, strict=True))
    assert moved["linear_decay"] < 0.2 * moved["constant"]


@pytest.mark.slow
def test_a_phase_resumed_mid_schedule_equals_an_uninterrupted_one():
    x, y = toy_problem()
    whole = network()
    trainer(whole).fit(x[None], y[None], x, y, num_epochs=20, eval_every=20, phase=0)
    first = network()
    first_trainer = trainer(first)
    first_trainer.fit(x[None], y[None], x, y, num_epochs=20, eval_every=8, phase=0,
                      on_evaluation=lambda metrics: metrics.epoch == 8)  # stop after epoch 8
    resumed = network()
    resumed.set_weights(first.get_weights())
    resumed_trainer = trainer(resumed)
    resumed_trainer.set_optimizer_state(first_trainer.get_optimizer_state())
    resumed_trainer.fit(x[None], y[None], x, y, num_epochs=20, eval_every=20, phase=0, first_epoch=8)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("options, learning_rate", [({}, 0.01), (DEFAULT_OPTIONS, DEFAULT_LEARNING_RATE)],
                         ids=["tanh-relu", "default"])
def test_a_run_in_a_stack_equals_the_run_alone_under_the_recipe(options, learning_rate):
    x, y = toy_problem()
    alone, stacked = network(seeds=(7,), **options), network(seeds=(3, 7), **options)
    trainer(alone, learning_rate=learning_rate).fit(x[None], y[None], x, y, num_epochs=12, eval_every=12, phase=0)
    trainer(stacked, learning_rate=learning_rate).fit(np.stack([x, x]), np.stack([y, y]), x, y, num_epochs=12,
                                                      eval_every=12, phase=0)
    for a, b in zip(alone.get_weights(), stacked.get_weights(), strict=True):
        np.testing.assert_allclose(a[0], b[1], rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("options, learning_rate", [({}, 0.01), (DEFAULT_OPTIONS, DEFAULT_LEARNING_RATE)],
                         ids=["tanh-relu", "default"])
def test_ncp_still_raises_far_away_epistemic_std_under_the_recipe(options, learning_rate):
    x, y = toy_problem()
    far = np.linspace(2.5, 4.0, 8)[:, None]
    stds = {}
    for name, ncp in (("plain", None), ("ncp", NoiseContrastivePrior(0.3, 0.1, 1.0))):
        net = network(seeds=(1,), **options)
        trainer(net, ncp=ncp, learning_rate=learning_rate).fit(x[None], y[None], x, y, num_epochs=200,
                                                                eval_every=200, phase=0)
        stds[name] = net.predict(far)[1].numpy().mean()
    assert stds["ncp"] > 1.5 * stds["plain"]


def test_a_step_budget_gives_small_training_sets_as_many_steps_as_large_ones():
    from al_bnn.config import TrainSchedule

    schedule = TrainSchedule(batch_size=128, num_epochs=7, num_steps=1000)
    assert schedule.epochs_for(25) == 1000          # one batch per epoch
    assert schedule.epochs_for(1640) == 77          # 13 batches per epoch: ceil(1000 / 13)
    assert schedule.epochs_for(128 * 2000) == 1     # at least one epoch
    assert TrainSchedule(num_epochs=7).epochs_for(10**6) == 7  # num_steps 0: epochs as given


def test_a_minimum_step_count_raises_the_epochs_of_small_training_sets_only():
    from al_bnn.config import TrainSchedule

    schedule = TrainSchedule(batch_size=256, num_epochs=160, min_steps=800)
    assert schedule.epochs_for(20) == 800           # one batch per epoch: 800 epochs reach 800 steps
    assert schedule.epochs_for(328) == 400          # two batches per epoch
    assert schedule.epochs_for(1640) == 160         # seven batches: 160 epochs already give 1120 steps
    assert TrainSchedule(batch_size=256, num_steps=100, min_steps=300).epochs_for(512) == 150
    assert TrainSchedule(batch_size=256, num_epochs=160).epochs_for(20) == 160  # min_steps 0: no minimum


@pytest.mark.slow
def test_the_estimator_trains_the_step_budget_in_whole_epochs():
    from al_bnn import BNNRegressor

    x, y = toy_problem(n=64)  # 4 batches of 16 per epoch
    model = BNNRegressor(layer_sizes=[8], n_steps=30, min_steps=0, batch_size=16, random_state=0).fit(x, y)
    assert model.history_[-1]["epoch"] == 8  # ceil(30 / 4)


@pytest.mark.slow
def test_the_loop_trains_each_phase_the_step_budget_and_numbers_epochs_across_phases():
    from al_bnn.config import config_from_dict
    from al_bnn.loop import RunSpec, run_experiments

    config = config_from_dict({
        "al_schedule": {"al_iter": 2, "num_al_incr": 16, "num_train_init": 16},
        "net_config": {"layer_sizes": [8]}, "parms": {"sample_policy": "random"},
        "train_schedule": {"batch_size": 16, "num_steps": 6, "eval_after_epochs": 100},
        "data": {"dataset": "yacht", "size_pool": 100, "size_test": 30}}, "test")
    assert config.phase_epochs() == [6, 3, 2]  # 1, 2 and 3 batches per epoch
    [result] = run_experiments([RunSpec("run", config)], show_progress=False)
    assert [(row["al_iter"], row["epoch"]) for row in result.metrics] == [(0, 6), (1, 9), (2, 11)]


def test_the_ntk_parametrisation_computes_the_standard_network_with_rescaled_weights():
    """An ntk network equals a standard one whose kernels are (0.2 / sqrt(fan_in)) W and biases 0.2 b:
    same predictive mean, epistemic and aleatoric std, features and KL term."""
    ntk = network(parametrization="ntk", seeds=(5,))
    standard = network(seeds=(5,))
    assert ntk.kernel_scales == [0.2, 0.2 / 4.0] and ntk.head_scale == 0.2 / 4.0 and ntk.bias_scale == 0.2
    rescaled = []
    for variable in ntk.trainable_variables:
        value = variable.numpy()
        name = variable.name.split(":")[0]
        if name.startswith("hidden_kernel_"):
            value = value * ntk.kernel_scales[int(name.rsplit("_", 1)[1])]
        elif name.startswith("hidden_bias_") or name in ("output_bias", "noise_bias"):
            value = value * ntk.bias_scale
        elif name in ("output_kernel_mean", "noise_kernel"):
            value = value * ntk.head_scale
        elif name == "output_kernel_std_parameter":  # softplus(p') = head_scale * softplus(p)
            value = np.log(np.expm1(ntk.head_scale * np.log1p(np.exp(value))))
        rescaled.append(value)
    standard.set_weights(rescaled)
    standard.prior = type(standard.prior)(standard.prior.loc, ntk.prior.scale * ntk.head_scale)
    x = np.linspace(-3, 3, 11)[:, None]
    for a, b in zip(ntk.predict(x), standard.predict(x), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ntk.features(x).numpy(), standard.features(x).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ntk.kl_divergence().numpy(), standard.kl_divergence().numpy(), rtol=1e-9)
    # the initial posterior std and the prior of the effective weights are weight_std in both
    np.testing.assert_allclose(ntk.output_kernel_std().numpy(), 0.3, rtol=1e-9)
    with pytest.raises(ValueError, match="parametrization must be one of standard, ntk, got 'mup'"):
        network(parametrization="mup")


@pytest.mark.slow
def test_a_run_in_a_stack_equals_the_run_alone_under_the_ntk_parametrisation():
    x, y = toy_problem()
    alone, stacked = network(seeds=(7,), parametrization="ntk"), network(seeds=(3, 7), parametrization="ntk")
    trainer(alone).fit(x[None], y[None], x, y, num_epochs=12, eval_every=12, phase=0)
    trainer(stacked).fit(np.stack([x, x]), np.stack([y, y]), x, y, num_epochs=12, eval_every=12, phase=0)
    for a, b in zip(alone.get_weights(), stacked.get_weights(), strict=True):
        np.testing.assert_allclose(a[0], b[1], rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("retrain_from", ["previous", "initial"])
def test_retrain_from_initial_starts_every_phase_from_the_initial_weights(monkeypatch, retrain_from):
    from al_bnn.config import config_from_dict
    from al_bnn.loop import RunSpec, run_experiments

    starts = []
    original_fit = StackedTrainer.fit

    def recording_fit(self, *args, **kwargs):
        starts.append(self.network.get_weights())
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(StackedTrainer, "fit", recording_fit)
    config = config_from_dict({
        "al_schedule": {"al_iter": 2, "num_al_incr": 16, "num_train_init": 16},
        "net_config": {"layer_sizes": [8]}, "parms": {"sample_policy": "random"},
        "train_schedule": {"batch_size": 16, "num_epochs": 3, "eval_after_epochs": 100, "retrain_from": retrain_from},
        "data": {"dataset": "yacht", "size_pool": 100, "size_test": 30}}, "test")
    run_experiments([RunSpec("run", config)], show_progress=False)
    assert len(starts) == 3
    for later in starts[1:]:
        same = all(np.array_equal(a, b) for a, b in zip(starts[0], later, strict=True))
        assert same == (retrain_from == "initial")


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_beta_nll_scales_each_points_gradient_by_its_noise_variance_to_the_beta(beta):
    """d loss / d mean = (mean - y) / std^2 * (std^2)^beta: beta 1 is the squared error's gradient
    (halved), beta 0 the plain likelihood's; the loss value is the likelihood times the weight."""
    net = network(nll_beta=beta)
    y = tf.constant([0.0, 1.0, -2.0], tf.float64)
    mean = tf.Variable([0.5, 0.0, -1.0], dtype=tf.float64)
    std = tf.constant([0.1, 1.0, 3.0], tf.float64)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(net.data_loss(y, mean, std))
    gradient = tape.gradient(loss, mean).numpy()
    np.testing.assert_allclose(gradient, (mean - y).numpy() / std.numpy() ** 2 * std.numpy() ** (2 * beta), rtol=1e-12)
    nll = net.gaussian_negative_log_likelihood(y, mean, std).numpy()
    np.testing.assert_allclose(net.data_loss(y, mean, std).numpy(), nll * std.numpy() ** (2 * beta), rtol=1e-12)
    with pytest.raises(ValueError, match="nll_beta must be in"):
        network(nll_beta=1.5)


def test_the_estimators_default_to_the_recipe_and_the_configs_use_it():
    """BNNRegressor() is the default recipe; the benchmark and the study's second edition train it."""
    import yaml

    from al_bnn import BNNRegressor
    from al_bnn.paths import REPO_ROOT
    from al_bnn.recipe import DEFAULT_RECIPE
    from al_bnn_lab.study import question_settings

    names = {"num_epochs": "n_epochs", "num_steps": "n_steps"}
    parameters = BNNRegressor().get_params()
    for section in DEFAULT_RECIPE.values():
        for key, value in section.items():
            assert parameters[names.get(key, key)] == (tuple(value) if isinstance(value, list) else value), key
    benchmark = yaml.safe_load((REPO_ROOT / "configs" / "benchmark.yaml").read_text())
    study = {question: question_settings(question, quick=False)[0] for question in ("q6", "q7")}
    models = yaml.safe_load((REPO_ROOT / "configs" / "model_benchmark.yaml").read_text())
    selection = yaml.safe_load((REPO_ROOT / "configs" / "recipe_selection.yaml").read_text())
    for experiment in [benchmark["experiment"], models["sampler_settings"]["default"], selection["experiment"],
                       *(raw["experiment"] for raw in study.values())]:
        for name, section in DEFAULT_RECIPE.items():
            assert {key: experiment[name][key] for key in section} == section, name
