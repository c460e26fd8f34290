"""The model and kernel registries: the names a config may give in `parms.name_model` and in
`parms.gpa_kernel` / `parms.family_kernel`, and what each name is built from.

Adding a model or a kernel is one module plus one call, without editing the package (a module
passed with --plugins, imported before any config is read):

    from al_bnn.registry import register_kernel, register_model

    register_model("my_model", build_my_model, has_features=False)   # (input_dim, net_config, parms, seeds)
    register_kernel("my_kernel", my_kernel_features)                  # (network, x, run, parms, seed, phase)

A model builder returns a network with what al_bnn.models.protocol.Model declares (predict,
function_samples, ...) and what the trainer trains (al_bnn.models.dense.StackedDenseNetwork's
training methods; subclassing one of the shipped networks gives both). A kernel function returns
the (n, d) feature matrix F of its kernel F F^T at the n rows of x (kind="features"), or, for
kind="samples", (T, n) function samples whose centred covariance is the kernel (the "mc" kernel).

This module imports no TensorFlow: the config validates names against it before any model is
built. So the shipped entries name their implementations as "module:attribute" strings, imported
when first used (a plug-in may pass either a callable or such a string).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from al_bnn.config import ConfigError

# model-specific config keys a model may read (the shared network and training keys are read by all)
MODEL_OPTIONS = ("dropout_rate", "ensemble_size", "ood_std_prior", "function_samples")
KERNEL_KINDS = ("features", "samples")


class UnknownNameError(ConfigError):
    """A model or kernel name that is not registered; the message lists the registered ones."""


def _resolve(target: Any, what: str) -> Any:
    """A callable, or the attribute a "module:attribute" string names (imported on first use)."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    if not callable(value):
        raise TypeError(f"{what}: {target!r} is not callable")
    return value


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a {what} name must be a Python identifier such as 'my_{what}', got {name!r}")
    return name


