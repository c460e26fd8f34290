"""Models behind one interface (see models.dense.StackedDenseNetwork): `bnn` (Bayesian last layer,
Hafner et al.'s bbb, optionally with a noise contrastive prior), `dropout` (MC dropout) and
`ensemble` (deep ensemble). The loop only calls build_model and the interface."""

from __future__ import annotations

from collections.abc import Sequence

from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.dense import StackedDenseNetwork
from al_bnn.models.dropout import DropoutNetwork
from al_bnn.models.ensemble import EnsembleNetwork

MODEL_NAMES = ("bnn", "dropout", "ensemble")


def build_model(name_model: str, input_dim: int, net_config, parms, seeds: Sequence[int]) -> StackedDenseNetwork:
    """The stacked model a config names, one run per seed."""
    if name_model == "bnn":
        return BayesianLastLayerNetwork(input_dim, net_config.layer_sizes, net_config.weight_std, seeds)
    if name_model == "dropout":
        return DropoutNetwork(input_dim, net_config.layer_sizes, net_config.dropout_rate, seeds)
    if name_model == "ensemble":
        return EnsembleNetwork(input_dim, net_config.layer_sizes, parms.ensemble_size, seeds)
    raise ValueError(f"unknown model {name_model!r}; choose one of {', '.join(MODEL_NAMES)}")


__all__ = ["MODEL_NAMES", "BayesianLastLayerNetwork", "DropoutNetwork", "EnsembleNetwork", "StackedDenseNetwork",
           "build_model"]
