"""MC-dropout and deep-ensemble models: they learn, and their function samples are joint."""

import numpy as np
import pytest

from al_bnn.models import DropoutNetwork, EnsembleNetwork
from al_bnn.models.tensorflow_setup import tf
from al_bnn.models.trainer import StackedTrainer
from test_bnn import toy_problem


def make(kind, seeds=(0,), layer_sizes=(32, 32)):
    if kind == "dropout":
        return DropoutNetwork(1, list(layer_sizes), 0.1, seeds=list(seeds))
    return EnsembleNetwork(1, list(layer_sizes), 4, seeds=list(seeds))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dropout", "ensemble"])
def test_the_model_learns_a_toy_function(kind):
    x, y = toy_problem()
    network = make(kind)
    trainer = StackedTrainer(network, 0.01, 100.0, 1.0, 16)
    before, _ = trainer.evaluate(x, y)
    trainer.fit(x[None], y[None], x, y, num_epochs=250, eval_every=250, phase=0)
    after, _ = trainer.evaluate(x, y)
    assert after[0] < 0.5 * before[0] and after[0] < 0.35
    mean, epistemic, aleatoric = (t.numpy() for t in network.predict(x))
    assert mean.shape == epistemic.shape == aleatoric.shape == (1, len(x))
    assert np.all(epistemic > 0) and np.all(aleatoric > 0)


@pytest.mark.slow
def test_dropout_samples_share_one_mask_per_pass_so_nearby_points_are_correlated():
    network = make("dropout")
    x = np.array([[0.5], [0.55], [1.5]], dtype=np.float32)  # not 0: an untrained net maps 0 to its bias
    samples = network.function_samples(x, 400, counters=(0,))
    assert samples.shape == (400, 3)
    correlation = np.corrcoef(samples.T)
    assert correlation[0, 1] > 0.9  # a per-point mask would make this about 0
    np.testing.assert_array_equal(samples, network.function_samples(x, 400, counters=(0,)))
    assert not np.allclose(samples, network.function_samples(x, 400, counters=(1,)))
    with pytest.raises(ValueError, match="joint samples only"):
        network.function_samples(x, 4, counters=(0,), mode="marginal")


def test_ensemble_samples_are_the_members_mean_functions():
    network = make("ensemble", seeds=(3, 4))
    x = np.linspace(-1, 1, 5)[:, None].astype(np.float32)
    samples = network.function_samples(x, 100, counters=(0,), run=1)
    assert samples.shape == (4, 5)  # one row per member, whatever T was asked for
    mean, epistemic, _ = (t.numpy() for t in network.predict(x))
    np.testing.assert_allclose(mean[1], samples.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(epistemic[1], samples.std(0), rtol=1e-4, atol=1e-6)
    assert len({tuple(np.round(row, 5)) for row in samples}) == 4  # members differ (own initialisation)


@pytest.mark.slow
def test_an_ensemble_run_in_a_stack_computes_what_it_computes_alone():
    x, y = toy_problem()
    alone, stacked = make("ensemble", seeds=(7,)), make("ensemble", seeds=(2, 7))
    StackedTrainer(alone, 0.01, 100.0, 1.0, 16).fit(x[None], y[None], x, y, 3, 3, phase=0)
    StackedTrainer(stacked, 0.01, 100.0, 1.0, 16).fit(np.stack([x[::-1], x]), np.stack([y[::-1], y]), x, y, 3, 3,
                                                      phase=0)
    np.testing.assert_allclose(stacked.function_samples(x, 4, (0,), run=1), alone.function_samples(x, 4, (0,)),
                               rtol=1e-4, atol=1e-5)


def test_models_without_a_closed_form_kernel_say_so():
    with pytest.raises(ValueError, match="no closed-form kernel features; use gpa_kernel: mc"):
        make("dropout").features(np.zeros((2, 1), np.float32), run=0)
    with pytest.raises(ValueError, match="dropout_rate must be in"):
        DropoutNetwork(1, [4], 0.0, seeds=[0])
    with pytest.raises(ValueError, match="ensemble_size must be >= 2"):
        EnsembleNetwork(1, [4], 1, seeds=[0])
    assert tf.is_tensor(make("ensemble").predict(np.zeros((2, 1), np.float32))[0])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dropout", "ensemble", "bnn"])
def test_epochs_per_call_do_not_change_the_numbers(kind, monkeypatch):
    """Training calls are capped in memory (a big dropout stack gets fewer epochs per call); the
    draws are keyed by epoch, so one epoch per call trains exactly what 25 per call train."""
    import al_bnn.models.trainer as trainer_module
    from al_bnn.models import BayesianLastLayerNetwork
    from al_bnn.models.trainer import NoiseContrastivePrior

    x, y = toy_problem(n=40)
    stacked_x, stacked_y = np.stack([x, x[::-1]]), np.stack([y, y[::-1]])

    def train(budget):
        monkeypatch.setattr(trainer_module, "EPOCH_DRAWS_BYTES_PER_CALL", budget)
        if kind == "bnn":
            network = BayesianLastLayerNetwork(1, [16, 16], 0.3, seeds=[0, 1])
            trainer = StackedTrainer(network, 0.01, 100.0, 1.0, 16, learning_rate_schedule="linear_decay",
                                     ncp=NoiseContrastivePrior(0.5, 1.0, 1.0))
        else:
            network = make(kind, seeds=(0, 1), layer_sizes=(16, 16))
            trainer = StackedTrainer(network, 0.01, 100.0, 1.0, 16, learning_rate_schedule="linear_decay")
        calls = trainer.epochs_per_call(len(x), 1)
        trainer.fit(stacked_x, stacked_y, x, y, num_epochs=12, eval_every=6, phase=0)
        return calls, [v.numpy() for v in network.trainable_variables]

    (many, reference), (one, capped) = train(2**30), train(1)
    assert many == trainer_module.MAX_EPOCHS_PER_CALL  # not capped by memory here
    assert one == 1
    for a, b in zip(reference, capped, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_large_dropout_stack_trains_fewer_epochs_per_call():
    from al_bnn.models.trainer import EPOCH_DRAWS_BYTES_PER_CALL, MAX_EPOCHS_PER_CALL

    network = DropoutNetwork(18, [256, 256], 0.1, seeds=list(range(40)))
    trainer = StackedTrainer(network, 0.01, 100.0, 1.0, 256)
    per_epoch = trainer.epoch_draw_bytes(3320, 18)  # 40 runs at the benchmark's last phase on elevators
    assert per_epoch > 2e8  # one mask value per example, unit and step
    assert trainer.epochs_per_call(3320, 18) == EPOCH_DRAWS_BYTES_PER_CALL // per_epoch < MAX_EPOCHS_PER_CALL
    small = StackedTrainer(DropoutNetwork(18, [256, 256], 0.1, seeds=[0]), 0.01, 100.0, 1.0, 256)
    assert small.epochs_per_call(200, 18) == MAX_EPOCHS_PER_CALL