def unknown_name_message(kind: str, name: Any, registered: list[str], where: str = "") -> str:
    """"'x' is not allowed; choose one of 'a', 'b' (the registered models; ...)", with a did-you-mean hint."""
    close = difflib.get_close_matches(str(name), registered, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    place = f"{where}: " if where else f"{kind} "
    return (f"{place}{name!r} is not allowed; choose one of {', '.join(map(repr, registered))} (the registered "
            f"{kind}s; register your own with al_bnn.registry.register_{kind} in a module passed with --plugins)."
            f"{hint}")


# -- models -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder and what the config checks and the memory estimate need.

    builder(input_dim, net_config, parms, seeds) -> network (one run per seed). has_features: the
    network has closed-form kernel features (`features(x, run)`), so kernels that need them
    ("exact") work. options: the model-specific config keys it reads (MODEL_OPTIONS): a
    "dropout_rate" model needs a rate > 0 (others need 0); "ensemble_size" makes that many units
    per run, whose mean functions are the function samples; "ood_std_prior" (noise contrastive
    prior) and "function_samples" (the `marginal` mode) may only be set for models that read them.
    estimator: the scikit-learn estimator class (or "module:Class") for this model, if any."""

    name: str
    builder: Callable[..., Any] | str
    has_features: bool = False
    options: frozenset[str] = frozenset()
    estimator: Any = None
    description: str = ""

    def build(self, input_dim: int, net_config: Any, parms: Any, seeds: Any) -> Any:
        return _resolve(self.builder, f"model {self.name!r}")(input_dim, net_config, parms, seeds)

    def units_per_run(self, parms: Any) -> int:
        """Stacked networks per run (an ensemble's members)."""
        return int(parms.ensemble_size) if "ensemble_size" in self.options else 1

    def samples_per_draw(self, parms: Any) -> int:
        """Function samples T of one draw: the members of an ensemble, else parms.n_mc_samples."""
        return int(parms.ensemble_size) if "ensemble_size" in self.options else int(parms.n_mc_samples)

    def estimator_class(self) -> Any:
        if self.estimator is None:
            raise UnknownNameError(f"model {self.name!r} has no estimator class (register it with estimator=...); "
                                   "it can be used in experiment configs (run_experiments) only")
        return _resolve(self.estimator, f"the estimator of model {self.name!r}")


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, builder: Callable[..., Any] | str, *, has_features: bool = False,
                   options: tuple[str, ...] | frozenset[str] = (), estimator: Any = None,
                   description: str = "") -> ModelEntry:
    """Register a model under `name` (its `parms.name_model`); see ModelEntry. Registering the same
    name again is an error unless it is the very same entry (a module imported twice)."""
    _check_name(name, "model")
    unknown = set(options) - set(MODEL_OPTIONS)
    if unknown:
        raise ValueError(f"model {name!r}: unknown options {sorted(unknown)}; choose from {', '.join(MODEL_OPTIONS)}")
    if not (callable(builder) or isinstance(builder, str)):
        raise TypeError(f"model {name!r}: the builder must be callable, got {type(builder).__name__}")
    entry = ModelEntry(name, builder, bool(has_features), frozenset(options), estimator, description)
    if name in _MODELS and _MODELS[name] != entry:
        raise ValueError(f"a model named {name!r} is already registered")
    _MODELS[name] = entry
    return entry


def model_names() -> list[str]:
    """The registered models' names, sorted."""
    return sorted(_MODELS)


def model_entry(name: str, where: str = "") -> ModelEntry:
    """The entry of a registered model; UnknownNameError (naming the registered ones) otherwise."""
    if not isinstance(name, str) or name not in _MODELS:
        raise UnknownNameError(unknown_name_message("model", name, model_names(), where))
    return _MODELS[name]


def models_with(predicate: Callable[[ModelEntry], bool]) -> list[str]:
    return [name for name in model_names() if predicate(_MODELS[name])]


# -- kernels ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelEntry:
    """A registered kernel. kind="features": function(network, x, run, parms, seed, phase) -> (n, d)
    features F, kernel F F^T. kind="samples": function(network, x, run, parms, seed, phase, draw) ->
    (T, n) function samples, kernel = their covariance (the sampler centres them in its own
    precision; `draw` counts redraws within one acquisition). needs_model_features: only models
    registered with has_features=True can provide it."""

    name: str
    function: Callable[..., Any] | str
    kind: str = "features"
    needs_model_features: bool = False
    description: str = ""

    def compute(self, *arguments: Any) -> Any:
        return _resolve(self.function, f"kernel {self.name!r}")(*arguments)


_KERNELS: dict[str, KernelEntry] = {}


def register_kernel(name: str, function: Callable[..., Any] | str, *, kind: str = "features",
                    needs_model_features: bool = False, description: str = "") -> KernelEntry:
    """Register a kernel under `name` (for `parms.gpa_kernel` and `parms.family_kernel`); see KernelEntry."""
    _check_name(name, "kernel")
    if kind not in KERNEL_KINDS:
        raise ValueError(f"kernel {name!r}: kind must be one of {', '.join(KERNEL_KINDS)}, got {kind!r}")
    if not (callable(function) or isinstance(function, str)):
        raise TypeError(f"kernel {name!r}: the function must be callable, got {type(function).__name__}")
    entry = KernelEntry(name, function, kind, bool(needs_model_features), description)
    if name in _KERNELS and _KERNELS[name] != entry:
        raise ValueError(f"a kernel named {name!r} is already registered")
    _KERNELS[name] = entry
    return entry


def kernel_names() -> list[str]:
    """The registered kernels' names, sorted."""
    return sorted(_KERNELS)


def kernel_entry(name: str, where: str = "") -> KernelEntry:
    """The entry of a registered kernel; UnknownNameError (naming the registered ones) otherwise."""
    if not isinstance(name, str) or name not in _KERNELS:
        raise UnknownNameError(unknown_name_message("kernel", name, kernel_names(), where))
    return _KERNELS[name]


# -- the shipped models and kernels -------------------------------------------------------------
register_model("bnn", "al_bnn.models:build_bnn", has_features=True, options=("ood_std_prior", "function_samples"),
               estimator="al_bnn.models.estimators:BNNRegressor",
               description="Bayesian last layer (Hafner et al.'s bbb; NCP with ood_std_prior)")
register_model("dropout", "al_bnn.models:build_dropout", options=("dropout_rate",),
               estimator="al_bnn.models.estimators:DropoutRegressor", description="MC dropout")
register_model("ensemble", "al_bnn.models:build_ensemble", options=("ensemble_size",),
               estimator="al_bnn.models.estimators:EnsembleRegressor", description="deep ensemble")
register_kernel("mc", "al_bnn.kernels:mc_samples", kind="samples",
                description="covariance of the model's function samples (Monte Carlo)")
register_kernel("exact", "al_bnn.kernels:exact_features", needs_model_features=True,
                description="the model's closed-form features (the bnn's last layer)")
register_kernel("grad", "al_bnn.kernels:gradient_kernel_features",
                description="sketched gradients of the mean output (finite-width NTK)")

__all__ = ["KERNEL_KINDS", "MODEL_OPTIONS", "KernelEntry", "ModelEntry", "UnknownNameError", "kernel_entry",
           "kernel_names", "model_entry", "model_names", "models_with", "register_kernel", "register_model"]
