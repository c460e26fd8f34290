"""The "bbb" network of Hafner et al. (Noise Contrastive Priors, arXiv 1807.09289), stacked.

Dense leaky-ReLU layers, then a Bayesian linear output layer (factorised Gaussian posterior over
its weights, deterministic bias) and a softplus noise head. Every variable has a leading axis of
size K: K independent runs (seeds or samplers) live in one model and are computed with batched
matmuls; run k only ever touches slice k, so a run in a stack computes what it would alone.

Because only the output layer is Bayesian, a function sample is f_t(x) = h(x) . w_t + b with one
weight draw w_t ~ N(mu, sigma^2) shared by all points, and its covariance has the closed form
Cov(f(x), f(x')) = sum_j h_j(x) sigma_j^2 h_j(x') = features(x) . features(x') with
features(x) = h(x) * sigma.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from randomness import tf_seed

tfd = tfp.distributions

NOISE_FLOOR = 1e-6  # added to the softplus noise std, as in the reference model


def inverse_softplus(value: float) -> float:
    return float(np.log(np.expm1(value)))


class BayesianLastLayerNetwork:
    """K stacked copies of the bbb regression network (K = len(seeds))."""

    def __init__(self, input_dim: int, layer_sizes: Sequence[int], weight_std: float,
                 seeds: Sequence[int], dtype: tf.DType = tf.float32):
        if input_dim < 1 or not layer_sizes:
            raise ValueError(f"need input_dim >= 1 and at least one hidden layer, got {input_dim}, "
                             f"{list(layer_sizes)}")
        self.input_dim = int(input_dim)
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.weight_std = float(weight_std)
        self.seeds = [int(s) for s in seeds]
        self.dtype = dtype
        self.hidden_kernels: list[tf.Variable] = []
        self.hidden_biases: list[tf.Variable] = []
        widths = [self.input_dim, *self.layer_sizes]
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
            self.hidden_kernels.append(self._variable(
                lambda seed, shape: self._glorot(seed, shape), f"hidden_kernel_{layer}", (fan_in, fan_out)))
            self.hidden_biases.append(self._zeros(f"hidden_bias_{layer}", (fan_out,)))
        width = widths[-1]
        self.output_kernel_mean = self._variable(
            lambda seed, shape: tf.random.stateless_normal(shape, seed, stddev=weight_std, dtype=dtype),
            "output_kernel_mean", (width,))
        # The posterior std is softplus(parameter), initialised to weight_std.
        self.output_kernel_std_parameter = tf.Variable(
            tf.fill([self.num_runs, width], tf.constant(inverse_softplus(weight_std), dtype)),
            name="output_kernel_std_parameter")
        self.output_bias = self._zeros("output_bias", ())
        self.noise_kernel = self._variable(lambda seed, shape: self._glorot(seed, (width, 1))[:, 0],
                                           "noise_kernel", (width,))
        self.noise_bias = self._zeros("noise_bias", ())
        self.prior = tfd.Normal(tf.constant(0.0, dtype), tf.constant(weight_std, dtype))

    @property
    def num_runs(self) -> int:
        return len(self.seeds)

    @property
    def feature_width(self) -> int:
        return self.layer_sizes[-1]

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return [*self.hidden_kernels, *self.hidden_biases, self.output_kernel_mean,
                self.output_kernel_std_parameter, self.output_bias, self.noise_kernel, self.noise_bias]

    # -- construction -------------------------------------------------------------------------
    def _variable(self, initializer, name: str, shape: tuple) -> tf.Variable:
        # One named, seeded draw per run: run k's initial weights depend only on its own seed.
        per_run = [initializer(tf_seed(seed, f"init/{name}"), shape) for seed in self.seeds]
        return tf.Variable(tf.stack(per_run), name=name)

    def _zeros(self, name: str, shape: tuple) -> tf.Variable:
        return tf.Variable(tf.zeros([self.num_runs, *shape], self.dtype), name=name)

    def _glorot(self, seed, shape):
        limit = float(np.sqrt(6.0 / (shape[0] + shape[1])))
        return tf.random.stateless_uniform(shape, seed, -limit, limit, dtype=self.dtype)

    # -- forward ------------------------------------------------------------------------------
    def hidden(self, x: tf.Tensor) -> tf.Tensor:
        """Last hidden layer h(x): x is (n, d) shared by all runs or (K, n, d) -> (K, n, width)."""
        x = tf.convert_to_tensor(x, self.dtype)
        if x.shape.rank == 2:
            h = tf.einsum("nd,kdh->knh", x, self.hidden_kernels[0])
        else:
            h = tf.matmul(x, self.hidden_kernels[0])
        h = tf.nn.leaky_relu(h + self.hidden_biases[0][:, None, :])
        for kernel, bias in zip(self.hidden_kernels[1:], self.hidden_biases[1:], strict=False):
            h = tf.nn.leaky_relu(tf.matmul(h, kernel) + bias[:, None, :])
        return h

    def hidden_of_run(self, x, run: int) -> tf.Tensor:
        """h(x) of one run only: x (n, d) -> (n, width). Cheaper than hidden(x)[run] in a big stack."""
        h = tf.convert_to_tensor(x, self.dtype)
        for kernel, bias in zip(self.hidden_kernels, self.hidden_biases, strict=True):
            h = tf.nn.leaky_relu(tf.matmul(h, kernel[run]) + bias[run])
        return h

    def output_kernel_std(self) -> tf.Tensor:
        return tf.nn.softplus(self.output_kernel_std_parameter)

    def kl_divergence(self) -> tf.Tensor:
        """KL(posterior || prior) of the output weights, one value per run: (K,)."""
        posterior = tfd.Normal(self.output_kernel_mean, self.output_kernel_std())
        return tf.reduce_sum(tfd.kl_divergence(posterior, self.prior), axis=1)

    def mean_given_weights(self, h: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """Output mean for a kernel (K, width) shared by all points of each run: (K, n)."""
        return tf.einsum("knh,kh->kn", h, kernel) + self.output_bias[:, None]

    def aleatoric_std(self, h: tf.Tensor) -> tf.Tensor:
        return tf.nn.softplus(tf.einsum("knh,kh->kn", h, self.noise_kernel)
                              + self.noise_bias[:, None]) + NOISE_FLOOR

    def features(self, x, run: int | None = None) -> tf.Tensor:
        """Closed-form last-layer features h(x) * sigma: (K, n, width), or (n, width) of one run;
        their Gram matrix is the exact covariance of the function samples."""
        if run is not None:
            return self.hidden_of_run(x, run) * self.output_kernel_std()[run]
        return self.hidden(x) * self.output_kernel_std()[:, None, :]

    def predict(self, x) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Predictive mean, epistemic std and aleatoric std, each (K, n), in closed form."""
        h = self.hidden(x)
        mean = self.mean_given_weights(h, self.output_kernel_mean)
        features = h * self.output_kernel_std()[:, None, :]
        epistemic = tf.sqrt(tf.reduce_sum(tf.square(features), axis=-1))
        return mean, epistemic, self.aleatoric_std(h)

    # -- function samples -----------------------------------------------------------------------
    def function_samples(self, x, num_samples: int, counters: Sequence[int], mode: str = "joint",
                         run: int = 0) -> np.ndarray:
        """(T, n) function values of run `run` at x; each row uses one weight draw for all n points.

        The draw is keyed by (run seed, "function_samples/<mode>", *counters). mode="marginal"
        instead draws an independent weight for every (row, point): each point's marginal is right
        but the covariance between points is pure noise (the thesis code's behaviour, kept only
        to reproduce it).
        """
        if mode not in ("joint", "marginal"):
            raise ValueError(f"mode must be 'joint' or 'marginal', got {mode!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        h = self.hidden_of_run(x, run)
        mean = tf.linalg.matvec(h, self.output_kernel_mean[run]) + self.output_bias[run]  # (n,)
        features = h * self.output_kernel_std()[run]
        noise_seed = tf_seed(self.seeds[run], f"function_samples/{mode}", *counters)
        if mode == "joint":
            eps = tf.random.stateless_normal([num_samples, self.feature_width], noise_seed, dtype=self.dtype)
            return (mean[None, :] + tf.matmul(eps, features, transpose_b=True)).numpy()
        rows = []  # chunks of rows keep the (rows, n, width) noise tensor small
        for start in range(0, num_samples, 8):
            count = min(8, num_samples - start)
            eps = tf.random.stateless_normal([count, int(features.shape[0]), self.feature_width],
                                             tf.random.experimental.stateless_fold_in(noise_seed, start),
                                             dtype=self.dtype)
            rows.append(mean[None, :] + tf.reduce_sum(eps * features[None], axis=-1))
        return tf.concat(rows, axis=0).numpy()

    # -- state ----------------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.trainable_variables]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        for variable, value in zip(self.trainable_variables, weights, strict=True):
            variable.assign(value)
