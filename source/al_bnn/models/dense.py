"""What every model here shares: stacked dense leaky-ReLU layers and a softplus noise head.

Variables have a leading axis of `num_units` stacked networks (runs, or runs x ensemble members);
unit u only ever touches slice u. Initial weights are keyed by (seed, variable name), so a unit
starts the same whatever else is in the stack.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from al_bnn.models.tensorflow_setup import tf
from al_bnn.randomness import tf_seed

NOISE_FLOOR = 1e-6  # added to the softplus noise std, as in the reference model
ACTIVATIONS = {"leaky_relu": tf.nn.leaky_relu, "relu": tf.nn.relu}
# "tanh": 5 tanh(x / 5) of the standardised inputs: identity near the data's bulk, soft-clipped
# beyond 5 standard deviations, so a few extreme inputs cannot dominate the first layer.
INPUT_TRANSFORMS = ("none", "tanh")
# "standard": y = x W + b with Glorot-initialised W. "ntk" (neural-tangent parametrisation, as in
# Holzmueller et al.'s MLP recipe): the variables are standard normal and the layer computes
# y = (gain / sqrt(fan_in)) x W + gain_b b, so Adam's step size acts per layer as lr * gain /
# sqrt(fan_in): large for the first layer, small for wide ones, with one learning rate.
PARAMETRIZATIONS = ("standard", "ntk")
NTK_WEIGHT_GAIN = 0.2
NTK_BIAS_GAIN = 0.2


def scaled(tensor, scale: float):
    """tensor * scale, skipped for 1 so the standard parametrisation computes exactly as before."""
    return tensor if scale == 1.0 else tensor * scale


class StackedDenseNetwork:
    """Hidden layers and noise head for `len(unit_keys)` units; subclasses add the mean output."""

    def __init__(self, input_dim: int, layer_sizes: Sequence[int], unit_keys: Sequence[tuple[int, str]],
                 dtype: tf.DType = tf.float32, activation: str = "leaky_relu", input_transform: str = "none",
                 parametrization: str = "standard", nll_beta: float = 0.0):
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, got {parametrization!r}")
        self.parametrization = parametrization
        if not 0.0 <= float(nll_beta) <= 1.0:
            raise ValueError(f"nll_beta must be in [0, 1], got {nll_beta!r}")
        self.nll_beta = float(nll_beta)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if input_transform not in INPUT_TRANSFORMS:
            raise ValueError(f"input_transform must be one of {', '.join(INPUT_TRANSFORMS)}, got {input_transform!r}")
        self.activation, self.input_transform = activation, input_transform
        if input_dim < 1 or not layer_sizes:
            raise ValueError(f"need input_dim >= 1 and at least one hidden layer, got {input_dim}, "
                             f"{list(layer_sizes)}")
        self.input_dim = int(input_dim)
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.unit_keys = [(int(seed), suffix) for seed, suffix in unit_keys]  # (run seed, member suffix)
        self.dtype = dtype
        self.hidden_kernels: list[tf.Variable] = []
        self.hidden_biases: list[tf.Variable] = []
        widths = [self.input_dim, *self.layer_sizes]
        ntk = parametrization == "ntk"
        self.kernel_scales = [self.kernel_scale(fan_in) for fan_in in widths[:-1]]
        self.bias_scale = NTK_BIAS_GAIN if ntk else 1.0
        self.head_scale = self.kernel_scale(widths[-1])  # the output and noise heads' kernels
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            self.hidden_kernels.append(self._variable(self._kernel_init, f"hidden_kernel_{layer}", (fan_in, fan_out)))
            self.hidden_biases.append(self._variable(self._standard_normal, f"hidden_bias_{layer}", (fan_out,))
                                      if ntk else self._zeros(f"hidden_bias_{layer}", (fan_out,)))
        width = widths[-1]
        self.noise_kernel = self._variable(lambda seed, shape: self._kernel_init(seed, (width, 1))[:, 0],
                                           "noise_kernel", (width,))
        self.noise_bias = self._zeros("noise_bias", ())

    @property
    def num_units(self) -> int:
        return len(self.unit_keys)

    @property
    def num_runs(self) -> int:
        """Runs in the stack (an ensemble has several units per run)."""
        return self.num_units

    @property
    def feature_width(self) -> int:
        return self.layer_sizes[-1]

    def unit_seed_words(self, purpose: str, *counters: int) -> np.ndarray:
        """(num_units, 2) stateless seeds, one per unit, for a named purpose."""
        return np.stack([tf_seed(seed, purpose + suffix, *counters) for seed, suffix in self.unit_keys])

    # -- construction -------------------------------------------------------------------------
    def _variable(self, initializer, name: str, shape: tuple) -> tf.Variable:
        per_unit = [initializer(tf_seed(seed, f"init/{name}{suffix}"), shape) for seed, suffix in self.unit_keys]
        return tf.Variable(tf.stack(per_unit), name=name)

    def _zeros(self, name: str, shape: tuple) -> tf.Variable:
        return tf.Variable(tf.zeros([self.num_units, *shape], self.dtype), name=name)

    def kernel_scale(self, fan_in: int) -> float:
        """What a kernel variable is multiplied by in the forward pass (1 in the standard parametrisation)."""
        return NTK_WEIGHT_GAIN / float(np.sqrt(fan_in)) if self.parametrization == "ntk" else 1.0

    def _kernel_init(self, seed, shape):
        """A kernel variable's initial value: standard normal (ntk) or Glorot uniform (standard)."""
        return self._standard_normal(seed, shape) if self.parametrization == "ntk" else self._glorot(seed, shape)

    def _standard_normal(self, seed, shape):
        return tf.random.stateless_normal(shape, seed, dtype=self.dtype)

    def _glorot(self, seed, shape):
        limit = float(np.sqrt(6.0 / (shape[0] + shape[1])))
        return tf.random.stateless_uniform(shape, seed, -limit, limit, dtype=self.dtype)

    # -- forward ------------------------------------------------------------------------------
    def hidden(self, x: tf.Tensor, masks: Sequence[tf.Tensor] | None = None) -> tf.Tensor:
        """Last hidden layer: x (n, d) shared by all units or (U, n, d) -> (U, n, width). masks, if
        given, multiply each hidden layer's output (dropout)."""
        h = self.transform_inputs(x)
        activation = ACTIVATIONS[self.activation]
        for layer, (kernel, bias) in enumerate(zip(self.hidden_kernels, self.hidden_biases, strict=True)):
            h = tf.einsum("nd,kdh->knh", h, kernel) if h.shape.rank == 2 else tf.matmul(h, kernel)
            h = activation(scaled(h, self.kernel_scales[layer]) + scaled(bias[:, None, :], self.bias_scale))
            if masks is not None:
                h = h * masks[layer]
        return h

    def transform_inputs(self, x) -> tf.Tensor:
        x = tf.convert_to_tensor(x, self.dtype)
        return 5.0 * tf.tanh(x / 5.0) if self.input_transform == "tanh" else x

    def hidden_of_unit(self, x, unit: int, masks: Sequence[tf.Tensor] | None = None) -> tf.Tensor:
        """h(x) of one unit only: x (n, d) -> (n, width); masks broadcast against (n, width_l)."""
        h = self.transform_inputs(x)
        activation = ACTIVATIONS[self.activation]
        for layer in range(len(self.hidden_kernels)):
            h = activation(self.pre_activation_of_unit(h, layer, unit))
            if masks is not None:
                h = h * masks[layer]
        return h

    def pre_activation_of_unit(self, h, layer: int, unit: int) -> tf.Tensor:
        """z = s (h W) + s_b b of one hidden layer of one unit: h (n, fan_in) -> (n, fan_out)."""
        return (scaled(tf.matmul(h, self.hidden_kernels[layer][unit]), self.kernel_scales[layer])
                + scaled(self.hidden_biases[layer][unit], self.bias_scale))

    def aleatoric_std(self, h: tf.Tensor) -> tf.Tensor:
        return tf.nn.softplus(scaled(tf.einsum("knh,kh->kn", h, self.noise_kernel), self.head_scale)
                              + scaled(self.noise_bias[:, None], self.bias_scale)) + NOISE_FLOOR

    @staticmethod
    def gaussian_negative_log_likelihood(y, mean, std):
        return 0.5 * tf.square((y - mean) / std) + tf.math.log(std) + 0.5 * np.log(2 * np.pi)

    def data_loss(self, y, mean, std):
        """The per-point training loss: -log N(y | mean, std), weighted by stop_gradient(std^2)^nll_beta
        (beta-NLL, Seitzer et al. 2022). With beta = 1 the mean's gradient is the squared error's,
        so points the noise head calls noisy no longer get a smaller step, and a shrinking noise
        estimate cannot inflate the mean's effective learning rate; beta = 0 is the plain likelihood."""
        nll = self.gaussian_negative_log_likelihood(y, mean, std)
        if self.nll_beta == 0.0:
            return nll
        return nll * tf.stop_gradient(tf.square(std)) ** self.nll_beta

    # -- interface the trainer and the loop use -------------------------------------------------
    @property
    def trainable_variables(self) -> list[tf.Variable]:
        raise NotImplementedError

    def with_parameters(self, parameters: Sequence[tf.Tensor]) -> StackedDenseNetwork:
        """A shallow copy computing with `parameters` (tensors in trainable_variables order, with any
        number of leading units) in place of the variables: the trainer's compiled steps are pure
        functions of their inputs, so that groups of units can be trained concurrently.

        Only the loss and forward computations are meant for the copy: it may hold a group of the
        stack's units, so its unit bookkeeping (unit_keys, seeds, hence num_units and num_runs) is
        removed and any use of it fails loudly instead of describing the whole stack."""
        variables = self.trainable_variables
        if len(parameters) != len(variables):
            raise ValueError(f"expected {len(variables)} parameter tensors, got {len(parameters)}")
        replacement = {id(v): p for v, p in zip(variables, parameters, strict=True)}
        view, replaced = copy.copy(self), set[int]()
        for name, value in vars(self).items():
            if isinstance(value, list) and value and all(id(v) in replacement for v in value):
                setattr(view, name, [replacement[id(v)] for v in value])
                replaced.update(id(v) for v in value)
            elif id(value) in replacement:
                setattr(view, name, replacement[id(value)])
                replaced.add(id(value))
        if len(replaced) != len(replacement):  # a variable held somewhere else would silently stay in use
            raise TypeError(f"{type(self).__name__}: only {len(replaced)} of {len(replacement)} trainable variables "
                            "are plain attributes or lists of them; with_parameters cannot replace the rest")
        view.unit_keys = None  # type: ignore[assignment]  # deliberately unusable on a view (see above)
        if hasattr(view, "seeds"):
            view.seeds = None
        return view

    def units_from_runs(self, x: tf.Tensor) -> tf.Tensor:
        """Per-run arrays (K, ...) -> per-unit arrays (U, ...); identity when units are runs."""
        return x

    def step_noise_shape(self, batch_size: int) -> tuple[int, ...]:
        """Shape of the standard-normal noise one optimiser step of one unit needs."""
        raise NotImplementedError

    # What the loop and the estimators ask of every model; each model (bnn, dropout, ensemble) defines both.
    def predict(self, x) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Predictive mean, epistemic std and aleatoric std, each (K, n)."""
        raise NotImplementedError

    def function_samples(self, x, num_samples: int, counters: Sequence[int], mode: str = "joint",
                         run: int = 0) -> np.ndarray:
        """(T, n) function values of run `run` at x, one weight draw per row, keyed by (run seed, mode, *counters)."""
        raise NotImplementedError

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.trainable_variables]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        for variable, value in zip(self.trainable_variables, weights, strict=True):
            variable.assign(value)

    has_features = False

    def features(self, x, run: int | None = None) -> tf.Tensor:
        raise ValueError(f"{type(self).__name__} has no closed-form kernel features; use gpa_kernel: mc")


class DeterministicMeanNetwork(StackedDenseNetwork):
    """The dense base with a deterministic linear mean output (MC dropout, deep ensembles)."""

    def __init__(self, input_dim: int, layer_sizes: Sequence[int], unit_keys: Sequence[tuple[int, str]],
                 dtype: tf.DType = tf.float32, **options):
        super().__init__(input_dim, layer_sizes, unit_keys, dtype, **options)
        self.output_kernel = self._variable(lambda seed, shape: self._kernel_init(seed, (shape[0], 1))[:, 0],
                                            "output_kernel", (self.feature_width,))
        self.output_bias = self._zeros("output_bias", ())

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return [*self.hidden_kernels, *self.hidden_biases, self.output_kernel, self.output_bias, self.noise_kernel,
                self.noise_bias]

    def _mean(self, h: tf.Tensor) -> tf.Tensor:
        return (scaled(tf.einsum("knh,kh->kn", h, self.output_kernel), self.head_scale)
                + scaled(self.output_bias[:, None], self.bias_scale))

    def _batch_negative_log_likelihood(self, h: tf.Tensor, y, mask) -> tf.Tensor:
        """Mean over the (masked) batch of -log N(y | mean, noise), per unit."""
        per_point = self.data_loss(y, self._mean(h), self.aleatoric_std(h))
        return tf.reduce_sum(mask * per_point, axis=1) / tf.reduce_sum(mask, axis=1)

    def _unit_mean(self, x, unit: int, masks: Sequence[tf.Tensor] | None = None) -> tf.Tensor:
        """(n,) mean function of one unit, optionally with dropout masks."""
        return (scaled(tf.linalg.matvec(self.hidden_of_unit(x, unit, masks), self.output_kernel[unit]), self.head_scale)
                + scaled(self.output_bias[unit], self.bias_scale))
