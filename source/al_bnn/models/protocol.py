"""What the package asks of a model, declared: the loop, the acquisition, the kernels and the
estimators use a network only through `Model`; the trainer adds `TrainableModel`'s members; the
"grad" kernel (al_bnn.models.gradient_features) reads `GradientFeaturesModel`'s.

A registered model (al_bnn.registry.register_model) returns a network with these members. The
shipped networks (al_bnn.models.dense.StackedDenseNetwork and its subclasses) have them all, so
subclassing one is the short way to a new model. Arrays of a stacked model have a leading axis of
runs (K); tensors are TensorFlow's or NumPy's (np.asarray reads either).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Model(Protocol):
    """A stacked regression model of `num_runs` runs, as a sampler sees it."""

    has_features: bool  # whether `features` gives closed-form kernel features (the "exact" kernel)

    @property
    def num_runs(self) -> int: ...

    def predict(self, x: Any) -> tuple[Any, Any, Any]:
        """Predictive mean, epistemic std and aleatoric std at x (n, d), each (K, n)."""
        ...

    def function_samples(self, x: Any, num_samples: int, counters: Sequence[int], mode: str = "joint",
                         run: int = 0) -> np.ndarray:
        """(T, n) function values of run `run` at x, one posterior draw per row, keyed by (run seed,
        mode, *counters): the same counters give the same draw. The "mc" kernel is their covariance."""
        ...

    def features(self, x: Any, run: int | None = None) -> Any:
        """Closed-form features (n, width) of run `run`, whose Gram matrix is the function samples'
        exact covariance; a model without them (has_features False) raises ValueError."""
        ...

    def get_weights(self) -> list[np.ndarray]: ...

    def set_weights(self, weights: Sequence[np.ndarray]) -> None: ...


@runtime_checkable
class TrainableModel(Model, Protocol):
    """What al_bnn.models.trainer.StackedTrainer uses besides `Model` (StackedDenseNetwork defines
    these; its docstrings say what each means)."""

    dtype: Any

    @property
    def num_units(self) -> int: ...

    @property
    def trainable_variables(self) -> list[Any]: ...

    def with_parameters(self, parameters: Sequence[Any]) -> Any: ...

    def loss_per_unit(self, x: Any, y: Any, mask: Any, step_noise: Any, batches_per_epoch: Any,
                      input_noise: Any = None, divergence_scale: float = 1.0, ncp: Any = None) -> Any: ...

    def step_noise_shape(self, batch_size: int) -> tuple[int, ...]: ...

    def units_from_runs(self, x: Any) -> Any: ...

    def unit_seed_words(self, purpose: str, *counters: int) -> np.ndarray: ...


@runtime_checkable
class GradientFeaturesModel(Model, Protocol):
    """What the "grad" kernel (al_bnn.models.gradient_features) reads: the dense layers' shapes,
    scales and variables and one unit's pre-activations, besides the mean output's weights (the
    bnn's posterior mean, or a deterministic head's kernel and bias)."""

    input_dim: int
    layer_sizes: list[int]
    activation: str
    kernel_scales: list[float]
    bias_scale: float
    head_scale: float
    hidden_kernels: list[Any]

    def transform_inputs(self, x: Any) -> Any: ...

    def pre_activation_of_unit(self, h: Any, layer: int, unit: int) -> Any: ...


def missing_members(network: object, protocol: type) -> list[str]:
    """The members of `protocol` (and its protocol bases) that `network` lacks, for a message."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base is Protocol or not getattr(base, "_is_protocol", False):
            continue
        names.update(getattr(base, "__annotations__", {}))
        names.update(name for name in vars(base) if not name.startswith("_"))
    return sorted(name for name in names if not hasattr(network, name))


__all__ = ["GradientFeaturesModel", "Model", "TrainableModel", "missing_members"]
