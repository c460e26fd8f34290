"""A plug-in module that adds a model and a kernel to al_bnn without editing the package: one file,
two registrations. Used by tests/test_plugin_interfaces.py; a user would pass it to a script as

    PYTHONPATH=tests/plugins .venv/bin/python source/compare_gpa_rand.py --plugins toy_model_kernel my.yaml

with `parms: {name_model: rf_bnn, sample_policy: lcmd, family_kernel: rff}` in my.yaml.

- model "rf_bnn": Bayesian linear regression on random features. The bnn's Bayesian output layer
  (and noise head) on hidden layers that keep their seeded initial weights: only the last layer
  learns, so its closed-form features h(x) * sigma are those of a fixed random-feature map.
- kernel "rff": random Fourier features of the inputs, sqrt(2 / D) cos(x W + b) with W standard
  normal / length scale and b uniform in [0, 2 pi): an RBF kernel on the (standardised) inputs,
  whatever the model. Keyed by the run's seed, so a run's features are reproducible.
"""

from __future__ import annotations

import copy

import numpy as np
import tensorflow as tf

from al_bnn.models import BayesianLastLayerNetwork
from al_bnn.randomness import numpy_generator
from al_bnn.registry import register_kernel, register_model

RFF_WIDTH = 64
RFF_LENGTH_SCALE = 2.0


class RandomFeatureBayesianLinear(BayesianLastLayerNetwork):
    """The bnn with frozen hidden layers: a Bayesian linear model on random features.

    The hidden weights stay trainable variables (the trainer slices every variable by unit), but
    the loss sees them through 0 * w + stop_gradient(w): their gradient is exactly zero, so Adam,
    whose moments start at zero, never moves them."""

    def loss_per_unit(self, x, y, mask, weight_noise, batches_per_epoch, input_noise=None, divergence_scale=1.0,
                      ncp=None):
        frozen = copy.copy(self)
        frozen.hidden_kernels = [0.0 * w + tf.stop_gradient(w) for w in self.hidden_kernels]
        frozen.hidden_biases = [0.0 * b + tf.stop_gradient(b) for b in self.hidden_biases]
        return BayesianLastLayerNetwork.loss_per_unit(frozen, x, y, mask, weight_noise, batches_per_epoch,
                                                      input_noise, divergence_scale, ncp)


def build_random_feature_model(input_dim: int, net_config, parms, seeds) -> RandomFeatureBayesianLinear:
    """register_model's builder: (input_dim, net_config, parms, seeds) -> the stacked network."""
    return RandomFeatureBayesianLinear(input_dim, net_config.layer_sizes, net_config.weight_std, seeds,
                                       activation=net_config.activation, input_transform=net_config.input_transform)


def random_fourier_features(network, x, run: int, parms, seed: int, phase: int) -> np.ndarray:
    """register_kernel's function: (n, RFF_WIDTH) features of the n rows of x; the network is not used."""
    x = np.asarray(x, dtype=np.float64)
    rng = numpy_generator(seed, "toy_model_kernel/rff", x.shape[1])
    weights = rng.standard_normal((x.shape[1], RFF_WIDTH)) / RFF_LENGTH_SCALE
    offsets = rng.uniform(0.0, 2.0 * np.pi, RFF_WIDTH)
    return np.sqrt(2.0 / RFF_WIDTH) * np.cos(x @ weights + offsets)


register_model("rf_bnn", build_random_feature_model, has_features=True, options=("ood_std_prior", "function_samples"),
               description="Bayesian linear regression on random features (a test plug-in)")
register_kernel("rff", random_fourier_features, description="random Fourier features of the inputs (a test plug-in)")
