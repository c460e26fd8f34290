"""Models behind one interface (see models.dense.StackedDenseNetwork): `bnn` (Bayesian last layer,
Hafner et al.'s bbb, optionally with a noise contrastive prior), `dropout` (MC dropout) and
`ensemble` (deep ensemble). The loop only calls build_model and the interface."""

from __future__ import annotations

from collections.abc import Sequence

from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.dense import StackedDenseNetwork
from al_bnn.models.dropout import DropoutNetwork
from al_bnn.models.ensemble import EnsembleNetwork
from al_bnn.models.trainer import NoiseContrastivePrior, StackedTrainer

MODEL_NAMES = ("bnn", "dropout", "ensemble")


def build_model(name_model: str, input_dim: int, net_config, parms, seeds: Sequence[int]) -> StackedDenseNetwork:
    """The stacked model a config names, one run per seed."""
    options = dict(activation=net_config.activation, input_transform=net_config.input_transform,
                   parametrization=net_config.parametrization, nll_beta=net_config.nll_beta)
    if name_model == "bnn":
        return BayesianLastLayerNetwork(input_dim, net_config.layer_sizes, net_config.weight_std, seeds, **options)
    if name_model == "dropout":
        return DropoutNetwork(input_dim, net_config.layer_sizes, net_config.dropout_rate, seeds, **options)
    if name_model == "ensemble":
        return EnsembleNetwork(input_dim, net_config.layer_sizes, parms.ensemble_size, seeds, **options)
    raise ValueError(f"unknown model {name_model!r}; choose one of {', '.join(MODEL_NAMES)}")


def build_model_and_trainer(config, input_dim: int, seeds: Sequence[int]) -> tuple[StackedDenseNetwork, StackedTrainer]:
    """The stacked model and its trainer for an ExperimentConfig: what the loop and the estimators
    both train with, so that their runs cannot drift apart."""
    net = config.net_config
    network = build_model(config.parms.name_model, input_dim, net, config.parms, seeds)
    ncp = None if net.ood_std_prior is None else NoiseContrastivePrior(
        net.noise_std, net.ncp_scale, net.ood_std_prior, net.center_at_target)
    trainer = StackedTrainer(network, net.learning_rate, net.clip_gradient, net.divergence_scale,
                             config.train_schedule.batch_size, ncp,
                             learning_rate_schedule=config.train_schedule.learning_rate_schedule)
    return network, trainer


__all__ = ["MODEL_NAMES", "BayesianLastLayerNetwork", "DropoutNetwork", "EnsembleNetwork", "StackedDenseNetwork",
           "build_model", "build_model_and_trainer"]
