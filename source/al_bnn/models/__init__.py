"""Models behind one interface (al_bnn.models.protocol.Model): `bnn` (Bayesian last layer, Hafner
et al.'s bbb, optionally with a noise contrastive prior), `dropout` (MC dropout) and `ensemble`
(deep ensemble), and any model a user registers (al_bnn.registry.register_model). The loop only
calls build_model and the interface."""

from __future__ import annotations

from collections.abc import Sequence

from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.dense import StackedDenseNetwork
from al_bnn.models.dropout import DropoutNetwork
from al_bnn.models.ensemble import EnsembleNetwork
from al_bnn.models.protocol import GradientFeaturesModel, Model, TrainableModel, missing_members
from al_bnn.models.trainer import NoiseContrastivePrior, StackedTrainer
from al_bnn.registry import model_entry, model_names, register_model

MODEL_NAMES = ("bnn", "dropout", "ensemble")  # the shipped models; model_names() adds registered ones


def _network_options(net_config) -> dict:
    """The network keys every shipped model reads."""
    return dict(activation=net_config.activation, input_transform=net_config.input_transform,
                parametrization=net_config.parametrization, nll_beta=net_config.nll_beta)


def build_bnn(input_dim: int, net_config, parms, seeds: Sequence[int]) -> BayesianLastLayerNetwork:
    return BayesianLastLayerNetwork(input_dim, net_config.layer_sizes, net_config.weight_std, seeds,
                                    **_network_options(net_config))


def build_dropout(input_dim: int, net_config, parms, seeds: Sequence[int]) -> DropoutNetwork:
    return DropoutNetwork(input_dim, net_config.layer_sizes, net_config.dropout_rate, seeds,
                          **_network_options(net_config))


def build_ensemble(input_dim: int, net_config, parms, seeds: Sequence[int]) -> EnsembleNetwork:
    return EnsembleNetwork(input_dim, net_config.layer_sizes, parms.ensemble_size, seeds,
                           **_network_options(net_config))


def build_model(name_model: str, input_dim: int, net_config, parms, seeds: Sequence[int]) -> TrainableModel:
    """The stacked model a config names (a registered model), one run per seed."""
    network = model_entry(name_model).build(input_dim, net_config, parms, seeds)
    if not isinstance(network, TrainableModel):
        missing = missing_members(network, TrainableModel)
        raise TypeError(f"model {name_model!r}: its builder returned a {type(network).__name__}, which lacks what the "
                        f"loop and the trainer use{': ' + ', '.join(sorted(missing)) if missing else ''} (see "
                        "al_bnn.models.protocol; subclassing a shipped network gives all of it)")
    return network


def build_model_and_trainer(config, input_dim: int, seeds: Sequence[int]) -> tuple[TrainableModel, StackedTrainer]:
    """The stacked model and its trainer for an ExperimentConfig: what the loop and the estimators
    both train with, so that their runs cannot drift apart."""
    net = config.net_config
    network = build_model(config.parms.name_model, input_dim, net, config.parms, seeds)
    ncp = None if net.ood_std_prior is None else NoiseContrastivePrior(
        net.noise_std, net.ncp_scale, net.ood_std_prior, net.center_at_target)
    trainer = StackedTrainer(network, net.learning_rate, net.clip_gradient, net.divergence_scale,
                             config.train_schedule.batch_size, ncp,
                             learning_rate_schedule=config.train_schedule.learning_rate_schedule,
                             batching=config.train_schedule.batching)
    return network, trainer


__all__ = ["MODEL_NAMES", "BayesianLastLayerNetwork", "DropoutNetwork", "EnsembleNetwork", "GradientFeaturesModel",
           "Model", "StackedDenseNetwork", "TrainableModel", "build_model", "build_model_and_trainer", "model_names",
           "register_model"]
