"""Deep ensemble (Lakshminarayanan et al. 2017): independently initialised networks, each with
the heteroscedastic Gaussian likelihood; each member's mean function is one function sample.

In the stack, run k owns units k*M .. k*M + M - 1 (M = ensemble_size); every member has its own
initial weights and data order, keyed by (run seed, member).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from al_bnn.models.dense import DeterministicMeanNetwork
from al_bnn.models.tensorflow_setup import tf


class EnsembleNetwork(DeterministicMeanNetwork):
    """K runs x M members of the dense network with mean and noise heads."""

    def __init__(self, input_dim: int, layer_sizes: Sequence[int], ensemble_size: int, seeds: Sequence[int],
                 dtype: tf.DType = tf.float32, **options):
        if ensemble_size < 2:
            raise ValueError(f"ensemble_size must be >= 2 (GPA needs at least two function samples), "
                             f"got {ensemble_size}")
        self.ensemble_size = int(ensemble_size)
        self.seeds = [int(s) for s in seeds]
        super().__init__(input_dim, layer_sizes,
                         [(seed, f"/member{m}") for seed in self.seeds for m in range(self.ensemble_size)], dtype,
                         **options)

    @property
    def num_runs(self) -> int:
        return len(self.seeds)

    def units_from_runs(self, x: tf.Tensor) -> tf.Tensor:
        return tf.repeat(x, self.ensemble_size, axis=0)  # every member of run k trains on run k's data

    def step_noise_shape(self, batch_size: int) -> tuple[int, ...]:
        return (1,)  # members are deterministic; the draw is unused

    def loss_per_unit(self, x, y, mask, step_noise, batches_per_epoch, input_noise=None, divergence_scale=1.0,
                      ncp=None):
        """Mean over the batch of -log N(y | mean, noise), per member."""
        return self._batch_negative_log_likelihood(self.hidden(x), y, mask)

    def predict(self, x) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per run (K, n): mean of the member means, their std (epistemic), and the root mean of the
        member noise variances (aleatoric)."""
        x = tf.convert_to_tensor(x, self.dtype)
        h = self.hidden(self.units_from_runs(x) if x.shape.rank == 3 else x)
        means = tf.reshape(self._mean(h), [self.num_runs, self.ensemble_size, -1])
        variances = tf.reshape(tf.square(self.aleatoric_std(h)), [self.num_runs, self.ensemble_size, -1])
        return (tf.reduce_mean(means, axis=1), tf.math.reduce_std(means, axis=1),
                tf.sqrt(tf.reduce_mean(variances, axis=1)))

    def function_samples(self, x, num_samples: int, counters: Sequence[int], mode: str = "joint",
                         run: int = 0) -> np.ndarray:
        """(M, n): the mean function of each member of run `run` (num_samples is ignored: an ensemble
        has exactly ensemble_size samples)."""
        if mode != "joint":
            raise ValueError("an ensemble's samples are its members' functions; only mode 'joint' applies")
        members = range(run * self.ensemble_size, (run + 1) * self.ensemble_size)
        return tf.stack([self._unit_mean(x, unit) for unit in members]).numpy()
