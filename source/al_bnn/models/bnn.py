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
import tensorflow_probability as tfp

from al_bnn.models.dense import StackedDenseNetwork, scaled
from al_bnn.models.tensorflow_setup import tf
from al_bnn.randomness import tf_seed

tfd = tfp.distributions
SAMPLE_CHUNK_ROWS = 131072  # function samples of larger inputs are computed in chunks of rows


def inverse_softplus(value: float) -> float:
    return float(np.log(np.expm1(value)))


class BayesianLastLayerNetwork(StackedDenseNetwork):
    """K stacked copies of the bbb regression network (K = len(seeds))."""

    has_features = True

    def __init__(self, input_dim: int, layer_sizes: Sequence[int], weight_std: float,
                 seeds: Sequence[int], dtype: tf.DType = tf.float32, **options):
        super().__init__(input_dim, layer_sizes, [(seed, "") for seed in seeds], dtype, **options)
        self.weight_std = float(weight_std)
        self.seeds = [int(s) for s in seeds]
        width = self.feature_width
        # The output weights' variables are in the parametrisation's units: the function uses
        # head_scale * w (head_scale = 1 in the standard parametrisation). The prior, the initial
        # posterior std and the features are those of the effective weights head_scale * w, so the
        # KL term (invariant to rescaling posterior and prior together) is the same in both.
        raw_std = weight_std / self.head_scale
        initial_mean_std = 1.0 if self.parametrization == "ntk" else weight_std
        self.output_kernel_mean = self._variable(
            lambda seed, shape: tf.random.stateless_normal(shape, seed, stddev=initial_mean_std, dtype=dtype),
            "output_kernel_mean", (width,))
        # The posterior std is softplus(parameter), initialised to weight_std (effective).
        self.output_kernel_std_parameter = tf.Variable(
            tf.fill([self.num_runs, width], tf.constant(inverse_softplus(raw_std), dtype)),
            name="output_kernel_std_parameter")
        self.output_bias = self._zeros("output_bias", ())
        self.prior = tfd.Normal(tf.constant(0.0, dtype), tf.constant(raw_std, dtype))

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return [*self.hidden_kernels, *self.hidden_biases, self.output_kernel_mean,
                self.output_kernel_std_parameter, self.output_bias, self.noise_kernel, self.noise_bias]

    def step_noise_shape(self, batch_size: int) -> tuple[int, ...]:
        return (self.feature_width,)  # one draw of the output weights per step

    def output_kernel_std(self) -> tf.Tensor:
        """Posterior std of the effective output weights, (K, width)."""
        return scaled(tf.nn.softplus(self.output_kernel_std_parameter), self.head_scale)

    def output_kernel_posterior_mean(self) -> tf.Tensor:
        """Posterior mean of the effective output weights, (K, width)."""
        return scaled(self.output_kernel_mean, self.head_scale)

    def kl_divergence(self) -> tf.Tensor:
        """KL(posterior || prior) of the output weights, one value per run: (K,)."""
        posterior = tfd.Normal(self.output_kernel_mean, tf.nn.softplus(self.output_kernel_std_parameter))
        return tf.reduce_sum(tfd.kl_divergence(posterior, self.prior), axis=1)

    def mean_given_weights(self, h: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """Output mean for effective weights `kernel` (K, width) shared by all points of each run: (K, n)."""
        return tf.einsum("knh,kh->kn", h, kernel) + scaled(self.output_bias[:, None], self.bias_scale)

    def loss_per_unit(self, x, y, mask, weight_noise, batches_per_epoch, input_noise=None,
                      divergence_scale: float = 1.0, ncp=None):
        """(divergence_scale * KL / batches_per_epoch + sum over the batch of -log p) / batch size.

        batches_per_epoch = n_train / batch_size with batching="padded" (a float, as in the reference
        code), the number of batches with "balanced", so over an
        epoch the KL term adds up to one KL per run: the usual minibatch ELBO, per data point. One
        reparameterised draw of the output weights per step. With `ncp`, the noise contrastive
        prior's KL term at the perturbed inputs is added per point.
        """
        h = self.hidden(x)
        kernel = self.output_kernel_posterior_mean() + self.output_kernel_std() * weight_noise
        per_point = self.data_loss(y, self.mean_given_weights(h, kernel), self.aleatoric_std(h))
        if ncp is not None:
            per_point = per_point + ncp.ncp_scale * self._ncp_divergence(x + ncp.noise_std * input_noise, y, ncp)
        divergence = divergence_scale * self.kl_divergence() / batches_per_epoch
        return (divergence + tf.reduce_sum(mask * per_point, axis=1)) / tf.reduce_sum(mask, axis=1)

    def _ncp_divergence(self, perturbed_x, y, ncp):
        """KL(N(center, ood_std_prior) || N(mean, epistemic std)) at the perturbed inputs, per point."""
        h = self.hidden(perturbed_x)
        mean = self.mean_given_weights(h, self.output_kernel_posterior_mean())
        epistemic = tf.sqrt(tf.reduce_sum(tf.square(h * self.output_kernel_std()[:, None, :]), axis=-1) + 1e-12)
        center = y if ncp.center_at_target else tf.zeros_like(y)
        prior_std = tf.constant(ncp.ood_std_prior, self.dtype)
        return (tf.math.log(epistemic / prior_std)
                + (tf.square(prior_std) + tf.square(center - mean)) / (2 * tf.square(epistemic)) - 0.5)

    def features(self, x, run: int | None = None) -> tf.Tensor:
        """Closed-form last-layer features h(x) * sigma: (K, n, width), or (n, width) of one run;
        their Gram matrix is the exact covariance of the function samples."""
        if run is not None:
            return self.hidden_of_unit(x, run) * self.output_kernel_std()[run]
        return self.hidden(x) * self.output_kernel_std()[:, None, :]

    def predict(self, x) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Predictive mean, epistemic std and aleatoric std, each (K, n), in closed form."""
        h = self.hidden(x)
        mean = self.mean_given_weights(h, self.output_kernel_posterior_mean())
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
        noise_seed = tf_seed(self.seeds[run], f"function_samples/{mode}", *counters)
        if mode == "joint":
            eps = tf.random.stateless_normal([num_samples, self.feature_width], noise_seed, dtype=self.dtype)
            if len(x) <= SAMPLE_CHUNK_ROWS:
                return self._joint_samples(x, eps, run).numpy()
            # Large pools: the same draw applied to chunks of rows, written into one array, so the
            # only O(n) memory is the (T, n) result (a row's values may differ from one big call at
            # float32 rounding: the matmuls have other shapes).
            samples = np.empty((num_samples, len(x)), dtype=self.dtype.as_numpy_dtype)
            for start in range(0, len(x), SAMPLE_CHUNK_ROWS):
                samples[:, start:start + SAMPLE_CHUNK_ROWS] = self._joint_samples(
                    x[start:start + SAMPLE_CHUNK_ROWS], eps, run).numpy()
            return samples
        h = self.hidden_of_unit(x, run)
        mean = self._unit_mean(h, run)  # (n,)
        features = h * self.output_kernel_std()[run]
        rows = []  # chunks of rows keep the (rows, n, width) noise tensor small
        for start in range(0, num_samples, 8):
            count = min(8, num_samples - start)
            eps = tf.random.stateless_normal([count, int(features.shape[0]), self.feature_width],
                                             tf.random.experimental.stateless_fold_in(noise_seed, start),
                                             dtype=self.dtype)
            rows.append(mean[None, :] + tf.reduce_sum(eps * features[None], axis=-1))
        return tf.concat(rows, axis=0).numpy()

    def _joint_samples(self, x, eps: tf.Tensor, run: int) -> tf.Tensor:
        """(T, n) = mean(x) + eps . features(x)^T for one run."""
        h = self.hidden_of_unit(x, run)
        mean = self._unit_mean(h, run)  # (n,)
        return mean[None, :] + tf.matmul(eps, h * self.output_kernel_std()[run], transpose_b=True)

    def _unit_mean(self, h: tf.Tensor, run: int) -> tf.Tensor:
        """(n,) posterior-mean output of one run from its last hidden layer h (n, width)."""
        return (tf.linalg.matvec(h, self.output_kernel_posterior_mean()[run])
                + scaled(self.output_bias[run], self.bias_scale))
