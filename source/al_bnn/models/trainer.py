"""Training of a stacked model (bnn, dropout or ensemble): one compiled call per chunk of epochs.

Shuffling and batching run in a TensorFlow graph and the optimiser steps of a whole chunk in one
XLA program per group of units (2 groups, run concurrently); Python is touched only between
chunks (to evaluate, log and show progress), because at this network's size the per-step cost
of Python dispatch is several times the step itself.

The model defines the loss of each stacked unit (see its loss_per_unit); the trainer owns the
data order, the per-step random draws, and Adam. Each unit has its own global-norm clipping and
its own Adam moments, so runs in a stack never interact.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from al_bnn.models.protocol import TrainableModel
from al_bnn.models.tensorflow_setup import tf

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-8  # tf.compat.v1 AdamOptimizer defaults
MAX_EPOCHS_PER_CALL = 25
# Bytes of per-epoch draws and gathered minibatches one call may hold; a stack of many dropout runs
# (a mask per example and unit) gets fewer epochs per call. The draws are keyed by epoch, so the
# numbers do not depend on the split (tested).
EPOCH_DRAWS_BYTES_PER_CALL = 2**30
CENTRAL_90_Z = 1.6448536269514722  # the standard normal's 95% quantile: +- z holds the central 90%
# "constant": the learning rate throughout; "linear_decay": from the learning rate down to zero
# over each training phase (Adam's moments are reset between phases, so each phase decays anew).
LEARNING_RATE_SCHEDULES = ("constant", "linear_decay")
BATCHINGS = ("padded", "balanced")  # config train_schedule.batching


class _OwnRetracingFilter(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning about this trainer's functions.

    TensorFlow counts traces per Python function across all instances, so fitting several models
    in one process (cross-validation, a grid search, the loop's runs) trips it although each new
    trainer traces once, as it must (its functions capture its own variables); the warning's
    advice does not apply. Warnings about any other function pass."""

    PATTERN = re.compile(r"calls to <bound method StackedTrainer\._\w+ of .*triggered tf\.function retracing", re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.PATTERN.search(record.getMessage())


if not any(isinstance(f, _OwnRetracingFilter) for f in tf.get_logger().filters):
    tf.get_logger().addFilter(_OwnRetracingFilter())


@dataclass
class EvaluationMetrics:
    """Metrics of every run in the stack after some epoch, in standardised target units."""

    epoch: int
    train_rmse: np.ndarray  # (K,)
    train_log_likelihood: np.ndarray
    test_rmse: np.ndarray
    test_log_likelihood: np.ndarray
    test_coverage_90: np.ndarray | None = None  # share of targets inside the central 90% predictive interval


@dataclass(frozen=True)
class NoiseContrastivePrior:
    """NCP (Hafner et al., arXiv 1807.09289): at inputs perturbed by N(0, noise_std^2) noise, pull
    the distribution of the model's mean, N(mean, epistemic std), towards the output prior
    N(center, ood_std_prior) with a KL term weighted by ncp_scale; center is the batch's targets
    (center_at_target) or zero. It raises the epistemic uncertainty away from the data."""

    noise_std: float
    ncp_scale: float
    ood_std_prior: float
    center_at_target: bool = True


class StackedTrainer:
    """Adam with per-unit global-norm clipping for the stacked units of one model. divergence_scale
    and ncp are passed to the model's loss (the bnn uses them; the other models ignore them).

    unit_groups: the stack's units are split into this many contiguous groups, each trained by its
    own compiled program; the programs share nothing, so TensorFlow runs them concurrently (on
    this 2-core machine, 2 groups train a stack 1.3-1.6x faster than one program). A unit's
    numbers do not depend on the machine's core count; they may differ from another grouping's
    at float32 rounding level (XLA picks its matmul code by shape), which is why the default is a
    fixed number and not the core count.
    """

    def __init__(self, network: TrainableModel, learning_rate: float, clip_gradient: float,
                 divergence_scale: float, batch_size: int, ncp: NoiseContrastivePrior | None = None,
                 unit_groups: int = 2, learning_rate_schedule: str = "constant", batching: str = "padded"):
        if isinstance(unit_groups, bool) or not isinstance(unit_groups, numbers.Integral) or unit_groups < 1:
            raise ValueError(f"unit_groups must be a positive integer, got {unit_groups!r}")
        if learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            raise ValueError(f"learning_rate_schedule must be one of {', '.join(LEARNING_RATE_SCHEDULES)}, got "
                             f"{learning_rate_schedule!r}")
        if batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}, got {batching!r}")
        self.batching: str = batching
        # Annotated: models/ is an import cycle, so the type checker may read these before __init__.
        self.learning_rate_schedule: str = learning_rate_schedule
        self.network: TrainableModel = network
        self.ncp: NoiseContrastivePrior | None = ncp
        self.learning_rate: float = float(learning_rate)
        self.clip_gradient: float = float(clip_gradient)
        self.divergence_scale: float = float(divergence_scale)
        self.batch_size: int = int(batch_size)
        self.unit_groups: int = min(int(unit_groups), network.num_units)
        sizes = [network.num_units // self.unit_groups + (g < network.num_units % self.unit_groups)
                 for g in range(self.unit_groups)]
        self._group_bounds = [(sum(sizes[:g]), sum(sizes[:g + 1])) for g in range(self.unit_groups)]
        variables = network.trainable_variables
        self._first_moments: list[tf.Variable] = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._second_moments: list[tf.Variable] = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self._adam_step: tf.Variable = tf.Variable(0.0, dtype=network.dtype, trainable=False)
        # The steps over pre-shuffled batches are one XLA program per group (static shapes, compiled
        # once per training-set size): about 3x cheaper per step on CPU than a plain graph. The
        # shuffling and gathering before them stay in a plain graph, where XLA's CPU sort and gather
        # are slow.
        self._group_steps = _shared_group_steps(self)
        # reduce_retracing: one graph serves every training-set size (n is read with tf.shape).
        self._train_epochs: Callable = tf.function(self._train_epochs_eager, reduce_retracing=True)
        self._evaluate: Callable = tf.function(self._evaluate_eager, reduce_retracing=True)

    def reset_optimizer(self) -> None:
        """Forget Adam's moments (done after every acquisition); the weights are kept."""
        for moment in [*self._first_moments, *self._second_moments]:
            moment.assign(tf.zeros_like(moment))
        self._adam_step.assign(0.0)

    # -- the math of one step, as a pure function of (parameters, Adam moments, batch) ---------
    def _adam_update(self, parameters, gradients, first_moments, second_moments, step, phase_steps=None):
        """Adam step number `step` (counted from 1) with each unit's gradients clipped to global
        norm clip_gradient, as clip_by_global_norm per unit; returns new parameters and moments.
        With the linear_decay schedule the rate is scaled by 1 - (step - 1) / phase_steps."""
        norm = tf.sqrt(tf.add_n([_squared_norm_per_run(g) for g in gradients]))
        scale = self.clip_gradient / tf.maximum(norm, self.clip_gradient)
        step_size = self.learning_rate * tf.sqrt(1.0 - ADAM_BETA_2 ** step) / (1.0 - ADAM_BETA_1 ** step)
        if self.learning_rate_schedule == "linear_decay":
            step_size = step_size * tf.maximum(tf.zeros_like(step), 1.0 - (step - 1.0) / phase_steps)
        new_parameters, new_first, new_second = [], [], []
        for parameter, gradient, m, v in zip(parameters, gradients, first_moments, second_moments, strict=True):
            gradient = gradient * tf.reshape(scale, [-1] + [1] * (gradient.shape.rank - 1))
            m = ADAM_BETA_1 * m + (1.0 - ADAM_BETA_1) * gradient
            v = ADAM_BETA_2 * v + (1.0 - ADAM_BETA_2) * tf.square(gradient)
            new_parameters.append(parameter - step_size * m / (tf.sqrt(v) + ADAM_EPSILON))
            new_first.append(m)
            new_second.append(v)
        return new_parameters, new_first, new_second

    def _step(self, parameters, first_moments, second_moments, step, x_batch, y_batch, batch_mask, weight_noise,
              batches_per_epoch, input_noise=None, phase_steps=None):
        with tf.GradientTape() as tape:
            tape.watch(parameters)
            network = self.network.with_parameters(parameters)
            loss = tf.reduce_sum(network.loss_per_unit(x_batch, y_batch, batch_mask, weight_noise, batches_per_epoch,
                                                       input_noise, self.divergence_scale, self.ncp))
        gradients = tape.gradient(loss, parameters)
        return self._adam_update(parameters, gradients, first_moments, second_moments, step, phase_steps)

    def _group_steps_eager(self, parameters, first_moments, second_moments, last_step, x_batches, y_batches, mask,
                           noise, batches_per_epoch, input_noise=None, phase_steps=None):
        """Optimiser steps over pre-shuffled batches, in order, for one group of U units:
        parameters and moments (U, ...), last_step the Adam step count before the first batch,
        x_batches (U, B, batch, d), y_batches (U, B, batch), mask (B, batch), noise
        (U, B, *step noise shape), input_noise (U, B, batch, d) for NCP or None. Returns the
        parameters and moments after the B steps."""
        num_units = tf.shape(x_batches)[0]

        def body(batch, parameters, first_moments, second_moments):
            updated = self._step(parameters, first_moments, second_moments,
                                 last_step + tf.cast(batch + 1, last_step.dtype), x_batches[:, batch],
                                 y_batches[:, batch], tf.broadcast_to(mask[batch], [num_units, self.batch_size]),
                                 noise[:, batch], batches_per_epoch,
                                 None if input_noise is None else input_noise[:, batch], phase_steps)
            return (batch + 1, *updated)

        _, parameters, first_moments, second_moments = tf.while_loop(
            lambda batch, *_: batch < tf.shape(mask)[0], body,
            (tf.constant(0), list(parameters), list(first_moments), list(second_moments)))
        return parameters, first_moments, second_moments

    def _step_eager(self, x_batch, y_batch, batch_mask, weight_noise, batches_per_epoch, input_noise=None):
        """One step applied to the variables, the whole stack at once (the Python-loop baseline of
        bench_training.py calls this per batch; training itself goes through _train_epochs)."""
        self._adam_step.assign_add(1.0)
        updated = self._step(*self._read_state(), self._adam_step.read_value(), x_batch, y_batch, batch_mask,
                             weight_noise, batches_per_epoch, input_noise)
        self._write_state(updated)
        return tf.constant(0)

    def _state_variables(self) -> tuple[list[tf.Variable], list[tf.Variable], list[tf.Variable]]:
        """What a step reads and writes: the weights and Adam's two moments."""
        return self.network.trainable_variables, self._first_moments, self._second_moments

    def _read_state(self) -> list[list[tf.Tensor]]:
        return [[variable.read_value() for variable in variables] for variables in self._state_variables()]

    def _write_state(self, values) -> None:
        for variables, new_values in zip(self._state_variables(), values, strict=True):
            for variable, value in zip(variables, new_values, strict=True):
                variable.assign(value)

    def _train_epochs_eager(self, x, y, run_seeds, first_epoch, num_epochs, phase_epochs=None):
        """Train all runs for num_epochs; x (K, n, d), y (K, n), run_seeds (K, 2) int64.

        Every epoch's data order and weight noise come from stateless draws keyed by
        (run seed, epoch); the batches of all num_epochs epochs are gathered up front and each
        group's steps run as one XLA program.
        """
        net = self.network
        num_runs, batch_size = net.num_units, self.batch_size
        x, y = net.units_from_runs(x), net.units_from_runs(y)
        # the schedule's horizon: the steps of the whole phase (phase_epochs epochs of this set)
        phase_steps = None
        if self.learning_rate_schedule != "constant":
            phase_steps = tf.cast(phase_epochs * ((tf.shape(x)[1] + batch_size - 1) // batch_size), net.dtype)
        noise_shape = list(net.step_noise_shape(batch_size))
        n = tf.shape(x)[1]
        num_batches = (n + batch_size - 1) // batch_size
        # Batches have a static size; the slots no row fills are masked out of the loss.
        padded = num_batches * batch_size
        layout = epoch_layout(n, batch_size, self.batching)
        mask = tf.cast(layout.mask, net.dtype)
        batches_per_epoch = tf.cast(layout.batches_per_epoch, net.dtype)  # the bnn's KL divisor

        def draw(seed_and_epoch):
            seed, epoch = seed_and_epoch
            epoch_seed = tf.random.experimental.stateless_fold_in(seed, epoch)
            shuffle_seed = tf.random.experimental.stateless_fold_in(epoch_seed, 0)
            noise_seed = tf.random.experimental.stateless_fold_in(epoch_seed, 1)
            order = tf.argsort(tf.random.stateless_uniform([n], shuffle_seed))
            noise = tf.random.stateless_normal([num_batches, *noise_shape], noise_seed, dtype=net.dtype)
            drawn = (layout.place(order, padded), noise)
            if self.ncp is None:
                return drawn
            input_seed = tf.random.experimental.stateless_fold_in(epoch_seed, 2)
            return (*drawn, tf.random.stateless_normal([padded, tf.shape(x)[2]], input_seed, dtype=net.dtype))

        # One (run, epoch) pair per element: a loop in the graph, so its size does not grow with K or epochs.
        seeds = tf.repeat(run_seeds, num_epochs, axis=0)
        epochs = tf.tile(first_epoch + tf.range(num_epochs), [num_runs])
        signature = (tf.int32, net.dtype) if self.ncp is None else (tf.int32, net.dtype, net.dtype)
        drawn = tf.map_fn(draw, (seeds, epochs), fn_output_signature=signature)
        order = tf.reshape(drawn[0], [num_runs, num_epochs * num_batches, batch_size])
        noise = tf.reshape(drawn[1], [num_runs, num_epochs * num_batches, *noise_shape])
        input_noise = None if self.ncp is None else tf.reshape(
            drawn[2], [num_runs, num_epochs * num_batches, batch_size, tf.shape(x)[2]])
        x_batches, y_batches = tf.gather(x, order, batch_dims=1), tf.gather(y, order, batch_dims=1)
        mask = tf.tile(mask, [num_epochs, 1])
        last_step = self._adam_step.read_value()
        state = self._read_state()
        # The groups' programs have no data dependence on each other: the executor runs them concurrently.
        results = [self._group_steps(*[[value[start:end] for value in values] for values in state], last_step,
                                     x_batches[start:end], y_batches[start:end], mask, noise[start:end],
                                     batches_per_epoch, None if input_noise is None else input_noise[start:end],
                                     phase_steps)
                   for start, end in self._group_bounds]
        # results[group][part][variable] -> state[part][variable], the groups joined along the unit axis
        self._write_state([[parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
                            for parts in zip(*(result[index] for result in results), strict=True)]
                           for index in range(len(state))])
        self._adam_step.assign_add(tf.cast(tf.shape(mask)[0], net.dtype))
        return tf.constant(0)

    def _evaluate_eager(self, x, y):
        """RMSE, Gaussian log-likelihood (total std) and the share of targets inside the central 90%
        predictive interval, per run; x (K, n, d) or (n, d)."""
        mean, epistemic, aleatoric = self.network.predict(x)
        y = tf.broadcast_to(tf.cast(y, self.network.dtype), tf.shape(mean))
        total_variance = tf.square(epistemic) + tf.square(aleatoric)
        rmse = tf.sqrt(tf.reduce_mean(tf.square(y - mean), axis=1))
        log_likelihood = tf.reduce_mean(-0.5 * tf.square(y - mean) / total_variance
                                        - 0.5 * tf.math.log(2 * math.pi * total_variance), axis=1)
        inside = tf.cast(tf.square(y - mean) <= CENTRAL_90_Z**2 * total_variance, mean.dtype)
        return rmse, log_likelihood, tf.reduce_mean(inside, axis=1)

    # -- public ---------------------------------------------------------------------------------
    def evaluate(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        rmse, log_likelihood, _ = self._evaluate(tf.convert_to_tensor(x, self.network.dtype),
                                                 tf.convert_to_tensor(y, self.network.dtype))
        return rmse.numpy(), log_likelihood.numpy()

    def fit(self, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
            num_epochs: int, eval_every: int, phase: int, first_epoch: int = 0,
            on_evaluation: Callable[[EvaluationMetrics], bool | None] | None = None) -> list[EvaluationMetrics]:
        """Train every run num_epochs epochs on its own (train_x[k], train_y[k]).

        Randomness is keyed by (run seed, "training", phase, epoch), so the same phase of the same
        run always sees the same data order and weight noise. Evaluates after every eval_every
        epochs and at the end; returns the evaluations (epochs counted within the phase).
        first_epoch > 0 continues a phase (e.g. after a resume): the draws depend on the epoch
        number only, so the continuation equals an uninterrupted phase. If on_evaluation returns
        True, training stops after that evaluation.
        """
        dtype = self.network.dtype
        train_x_t = tf.convert_to_tensor(train_x, dtype)
        train_y_t = tf.convert_to_tensor(train_y, dtype)
        test_x_t = tf.convert_to_tensor(test_x, dtype)
        test_y_t = tf.convert_to_tensor(test_y, dtype)
        if train_x_t.shape.rank != 3 or train_x_t.shape[0] != self.network.num_runs:
            raise ValueError(f"train_x must be (K={self.network.num_runs}, n, d), got {train_x_t.shape}")
        run_seeds = tf.constant(self.network.unit_seed_words("training", phase))
        evaluations = []
        epochs_per_call = self.epochs_per_call(int(train_x_t.shape[1]), int(train_x_t.shape[2]))
        epoch = first_epoch
        while epoch < num_epochs:
            # One compiled call per chunk; chunks end at evaluation points and are capped so that the
            # per-epoch draws of a chunk (dropout masks above all) stay small in memory.
            chunk = min(eval_every - epoch % eval_every, num_epochs - epoch, epochs_per_call)
            self._train_epochs(train_x_t, train_y_t, run_seeds, tf.constant(epoch, tf.int32),
                               tf.constant(chunk, tf.int32), tf.constant(num_epochs, tf.int32))
            epoch += chunk
            if epoch % eval_every and epoch < num_epochs:
                continue
            train_rmse, train_ll, _ = self._evaluate(train_x_t, train_y_t)
            test_rmse, test_ll, test_coverage = self._evaluate(test_x_t, test_y_t)
            metrics = EvaluationMetrics(epoch, train_rmse.numpy(), train_ll.numpy(), test_rmse.numpy(),
                                        test_ll.numpy(), test_coverage.numpy())
            evaluations.append(metrics)
            if on_evaluation is not None and on_evaluation(metrics):
                break
        return evaluations

    def epoch_draw_bytes(self, n_train: int, n_features: int) -> float:
        """Bytes one epoch of all units holds in a training call (see epoch_draw_bytes)."""
        net = self.network
        return epoch_draw_bytes(net.num_units, n_train, n_features, self.batch_size,
                                int(np.prod(net.step_noise_shape(self.batch_size))), self.ncp is not None,
                                net.dtype.size)

    def epochs_per_call(self, n_train: int, n_features: int) -> int:
        """Epochs one compiled call trains (see epochs_per_call)."""
        return epochs_per_call(self.epoch_draw_bytes(n_train, n_features))

    def _optimizer_variables(self) -> list[tf.Variable]:
        return [*self._first_moments, *self._second_moments, self._adam_step]

    def get_optimizer_state(self) -> list[np.ndarray]:
        return [v.numpy() for v in self._optimizer_variables()]

    def set_optimizer_state(self, values: Sequence[np.ndarray]) -> None:
        for variable, value in zip(self._optimizer_variables(), values, strict=True):
            variable.assign(value)


# Compiled group-step programs shared by trainers that compute the same thing (see _program_key):
# every new model (each fit of an estimator, each fold of a cross-validation) would otherwise trace
# and XLA-compile its own copy, which costs far more than training a small model.
_GROUP_STEPS_CACHE: dict[tuple, Callable] = {}
_GROUP_STEPS_CACHE_SIZE = 16
_KEY_TYPES = (int, float, str, bool, type(None), tf.DType)


def _program_key(trainer: StackedTrainer) -> tuple | None:
    """What _group_steps_eager reads besides its arguments: the network's configuration (every
    plain attribute; its variables are replaced by the arguments, and its unit keys and seeds are
    removed by with_parameters) and the trainer's step settings. None when the network holds
    something this key cannot compare (then the trainer compiles its own program)."""
    network = trainer.network
    parts: list = [type(network).__module__, type(network).__qualname__]
    for name, value in sorted(vars(network).items()):
        if name in ("unit_keys", "seeds") or isinstance(value, tf.Variable) or (
                isinstance(value, list) and value and all(isinstance(v, tf.Variable) for v in value)):
            continue
        if name == "prior" and type(network).__name__ == "BayesianLastLayerNetwork":
            continue  # a Normal built from weight_std, parametrization and dtype, which are in the key
        if isinstance(value, (list, tuple)) and all(isinstance(v, _KEY_TYPES) for v in value):
            value = tuple(value)
        elif not isinstance(value, _KEY_TYPES):
            return None
        parts.append((name, value))
    return (*parts, trainer.learning_rate, trainer.clip_gradient, trainer.divergence_scale, trainer.batch_size,
            trainer.ncp, trainer.learning_rate_schedule)


class EpochLayout(NamedTuple):
    """Where an epoch's n rows go in its num_batches x batch_size slots."""

    mask: tf.Tensor               # (num_batches, batch_size) bool: slots a row fills
    batches_per_epoch: tf.Tensor  # the bnn's KL divisor (float64 scalar)
    slots: tf.Tensor | None       # (n,) int32 flat slots of the rows in order; None: the first n slots

    def place(self, order: tf.Tensor, padded: tf.Tensor) -> tf.Tensor:
        """The epoch's row order spread over the padded slots (index 0 in an empty, masked slot)."""
        if self.slots is None:
            return tf.concat([order, tf.zeros([padded - tf.shape(order)[0]], order.dtype)], axis=0)
        return tf.scatter_nd(self.slots[:, None], order, [padded])


def epoch_layout(n: tf.Tensor, batch_size: int, batching: str = "padded") -> EpochLayout:
    """`padded` (the reference code's): full batches, the remainder in the last one, and the KL
    divisor n / batch_size, so a full batch's step is the per-point ELBO but a small last batch's
    weighs its few rows and the KL term like a full batch. `balanced`: the same number of batches
    with sizes differing by at most one and the KL divisor that number, so every step is the
    per-point ELBO up to that one row."""
    n = tf.convert_to_tensor(n, tf.int32)
    num_batches = (n + batch_size - 1) // batch_size
    if batching == "padded":
        mask = tf.reshape(tf.range(num_batches * batch_size) < n, [num_batches, batch_size])
        return EpochLayout(mask, tf.cast(n, tf.float64) / batch_size, None)
    num_batches = tf.maximum(num_batches, 1)  # an empty set (never trained) divides by nothing
    counts = n // num_batches + tf.cast(tf.range(num_batches) < n % num_batches, tf.int32)
    mask = tf.range(batch_size)[None, :] < counts[:, None]
    slots = tf.cast(tf.where(tf.reshape(mask, [-1]))[:, 0], tf.int32)
    return EpochLayout(mask, tf.cast(num_batches, tf.float64), slots)


def _shared_group_steps(trainer: StackedTrainer) -> Callable:
    """The trainer's compiled group steps: an earlier trainer's with the same _program_key (the same
    program, so the same numbers), else its own, remembered for the next ones."""
    key = _program_key(trainer)
    if key is not None and key in _GROUP_STEPS_CACHE:
        return _GROUP_STEPS_CACHE[key]
    steps = tf.function(trainer._group_steps_eager, jit_compile=True)
    if key is not None:
        if len(_GROUP_STEPS_CACHE) >= _GROUP_STEPS_CACHE_SIZE:
            del _GROUP_STEPS_CACHE[next(iter(_GROUP_STEPS_CACHE))]
        _GROUP_STEPS_CACHE[key] = steps
    return steps


def epoch_draw_bytes(units: int, n_train: int, n_features: int, batch_size: int, noise_per_batch: int,
                     input_noise: bool, value_bytes: int) -> float:
    """Bytes one epoch of `units` stacked units holds in a training call: the gathered minibatches,
    the data order, `noise_per_batch` step-noise values per batch and NCP's input noise, twice (drawn,
    then reshaped and gathered). The trainer and the memory estimate both count with it."""
    batches = -(-n_train // batch_size)
    per_batch = batch_size * (n_features + 2 + (n_features if input_noise else 0)) + noise_per_batch
    return 2.0 * units * batches * per_batch * value_bytes


def epochs_per_call(epoch_bytes: float) -> int:
    """Epochs one compiled call trains: MAX_EPOCHS_PER_CALL, fewer when their draws would pass
    EPOCH_DRAWS_BYTES_PER_CALL, at least one."""
    return int(min(MAX_EPOCHS_PER_CALL, max(1, EPOCH_DRAWS_BYTES_PER_CALL // max(1, epoch_bytes))))


def _squared_norm_per_run(gradient: tf.Tensor) -> tf.Tensor:
    """Sum of squares of each run's slice of a (K, ...) gradient: (K,).

    The rows of the last axis are summed by a product with a vector of ones: XLA's CPU backend
    fuses the squaring into that dot, while it lowers a plain reduce_sum over a 100 x 100 kernel
    to a reduce-window tree several times slower (at K = 20 about a quarter of a step).
    """
    if gradient.shape.rank == 1:
        return tf.square(gradient)
    width = gradient.shape[-1]
    row_sums = tf.matmul(tf.reshape(tf.square(gradient), [-1, width]), tf.ones([width, 1], gradient.dtype))
    return tf.reduce_sum(tf.reshape(row_sums, [tf.shape(gradient)[0], -1]), axis=1)


def stack_training_sets(datas: Sequence, train_indices: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(K, n, d) and (K, n) training arrays: run k's points train_indices[k] of its own pool."""
    sizes = {len(i) for i in train_indices}
    if len(sizes) != 1:
        raise ValueError(f"stacked runs must have equal training-set sizes, got {sorted(sizes)}")
    return (np.stack([data.pool_x[i] for data, i in zip(datas, train_indices, strict=True)]),
            np.stack([data.pool_y[i] for data, i in zip(datas, train_indices, strict=True)]))
