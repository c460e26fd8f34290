"""The models as scikit-learn style estimators: one class per model, a stack of one underneath.

    model = BNNRegressor(layer_sizes=[50, 50], n_epochs=300, random_state=0).fit(X, y)
    mean, std = model.predict(X_new, return_std=True)
    samples = model.sample_functions(X_new, n_samples=100)      # (T, n): one weight draw per row

Hyperparameters are keyword arguments stored as given (their defaults are the default model
recipe, al_bnn.recipe, and otherwise the config keys' defaults, README "Config keys"); they are
validated by `fit` with the config schema's messages.
Learned state ends in `_`. Every random draw is keyed by (random_state, purpose, counters) as in
the experiments, so the same random_state and data give the same model, and a fit here computes
what the experiment loop computes for the same run. `warm_start=True` makes the next fit the next
training phase, as the loop's after an acquisition (Adam's moments reset, training draws keyed by
the fit count): from the current weights, or with `retrain_from="initial"` from the initial ones.

Inputs are used as given: standardise features (e.g. sklearn's StandardScaler) before fitting;
`normalize_y=True` standardises the target internally and reports predictions, stds, samples and
features in the target's units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from al_bnn.config import NetConfig, SamplingParameters, TrainSchedule, config_from_dict
from al_bnn.models import build_model, build_model_and_trainer
from al_bnn.recipe import recipe_default
from al_bnn.safe_arrays import ArrayFileError, open_arrays, save_arrays

ESTIMATOR_FILE_KIND = "al_bnn.estimator"
STD_KINDS = ("total", "epistemic", "aleatoric")


_SECTION_NAMES = {NetConfig: "net_config", TrainSchedule: "train_schedule", SamplingParameters: "parms"}


def _default(section, key: str) -> Any:
    """The default model recipe's value (al_bnn.recipe), else the config schema's default."""
    field = next(f for f in dataclasses.fields(section) if f.name == key)
    schema = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return recipe_default(_SECTION_NAMES[section], key, schema)


def check_array(X, name: str = "X", *, ndim: int = 2, n_features: int | None = None) -> np.ndarray:
    """X as a finite float array of `ndim` dimensions; messages name the argument and the fix."""
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric; could not convert it to floats ({error})") from None
    if ndim == 2 and array.ndim == 1:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {array.shape}; reshape a single "
                         f"feature with {name}.reshape(-1, 1)")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        index = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} has a NaN or infinite value at index {tuple(int(i) for i in index)}; remove or "
                         "impute it first")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, but the model was fitted with {n_features}")
    return array


class _StackedRegressor:
    """What the three estimators share; subclasses name their model and its extra parameters."""

    _model_name = ""
    _extra_parameters: tuple[str, ...] = ()

    def __init__(self, *, layer_sizes: Sequence[int] = tuple(_default(NetConfig, "layer_sizes")),
                 learning_rate: float = _default(NetConfig, "learning_rate"),
                 clip_gradient: float = _default(NetConfig, "clip_gradient"),
                 batch_size: int = _default(TrainSchedule, "batch_size"),
                 n_epochs: int = _default(TrainSchedule, "num_epochs"),
                 n_steps: int = _default(TrainSchedule, "num_steps"),
                 min_steps: int = _default(TrainSchedule, "min_steps"),
                 learning_rate_schedule: str = _default(TrainSchedule, "learning_rate_schedule"),
                 activation: str = _default(NetConfig, "activation"),
                 input_transform: str = _default(NetConfig, "input_transform"),
                 parametrization: str = _default(NetConfig, "parametrization"),
                 nll_beta: float = _default(NetConfig, "nll_beta"),
                 retrain_from: str = _default(TrainSchedule, "retrain_from"),
                 normalize_y: bool = False, warm_start: bool = False, random_state: int = 0):
        self.layer_sizes = layer_sizes
        self.n_steps = n_steps
        self.min_steps = min_steps
        self.learning_rate_schedule = learning_rate_schedule
        self.activation = activation
        self.input_transform = input_transform
        self.parametrization = parametrization
        self.nll_beta = nll_beta
        self.retrain_from = retrain_from
        self.learning_rate = learning_rate
        self.clip_gradient = clip_gradient
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.normalize_y = normalize_y
        self.warm_start = warm_start
        self.random_state = random_state

    # -- scikit-learn's parameter protocol ----------------------------------------------------
    @classmethod
    def _parameter_names(cls) -> list[str]:
        return ["layer_sizes", "learning_rate", "clip_gradient", "batch_size", "n_epochs", "n_steps", "min_steps",
                "learning_rate_schedule",
                "activation", "input_transform", "parametrization", "nll_beta", "retrain_from", "normalize_y",
                "warm_start", "random_state",
                *cls._extra_parameters]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **parameters) -> _StackedRegressor:
        for name, value in parameters.items():
            if name not in self._parameter_names():
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; parameters are "
                                 f"{', '.join(self._parameter_names())}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- validation: the config schema checks every value, with its messages ----------------------
    def _sections(self) -> dict:
        return {"net_config": {"layer_sizes": list(self.layer_sizes) if isinstance(self.layer_sizes, (list, tuple))
                               else self.layer_sizes, "learning_rate": self.learning_rate,
                               "clip_gradient": self.clip_gradient, "activation": self.activation,
                               "input_transform": self.input_transform, "parametrization": self.parametrization,
                               "nll_beta": self.nll_beta},
                "train_schedule": {"batch_size": self.batch_size, "num_epochs": self.n_epochs,
                                   "num_steps": self.n_steps, "min_steps": self.min_steps,
                                   "learning_rate_schedule": self.learning_rate_schedule,
                                   "retrain_from": self.retrain_from},
                "parms": {"name_model": self._model_name}, "seed": self.random_state}

    def _validated_config(self):
        for name in ("normalize_y", "warm_start"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{type(self).__name__}: {name} must be True or False, got {getattr(self, name)!r}")
        source = f"{type(self).__name__} parameters"
        config = config_from_dict(self._sections(), source)
        return config

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, *, eval_every: int | None = None) -> _StackedRegressor:
        """Train `n_epochs` epochs (or `n_steps` optimiser steps, in whole epochs) on (X, y); continue
        from the current weights if warm_start and already fitted. Optional validation data is
        evaluated every `eval_every` epochs (default: at the end) into `history_`."""
        config = self._validated_config()
        X = check_array(X, "X")
        y = check_array(y, "y", ndim=1)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}; they must match")
        if len(X) < 2:
            raise ValueError(f"need at least 2 training rows to fit, got {len(X)}")
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        continuing = self.warm_start and hasattr(self, "network_")
        if continuing and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the model was fitted with {self.n_features_in_}; "
                             "set warm_start=False to start over")
        if not continuing:
            self.n_features_in_ = X.shape[1]
            self.y_mean_, self.y_scale_ = (float(y.mean()), float(y.std()) or 1.0) if self.normalize_y else (0.0, 1.0)
            self._build(config)
            self.n_fits_ = 0
            self.history_ = []
        else:
            self.trainer_.reset_optimizer()
            if config.train_schedule.retrain_from == "initial":  # a fresh model, trained as the next phase
                fresh = build_model(config.parms.name_model, self.n_features_in_, config.net_config, config.parms,
                                    [self.random_state])
                self.network_.set_weights(fresh.get_weights())
        X_val = X if X_val is None else check_array(X_val, "X_val", n_features=self.n_features_in_)
        y_val = y if y_val is None else check_array(y_val, "y_val", ndim=1)
        epochs = config.train_schedule.epochs_for(len(X))
        every = epochs if eval_every is None else int(eval_every)
        evaluations = self.trainer_.fit(self._x(X)[None], self._y(y)[None], self._x(X_val)[None],
                                        self._y(y_val)[None], epochs, every, phase=self.n_fits_)
        for metrics in evaluations:
            self.history_.append(dict(
                fit=self.n_fits_, epoch=metrics.epoch, n_train=len(X),
                train_rmse=float(metrics.train_rmse[0]) * self.y_scale_,
                train_log_likelihood=float(metrics.train_log_likelihood[0]) - np.log(self.y_scale_),
                validation_rmse=float(metrics.test_rmse[0]) * self.y_scale_,
                validation_log_likelihood=float(metrics.test_log_likelihood[0]) - np.log(self.y_scale_)))
        if not np.all(np.isfinite([self.history_[-1]["train_rmse"], self.history_[-1]["train_log_likelihood"]])):
            raise FloatingPointError(f"{type(self).__name__}: training diverged (NaN or inf) in fit {self.n_fits_}; "
                                     "lower learning_rate or clip_gradient")
        self.n_fits_ += 1
        return self

    def _build(self, config) -> None:
        self.network_, self.trainer_ = build_model_and_trainer(config, self.n_features_in_, [self.random_state])

    def _x(self, X) -> np.ndarray:
        return np.asarray(X, np.float32)

    def _y(self, y) -> np.ndarray:
        return ((np.asarray(y, np.float64) - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _check_fitted(self, X) -> np.ndarray:
        if not hasattr(self, "network_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")
        return check_array(X, "X", n_features=self.n_features_in_)

    # -- predictions --------------------------------------------------------------------------------
    def predict(self, X, return_std: bool = False, std_kind: str = "total"):
        """Predictive mean (n,); with return_std, also the `std_kind` std: "total" (epistemic and
        aleatoric together, the predictive distribution's), "epistemic" (the model's uncertainty
        about the mean) or "aleatoric" (the learned noise)."""
        if std_kind not in STD_KINDS:
            raise ValueError(f"std_kind must be one of {', '.join(STD_KINDS)}, got {std_kind!r}")
        X = self._check_fitted(X)
        mean, epistemic, aleatoric = (np.asarray(t.numpy(), np.float64)[0] for t in self.network_.predict(self._x(X)))
        mean = mean * self.y_scale_ + self.y_mean_
        if not return_std:
            return mean
        std = {"total": np.sqrt(epistemic**2 + aleatoric**2), "epistemic": epistemic, "aleatoric": aleatoric}[std_kind]
        return mean, std * self.y_scale_

    def score(self, X, y) -> float:
        """R^2 of the predictive mean, as scikit-learn's regressors report it."""
        y = check_array(y, "y", ndim=1)
        residual = np.sum((y - self.predict(X)) ** 2)
        return float(1.0 - residual / np.sum((y - y.mean()) ** 2))

    def sample_functions(self, X, n_samples: int = 100, random_state: int | None = None) -> np.ndarray:
        """(n_samples, n) function values at X; row t uses one weight draw (or dropout mask, or
        ensemble member) shared by all n points, so the rows' covariance is the model's kernel.

        The draw is keyed by (model random_state, fit count, random_state): the same call gives the
        same samples; random_state=None means 0, the draw the experiment loop's sampler sees."""
        X = self._check_fitted(X)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        draw = 0 if random_state is None else int(random_state)
        samples = self.network_.function_samples(self._x(X), int(n_samples), (self.n_fits_, draw))
        return np.asarray(samples, np.float64) * self.y_scale_ + self.y_mean_

    @property
    def has_features(self) -> bool:
        return self.network_.has_features if hasattr(self, "network_") else self._model_name == "bnn"

    def features(self, X) -> np.ndarray:
        """(n, width) features whose Gram matrix is the exact covariance of the function samples
        (the bnn's closed-form last-layer kernel); other models have none."""
        X = self._check_fitted(X)
        if not self.network_.has_features:
            raise ValueError(f"{type(self).__name__} has no closed-form kernel features; use sample_functions "
                             "(the Monte-Carlo kernel) instead, or BNNRegressor")
        return np.asarray(self.network_.features(self._x(X), run=0).numpy(), np.float64) * self.y_scale_

    # -- saving: arrays plus a JSON header, never pickle ----------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to `path` (.npz: weights as arrays and a JSON header)."""
        header, arrays = self.saved_state()
        return save_arrays(path, ESTIMATOR_FILE_KIND, 1, header, arrays)

    def saved_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON header, arrays) of the fitted model: what `save` writes, for files that hold an
        estimator among other things (the ask/tell learner's); `estimator_from_state` reads it."""
        if not hasattr(self, "network_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; there is nothing to save")
        header = {"class": type(self).__name__, "parameters": _jsonable(self.get_params()),
                  "fitted": {"n_features_in_": self.n_features_in_, "y_mean_": self.y_mean_,
                             "y_scale_": self.y_scale_, "n_fits_": self.n_fits_, "history_": self.history_}}
        arrays = {f"weight_{i}": w for i, w in enumerate(self.network_.get_weights())}
        arrays.update({f"optimizer_{i}": v for i, v in enumerate(self.trainer_.get_optimizer_state())})
        return header, arrays


def _jsonable(parameters: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()}


class BNNRegressor(_StackedRegressor):
    """Hafner et al.'s "bbb" network: leaky-ReLU layers, a Bayesian linear output layer (factorised
    Gaussian posterior, Bayes by backprop) and a softplus noise head; with `ood_std_prior` set, a
    noise contrastive prior. Has the exact last-layer kernel (`features`)."""

    _model_name = "bnn"
    _extra_parameters = ("weight_std", "divergence_scale", "ood_std_prior", "noise_std", "ncp_scale",
                         "center_at_target")

    def __init__(self, *, weight_std: float = _default(NetConfig, "weight_std"),
                 divergence_scale: float = _default(NetConfig, "divergence_scale"),
                 ood_std_prior: float | None = _default(NetConfig, "ood_std_prior"),
                 noise_std: float = _default(NetConfig, "noise_std"),
                 ncp_scale: float = _default(NetConfig, "ncp_scale"),
                 center_at_target: bool = _default(NetConfig, "center_at_target"), **common):
        super().__init__(**common)
        self.weight_std = weight_std
        self.divergence_scale = divergence_scale
        self.ood_std_prior = ood_std_prior
        self.noise_std = noise_std
        self.ncp_scale = ncp_scale
        self.center_at_target = center_at_target

    def _sections(self) -> dict:
        sections = super()._sections()
        sections["net_config"].update(weight_std=self.weight_std, divergence_scale=self.divergence_scale,
                                      ood_std_prior=self.ood_std_prior, noise_std=self.noise_std,
                                      ncp_scale=self.ncp_scale, center_at_target=self.center_at_target)
        return sections


class DropoutRegressor(_StackedRegressor):
    """MC dropout (Gal & Ghahramani 2016) on every hidden layer; a function sample is one forward
    pass with one mask per layer shared by all points."""

    _model_name = "dropout"
    _extra_parameters = ("dropout_rate",)

    def __init__(self, *, dropout_rate: float = 0.1, **common):
        super().__init__(**common)
        self.dropout_rate = dropout_rate

    def _sections(self) -> dict:
        sections = super()._sections()
        sections["net_config"]["dropout_rate"] = self.dropout_rate
        return sections


class EnsembleRegressor(_StackedRegressor):
    """A deep ensemble (Lakshminarayanan et al. 2017) of `ensemble_size` networks with a Gaussian
    likelihood; each member's mean function is one function sample (so at most ensemble_size)."""

    _model_name = "ensemble"
    _extra_parameters = ("ensemble_size",)

    def __init__(self, *, ensemble_size: int = _default(SamplingParameters, "ensemble_size"), **common):
        super().__init__(**common)
        self.ensemble_size = ensemble_size

    def _sections(self) -> dict:
        sections = super()._sections()
        sections["parms"]["ensemble_size"] = self.ensemble_size
        return sections


ESTIMATORS = {cls.__name__: cls for cls in (BNNRegressor, DropoutRegressor, EnsembleRegressor)}
ESTIMATOR_FOR_MODEL = {cls._model_name: cls for cls in ESTIMATORS.values()}


def load_estimator(path: str | Path) -> _StackedRegressor:
    """A fitted estimator saved with `save`; the file is read without unpickling anything, its
    header is checked against the schema before the network is built, and only the arrays that
    network needs are read (each checked against its declared shape first)."""
    with open_arrays(path, ESTIMATOR_FILE_KIND) as reader:
        return estimator_from_state(reader.header, reader, path)


def estimator_from_state(header: dict, arrays: Mapping[str, np.ndarray], path: str | Path,
                         prefix: str = "") -> _StackedRegressor:
    """The estimator whose `saved_state()` gave (header, arrays); `path` names the file in messages.

    `arrays` maps names to arrays (`prefix` + the saved names): a dict, or an ArrayReader whose
    members are read only once their declared shapes fit the network the header describes. A
    header or arrays that do not fit are an ArrayFileError naming the file, before anything large
    is built or read."""
    from al_bnn.headers import MAX_PARAMETERS, estimator_schema, parameter_lower_bound, validate

    header = validate(header, estimator_schema(list(ESTIMATORS)), path)
    cls = ESTIMATORS[header["class"]]
    parameters, fitted = header["parameters"], header["fitted"]
    names = [name[len(prefix):] for name in arrays if name.startswith(prefix)]
    shape_of = arrays.shape if hasattr(arrays, "shape") and callable(arrays.shape) else \
        (lambda name: np.shape(arrays[name]))
    declared = {name: tuple(shape_of(prefix + name)) for name in names}
    # the network the header describes must fit in what the file holds: checked before building it
    layers = parameters.get("layer_sizes", list(_default(NetConfig, "layer_sizes")))
    if isinstance(layers, list):
        members = parameters.get("ensemble_size", _default(SamplingParameters, "ensemble_size")) \
            if cls is EnsembleRegressor else 1
        needed = parameter_lower_bound(fitted["n_features_in_"], layers, members if isinstance(members, int) else 1)
        held = sum(int(np.prod(shape, dtype=object)) for name, shape in declared.items() if name.startswith("weight_"))
        if needed > MAX_PARAMETERS or needed > held:
            limit = f" (at most {MAX_PARAMETERS} are read)" if needed > MAX_PARAMETERS else ""
            raise ArrayFileError(f"{path}: its header describes a network of at least {needed} weights{limit} "
                                 f"({fitted['n_features_in_']} features, layer sizes {_short(layers)}) but the file "
                                 f"holds {held}; the file is corrupt or was not written by this package")
    try:
        estimator = cls(**{k: v for k, v in parameters.items() if k in cls._parameter_names()})
        config = estimator._validated_config()
    except (TypeError, ValueError) as error:  # ConfigError is a ValueError
        raise ArrayFileError(f"{path}: its saved parameters are not valid: {str(error)[:300]}") from None
    estimator.n_features_in_ = int(fitted["n_features_in_"])
    estimator.y_mean_, estimator.y_scale_ = float(fitted["y_mean_"]), float(fitted["y_scale_"])
    estimator._fit_config = config  # as fit sets it (pickling a loaded estimator rebuilds from it)
    estimator._build(config)
    expected = []
    for kind, current in (("weight", estimator.network_.get_weights()),
                          ("optimizer", estimator.trainer_.get_optimizer_state())):
        wanted = [f"{kind}_{i}" for i in range(len(current))]
        expected += wanted
        wrong = [name for name, c in zip(wanted, current, strict=True) if declared.get(name) != tuple(np.shape(c))]
        if wrong:
            raise ArrayFileError(f"{path}: its {kind} arrays do not fit a {cls.__name__} with the saved parameters "
                                 f"({wrong[0]}: {_short(declared.get(wrong[0], 'missing'))}, the network's "
                                 f"{tuple(np.shape(current[int(wrong[0].rsplit('_', 1)[1])]))})")
    extra = sorted(set(declared) - set(expected))
    if extra:
        raise ArrayFileError(f"{path}: arrays the header does not name: {', '.join(map(_short, extra[:5]))}; not a "
                             f"{cls.__name__} file this package wrote")
    for kind, assign in (("weight", estimator.network_.set_weights),
                         ("optimizer", estimator.trainer_.set_optimizer_state)):
        try:
            assign([arrays[f"{prefix}{name}"] for name in expected if name.startswith(f"{kind}_")])
        except (TypeError, ValueError) as error:
            raise ArrayFileError(f"{path}: its {kind} arrays do not fit a {cls.__name__}: {str(error)[:200]}") \
                from None
    estimator.n_fits_ = int(fitted["n_fits_"])
    estimator.history_ = list(fitted["history_"])
    return estimator


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["BNNRegressor", "DropoutRegressor", "EnsembleRegressor", "load_estimator"]
