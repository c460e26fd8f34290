"""MC-dropout network (Gal & Ghahramani 2016), the model Tsymbalov et al. built GPA on.

The same dense leaky-ReLU layers with dropout on every hidden layer, a deterministic linear
mean output and the softplus noise head (Gaussian likelihood). A function sample is a forward
pass with dropout active and one mask per layer shared by all points, so samples are correlated
across points the way the network's functions are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from al_bnn.models.dense import DeterministicMeanNetwork
from al_bnn.models.tensorflow_setup import tf
from al_bnn.randomness import tf_seed

EVALUATION_PASSES = 20  # MC passes behind the predictive mean and epistemic std


class DropoutNetwork(DeterministicMeanNetwork):
    """K stacked MC-dropout networks (K = len(seeds))."""

    def __init__(self, input_dim: int, layer_sizes: Sequence[int], dropout_rate: float, seeds: Sequence[int],
                 dtype: tf.DType = tf.float32, **options):
        if not 0 < dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in (0, 1) for the dropout model, got {dropout_rate}")
        super().__init__(input_dim, layer_sizes, [(seed, "") for seed in seeds], dtype, **options)
        self.seeds = [int(s) for s in seeds]
        self.dropout_rate = float(dropout_rate)
        # A unit drops a neuron when its standard-normal draw is below this quantile.
        self._drop_threshold = float(norm.ppf(dropout_rate))

    def step_noise_shape(self, batch_size: int) -> tuple[int, ...]:
        return (batch_size, sum(self.layer_sizes))  # an independent mask per example, as in training dropout

    def _masks(self, normal_draws: tf.Tensor) -> list[tf.Tensor]:
        """Split (..., sum of widths) standard-normal draws into inverted-dropout masks per layer."""
        keep = tf.cast(normal_draws > self._drop_threshold, self.dtype) / (1.0 - self.dropout_rate)
        return tf.split(keep, self.layer_sizes, axis=-1)

    def loss_per_unit(self, x, y, mask, step_noise, batches_per_epoch, input_noise=None, divergence_scale=1.0,
                      ncp=None):
        """Mean over the batch of -log N(y | mean, noise) with fresh dropout masks per example."""
        return self._batch_negative_log_likelihood(self.hidden(x, self._masks(step_noise)), y, mask)

    def predict(self, x) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Mean, epistemic and aleatoric std (K, n) from EVALUATION_PASSES fixed dropout passes."""
        seeds = self.unit_seed_words("evaluation")
        draws = tf.stack([tf.random.stateless_normal([EVALUATION_PASSES, 1, sum(self.layer_sizes)], seed,
                                                     dtype=self.dtype) for seed in seeds])  # (K, P, 1, widths)
        means, variances = [], []
        for p in range(EVALUATION_PASSES):
            h = self.hidden(x, self._masks(draws[:, p]))
            means.append(self._mean(h))
            variances.append(tf.square(self.aleatoric_std(h)))
        means = tf.stack(means)
        return (tf.reduce_mean(means, axis=0), tf.math.reduce_std(means, axis=0),
                tf.sqrt(tf.reduce_mean(tf.stack(variances), axis=0)))

    def function_samples(self, x, num_samples: int, counters: Sequence[int], mode: str = "joint",
                         run: int = 0) -> np.ndarray:
        """(T, n): T forward passes of run `run` with dropout on, one mask per layer shared by all points."""
        if mode != "joint":
            raise ValueError("the dropout model draws joint samples only (one mask per pass for all points)")
        seed = tf_seed(self.seeds[run], "function_samples/dropout", *counters)
        draws = tf.random.stateless_normal([num_samples, sum(self.layer_sizes)], seed, dtype=self.dtype)
        return tf.stack([self._unit_mean(x, run, [m[None, :] for m in self._masks(draws[t])])
                         for t in range(num_samples)]).numpy()
