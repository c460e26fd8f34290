"""The models as scikit-learn estimators: one class per model, a stack of one underneath.

    model = BNNRegressor(layer_sizes=[50, 50], n_epochs=300, random_state=0).fit(X, y)
    mean, std = model.predict(X_new, return_std=True)
    samples = model.sample_functions(X_new, n_samples=100)      # (T, n): one weight draw per row

They derive from scikit-learn's RegressorMixin and BaseEstimator, so `clone`, `Pipeline`,
`cross_val_score`, `GridSearchCV` and `check_estimator` work with them. Hyperparameters are keyword
arguments stored as given (their defaults are the default model recipe, al_bnn.recipe, and
otherwise the config keys' defaults, README "Config keys"); `fit` validates them with the config
schema's messages and the data with scikit-learn's `validate_data`.
Learned state ends in `_`. Every random draw is keyed by (random_state, purpose, counters) as in
the experiments, so the same random_state and data give the same model, and a fit here computes
what the experiment loop computes for the same run. `warm_start=True` makes the next fit the next
training phase, as the loop's after an acquisition (Adam's moments reset, training draws keyed by
the fit count): from the current weights, or with `retrain_from="initial"` from the initial ones.

Inputs are used as given: standardise features (e.g. sklearn's StandardScaler) before fitting;
`normalize_y=True` standardises the target internally and reports predictions, stds, samples and
features in the target's units.

Fitted estimators pickle (joblib, `n_jobs`): the state keeps the weights and Adam's moments as
arrays and the TensorFlow model is rebuilt on first use. To share a model as a file, `save` (an
.npz of arrays and a JSON header, loaded without unpickling) is the safe way.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from al_bnn.config import (
    ESTIMATOR_DEFAULTS,
    ConfigError,
    config_from_dict,
    estimator_config_key,
    key_default,
    keyword_sections,
)
from al_bnn.errors import InputError
from al_bnn.models import build_model, build_model_and_trainer
from al_bnn.models.calibration import CALIBRATION_MIN_ROWS, VarianceScales, fit_variance_scales, holdout_positions
from al_bnn.recipe import recipe_default
from al_bnn.registry import model_entry
from al_bnn.safe_arrays import ArrayFileError, open_arrays, save_arrays

ESTIMATOR_FILE_KIND = "al_bnn.estimator"
STD_KINDS = ("total", "epistemic", "aleatoric")


def _default(keyword: str) -> Any:
    """A keyword's default: its deliberate difference from the schema (config.ESTIMATOR_DEFAULTS),
    else the default model recipe's value (al_bnn.recipe), else the config schema's default of the
    key it sets (config.estimator_config_key: the same name, or config.ESTIMATOR_NAMES)."""
    if keyword in ESTIMATOR_DEFAULTS:
        return copy.deepcopy(ESTIMATOR_DEFAULTS[keyword])
    key = estimator_config_key(keyword)
    if key is None:
        raise KeyError(f"{keyword} sets no config key")
    section, _, name = key.rpartition(".")
    return recipe_default(section, name, key_default(key))


# The defaults of the keyword parameters (a tuple for layer_sizes: defaults must be immutable).
LAYER_SIZES = tuple(_default("layer_sizes"))
LEARNING_RATE = _default("learning_rate")
CLIP_GRADIENT = _default("clip_gradient")
BATCH_SIZE = _default("batch_size")
N_EPOCHS = _default("n_epochs")
N_STEPS = _default("n_steps")
MIN_STEPS = _default("min_steps")
BATCHING = _default("batching")
LEARNING_RATE_SCHEDULE = _default("learning_rate_schedule")
ACTIVATION = _default("activation")
INPUT_TRANSFORM = _default("input_transform")
PARAMETRIZATION = _default("parametrization")
NLL_BETA = _default("nll_beta")
RETRAIN_FROM = _default("retrain_from")
WEIGHT_STD = _default("weight_std")
DIVERGENCE_SCALE = _default("divergence_scale")
OOD_STD_PRIOR = _default("ood_std_prior")
NOISE_STD = _default("noise_std")
NCP_SCALE = _default("ncp_scale")
CENTER_AT_TARGET = _default("center_at_target")
RANDOM_STATE = _default("random_state")
CALIBRATIONS = ("holdout", "none")
CALIBRATION = _default("calibration")
CALIBRATION_FRACTION = 0.2  # train_schedule.calibration_fraction's default (tests/test_config_schema.py checks it)
DROPOUT_RATE = _default("dropout_rate")
ENSEMBLE_SIZE = _default("ensemble_size")


# Largest |y| (after normalize_y) the float32 network trains on: its square must stay a normal float32.
TARGET_RANGE = (1e-18, 1e18)


class EstimatorNotFittedError(InputError, NotFittedError, RuntimeError):
    """scikit-learn's NotFittedError; also a RuntimeError, which this package raised before."""


class TargetScaleError(ConfigError):
    """y's magnitude is outside what the float32 network can learn (bad input: the CLI's exit code 2)."""


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
    _check_finite(array, name)
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features, but the model was fitted with {n_features}")
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(array)):
        index = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} has a NaN or infinite value at index {tuple(int(i) for i in index)}; remove or "
                         "impute it first")


def target_scale(y: np.ndarray) -> tuple[float, float]:
    """(mean, std) of y for normalize_y, computed without under- or overflow: y ~ 1e-200 has a
    variance below the smallest float64 and y ~ 1e200 one above the largest, so the std is taken
    of y divided by its largest deviation from the mean. A constant y gets std 1."""
    mean = float(np.mean(y))
    if not math.isfinite(mean):  # the sum overflowed: the mean of y / max|y|, scaled back
        peak = float(np.max(np.abs(y)))
        mean = float(np.mean(y / peak)) * peak
    deviation = y - mean
    peak = float(np.max(np.abs(deviation))) if deviation.size else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        if not math.isfinite(peak):
            raise ValueError(f"y spans more than the float64 range (max |y - mean| = {peak}); rescale the targets")
        return mean, 1.0
    return mean, float(np.std(deviation / peak)) * peak


# The parameters' documentation, shared by the three classes' docstrings (numpydoc).
_COMMON_PARAMETERS = """\
layer_sizes : sequence of int, default={LAYER_SIZES}
    Widths of the hidden layers.
learning_rate : float, default={LEARNING_RATE}
    Adam's learning rate (in the "ntk" parametrization it acts per layer as
    learning_rate * 0.2 / sqrt(fan_in)).
clip_gradient : float, default={CLIP_GRADIENT}
    Global-norm gradient clipping threshold.
batch_size : int, default={BATCH_SIZE}
    Minibatch size.
n_epochs : int, default={N_EPOCHS}
    Epochs per fit, unless `n_steps` is set; raised by `min_steps` (below).
n_steps : int, default={N_STEPS}
    Optimiser steps per fit instead of `n_epochs` (0: use `n_epochs`), in whole epochs:
    ceil(n_steps / batches per epoch) epochs.
min_steps : int, default={MIN_STEPS}
    At least this many optimiser steps per fit: the epochs of a fit are
    max(epochs from n_epochs or n_steps, ceil(min_steps / batches per epoch)). With the
    defaults a set of at most {BATCH_SIZE} rows (one batch per epoch) trains {MIN_STEPS} epochs
    even when `n_epochs` is smaller; set `min_steps=0` for exactly `n_epochs`.
learning_rate_schedule : {{"constant", "linear_decay"}}, default={LEARNING_RATE_SCHEDULE!r}
    "linear_decay" lowers the rate linearly to zero over each fit.
batching : {{"padded", "balanced"}}, default={BATCHING!r}
    "padded": batches of `batch_size` rows, the remainder in a last, smaller batch (whose step
    weighs its few rows, and the bnn's KL term, like a full batch); "balanced": as many batches,
    their sizes differing by at most one, and the bnn's KL term divided by their number.
activation : {{"leaky_relu", "relu"}}, default={ACTIVATION!r}
    Activation of the hidden layers.
input_transform : {{"none", "tanh"}}, default={INPUT_TRANSFORM!r}
    "tanh": inputs pass through 5 tanh(x / 5) first, soft-clipping standardised inputs beyond
    5 standard deviations.
parametrization : {{"standard", "ntk"}}, default={PARAMETRIZATION!r}
    "standard": x W + b, Glorot-initialised; "ntk": the neural-tangent parametrisation
    (0.2 / sqrt(fan_in)) x W + 0.2 b with standard-normal variables.
nll_beta : float, default={NLL_BETA}
    beta-NLL: the Gaussian negative log-likelihood weighted per point by
    stop_gradient(noise std^2)^nll_beta (0: the plain likelihood, 1: squared-error gradients
    for the mean).
retrain_from : {{"previous", "initial"}}, default={RETRAIN_FROM!r}
    With `warm_start`, where the next fit starts: the current weights or the initial ones.
calibration : {{"holdout", "none"}}, default={CALIBRATION!r}
    "holdout": each fit also trains a copy of the model on the training rows minus a held-out
    share (`calibration_fraction`, keyed by random_state and the fit count) and scales the
    predictive variance as a * epistemic^2 + b * aleatoric^2, with (a, b) maximising the
    held-out rows' Gaussian log-likelihood (`calibration_` holds them); the model itself is
    still trained on every row, so its mean and function samples are unchanged. Costs a second
    training per fit. Fewer than 20 training rows: not calibrated. "none": the raw stds.
calibration_fraction : float, default={CALIBRATION_FRACTION}
    Share of the training rows held out for the calibration (at least 10 rows, at most half).
normalize_y : bool, default=False
    Standardise the target internally; predictions, stds, samples and features are reported
    in the target's units.
warm_start : bool, default=False
    When fitted already, the next `fit` is the next training phase (as the experiment loop's
    after an acquisition: Adam's moments reset, training draws keyed by the fit count)
    instead of a new model.
random_state : int, default={RANDOM_STATE}
    Keys every random draw (initial weights, data order, noise, function samples): the same
    random_state and data give the same model."""

_COMMON_ATTRIBUTES = """\
n_features_in_ : int
    Number of features seen during `fit`.
feature_names_in_ : ndarray of shape (n_features_in_,)
    Feature names seen during `fit`, only when X has string column names (a DataFrame).
y_mean_, y_scale_ : float
    The target's mean and std used by `normalize_y` (0 and 1 without it).
calibration_ : VarianceScales or None
    The fitted variance scales (epistemic, aleatoric), the held-out rows they were fitted on
    and the held-out log-likelihood before and after; None with calibration="none" or too few rows.
n_fits_ : int
    Fits (training phases) so far; keys the next phase's training draws.
history_ : list of dict
    One entry per evaluation: fit, epoch, n_train, train and validation RMSE and
    log-likelihood, in the target's units.
network_, trainer_ : objects
    The stacked TensorFlow model and its trainer (rebuilt from arrays after unpickling)."""

_DEFAULTS = {name: value for name, value in globals().items() if name.isupper() and not name.startswith("_")}


def _docstring(summary: str, extra_parameters: str) -> str:
    """A class docstring: the summary, then numpydoc Parameters (the model's own first) and Attributes."""
    parameters = extra_parameters.format(**_DEFAULTS) + "\n" + _COMMON_PARAMETERS.format(**_DEFAULTS)
    return (f"{inspect.cleandoc(summary)}\n\nParameters\n----------\n{parameters}\n\n"
            f"Attributes\n----------\n{_COMMON_ATTRIBUTES}\n")


class _StackedRegressor(RegressorMixin, BaseEstimator):
    """What the three estimators share; subclasses name their model and its extra parameters."""

    _model_name = ""

    def _store_parameters(self, parameters: dict) -> None:
        """__init__'s keywords, stored as given (scikit-learn's convention: no validation here)."""
        for name, value in parameters.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- scikit-learn's parameter protocol (get_params / set_params / repr from BaseEstimator) --
    @classmethod
    def _parameter_names(cls) -> list[str]:
        return list(cls._get_param_names())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return "network_" in self.__dict__ or "_pickled_model" in self.__dict__

    # -- validation: the config schema checks every value, with its messages ----------------------
    def _sections(self) -> dict:
        """The keywords that set config keys, as config sections (config.keyword_sections: the
        same names, or config.ESTIMATOR_NAMES), and the model's name."""
        sections = keyword_sections({name: getattr(self, name) for name in self._parameter_names()})
        sections.setdefault("parms", {})["name_model"] = self._model_name
        return sections

    def _validated_config(self):
        for name in ("normalize_y", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{type(self).__name__}: {name} must be True or False, got {getattr(self, name)!r}")
        if self.calibration not in CALIBRATIONS:
            choices = ", ".join(map(repr, CALIBRATIONS))
            raise ConfigError(f"{type(self).__name__}: calibration must be one of {choices}, got {self.calibration!r}")
        fraction = self.calibration_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ConfigError(f"{type(self).__name__}: calibration_fraction must be a number in (0, 1), got "
                              f"{fraction!r}")
        source = f"{type(self).__name__} parameters"
        config = config_from_dict(self._sections(), source)
        return config

    def _validated_x(self, X, *, reset: bool) -> np.ndarray:
        """X through scikit-learn's validate_data (its messages for sparse, complex, 1-D, empty and
        wrong-width input; n_features_in_ and feature_names_in_), then the finiteness check that
        names the first bad index."""
        X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        _check_finite(X, "X")
        return X

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, *, eval_every: int | None = None) -> _StackedRegressor:
        """Train on (X, y); returns self.

        A fit trains `n_epochs` epochs (or `n_steps` optimiser steps, in whole epochs), raised to
        at least `min_steps` steps; with warm_start and a fitted model it is the next training
        phase. Optional validation data (X_val, y_val) is evaluated every `eval_every` epochs
        (default: at the end) into `history_`. y of shape (n, 1) is ravelled with scikit-learn's
        DataConversionWarning."""
        config = self._validated_config()
        continuing = bool(self.warm_start) and self.__sklearn_is_fitted__()
        X, y = validate_data(self, X, y, reset=not continuing, dtype=np.float64, ensure_all_finite=False,
                             ensure_min_samples=2, y_numeric=True)
        _check_finite(X, "X")
        y = np.asarray(y, np.float64)
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if not continuing:
            self.y_mean_, self.y_scale_ = target_scale(y) if self.normalize_y else (0.0, 1.0)
            self._check_target_range(y)
            self._build(config)
            self.n_fits_ = 0
            self.history_ = []
        else:
            self._check_target_range(y)
            self.trainer_.reset_optimizer()
            if config.train_schedule.retrain_from == "initial":  # a fresh model, trained as the next phase
                fresh = build_model(config.parms.name_model, self.n_features_in_, config.net_config, config.parms,
                                    [self.random_state])
                self.network_.set_weights(fresh.get_weights())
        self.calibration_ = self._fit_calibration(X, y)
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

    def _fit_calibration(self, X: np.ndarray, y: np.ndarray) -> VarianceScales | None:
        """The variance scales from a copy of this model trained without a held-out share of the
        rows (keyed by random_state and the fit count), scored on that share; None when off or when
        there are too few rows. The copy is a separate model: this model's training is unchanged."""
        if self.calibration == "none" or len(y) < CALIBRATION_MIN_ROWS:
            return None
        rows = holdout_positions(len(y), self.calibration_fraction, int(self.random_state), int(self.n_fits_))
        keep = np.setdiff1d(np.arange(len(y)), rows)
        copy = clone(self).set_params(calibration="none", warm_start=False)
        copy.fit(X[keep], y[keep])
        mean, epistemic, aleatoric = copy._raw_predict(X[rows])
        return fit_variance_scales(y[rows] - mean, epistemic, aleatoric)

    def _check_target_range(self, y: np.ndarray) -> None:
        """The network computes in float32, squares included: refuse targets whose (scaled) size
        float32 cannot square (they would train as 0 or inf and predict orders of magnitude off)."""
        largest = float(np.max(np.abs(y - self.y_mean_))) / self.y_scale_
        if largest > TARGET_RANGE[1] or 0.0 < largest < TARGET_RANGE[0]:
            fix = "set normalize_y=True or rescale y" if not self.normalize_y else "rescale y"
            raise TargetScaleError(f"{type(self).__name__}: y's scale (max |y| = {largest:.3g}"
                                   f"{' after normalize_y' if self.normalize_y else ''}) is outside "
                                   f"{TARGET_RANGE[0]:g} to {TARGET_RANGE[1]:g}, which the float32 network can learn; "
                                   f"{fix}")

    def _build(self, config) -> None:
        self._fit_config = config  # what the network was built with: unpickling rebuilds it from this
        self.network_, self.trainer_ = build_model_and_trainer(config, self.n_features_in_, [self.random_state])

    def _x(self, X) -> np.ndarray:
        return np.asarray(X, np.float32)

    def _y(self, y) -> np.ndarray:
        return ((np.asarray(y, np.float64) - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _check_fitted(self, X) -> np.ndarray:
        try:
            check_is_fitted(self)
        except NotFittedError as error:
            raise EstimatorNotFittedError(f"{error} (this {type(self).__name__} is not fitted yet; call fit(X, y) "
                                          "first)") from None
        return self._validated_x(X, reset=False)

    # -- pickling: weights and Adam's state as arrays; the TensorFlow model is rebuilt on first use --
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        network, trainer = state.pop("network_", None), state.pop("trainer_", None)
        if network is not None:
            state["_pickled_model"] = (network.get_weights(), trainer.get_optimizer_state())
        return state

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: rebuild network_ and trainer_ of an unpickled model.
        if name in ("network_", "trainer_") and self.__dict__.get("_pickled_model") is not None:
            self._rebuild_model()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _rebuild_model(self) -> None:
        weights, optimizer_state = self.__dict__["_pickled_model"]
        config = self.__dict__["_fit_config"]
        network, trainer = build_model_and_trainer(config, self.n_features_in_, [config.seed])
        network.set_weights(weights)
        trainer.set_optimizer_state(optimizer_state)
        self.__dict__.update(network_=network, trainer_=trainer)
        del self.__dict__["_pickled_model"]

    # -- predictions --------------------------------------------------------------------------------
    def predict(self, X, return_std: bool = False, std_kind: str = "total", calibrated: bool = True):
        """Predictive mean (n,); with return_std, also the `std_kind` std: "total" (epistemic and
        aleatoric together, the predictive distribution's), "epistemic" (the model's uncertainty
        about the mean) or "aleatoric" (the learned noise). The stds are calibrated (see
        `calibration`) unless calibrated=False or the model has no `calibration_`."""
        if std_kind not in STD_KINDS:
            raise ValueError(f"std_kind must be one of {', '.join(STD_KINDS)}, got {std_kind!r}")
        X = self._check_fitted(X)
        mean, epistemic, aleatoric = self._raw_predict(X)
        if not return_std:
            return mean
        scales = self.__dict__.get("calibration_")
        if calibrated and scales is not None:
            epistemic, aleatoric = scales.apply(epistemic, aleatoric)
        return mean, {"total": np.sqrt(epistemic**2 + aleatoric**2), "epistemic": epistemic,
                      "aleatoric": aleatoric}[std_kind]

    def _raw_predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, epistemic and aleatoric std in the target's units, before calibration."""
        mean, epistemic, aleatoric = (np.asarray(t.numpy(), np.float64)[0] for t in self.network_.predict(self._x(X)))
        return mean * self.y_scale_ + self.y_mean_, epistemic * self.y_scale_, aleatoric * self.y_scale_

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
        return self.network_.has_features if hasattr(self, "network_") else model_entry(self._model_name).has_features

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
            raise EstimatorNotFittedError(f"this {type(self).__name__} is not fitted yet; there is nothing to save")
        calibration = self.__dict__.get("calibration_")
        header = {"class": type(self).__name__, "parameters": _jsonable(self.get_params()),
                  "fitted": {"n_features_in_": self.n_features_in_, "y_mean_": self.y_mean_,
                             "y_scale_": self.y_scale_, "n_fits_": self.n_fits_, "history_": self.history_,
                             "calibration_": None if calibration is None else calibration.as_dict()}}
        arrays = {f"weight_{i}": w for i, w in enumerate(self.network_.get_weights())}
        arrays.update({f"optimizer_{i}": v for i, v in enumerate(self.trainer_.get_optimizer_state())})
        return header, arrays


def _jsonable(parameters: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()}


class BNNRegressor(_StackedRegressor):
    __doc__ = _docstring(
        """Bayesian last-layer network (Hafner et al.'s "bbb").

    Leaky-ReLU (or ReLU) layers, a Bayesian linear output layer (factorised Gaussian posterior,
    Bayes by backprop) and a softplus noise head; with `ood_std_prior` set, a noise contrastive
    prior. Has the exact last-layer kernel (`features`).""",
        """weight_std : float, default={WEIGHT_STD}
    Prior std of the Bayesian output weights and their initial posterior std.
divergence_scale : float, default={DIVERGENCE_SCALE}
    Weight of the KL term (divided by batches per epoch).
ood_std_prior : float or None, default={OOD_STD_PRIOR}
    Noise contrastive prior: std of the output prior at perturbed inputs; None turns it off.
noise_std : float, default={NOISE_STD}
    Noise contrastive prior: std of the input perturbation (used only with ood_std_prior).
ncp_scale : float, default={NCP_SCALE}
    Noise contrastive prior: weight of its KL term (used only with ood_std_prior).
center_at_target : bool, default={CENTER_AT_TARGET}
    Noise contrastive prior: centre the output prior at the batch targets (else at zero).""")

    _model_name = "bnn"

    def __init__(self, *, weight_std: float = WEIGHT_STD, divergence_scale: float = DIVERGENCE_SCALE,
                 ood_std_prior: float | None = OOD_STD_PRIOR, noise_std: float = NOISE_STD,
                 ncp_scale: float = NCP_SCALE, center_at_target: bool = CENTER_AT_TARGET,
                 layer_sizes: Sequence[int] = LAYER_SIZES, learning_rate: float = LEARNING_RATE,
                 clip_gradient: float = CLIP_GRADIENT, batch_size: int = BATCH_SIZE, n_epochs: int = N_EPOCHS,
                 n_steps: int = N_STEPS, min_steps: int = MIN_STEPS, batching: str = BATCHING,
                 learning_rate_schedule: str = LEARNING_RATE_SCHEDULE, activation: str = ACTIVATION,
                 input_transform: str = INPUT_TRANSFORM, parametrization: str = PARAMETRIZATION,
                 nll_beta: float = NLL_BETA, retrain_from: str = RETRAIN_FROM, calibration: str = CALIBRATION,
                 calibration_fraction: float = CALIBRATION_FRACTION, normalize_y: bool = False,
                 warm_start: bool = False, random_state: int = RANDOM_STATE):
        self._store_parameters(locals())


class DropoutRegressor(_StackedRegressor):
    __doc__ = _docstring(
        """MC dropout (Gal & Ghahramani 2016) on every hidden layer.

    A function sample is one forward pass with one mask per layer shared by all points; the
    predictive mean and std come from 20 fixed dropout passes.""",
        """dropout_rate : float, default={DROPOUT_RATE}
    Dropout rate of every hidden layer, in (0, 1).""")

    _model_name = "dropout"

    def __init__(self, *, dropout_rate: float = DROPOUT_RATE, layer_sizes: Sequence[int] = LAYER_SIZES,
                 learning_rate: float = LEARNING_RATE, clip_gradient: float = CLIP_GRADIENT,
                 batch_size: int = BATCH_SIZE, n_epochs: int = N_EPOCHS, n_steps: int = N_STEPS,
                 min_steps: int = MIN_STEPS, batching: str = BATCHING,
                 learning_rate_schedule: str = LEARNING_RATE_SCHEDULE,
                 activation: str = ACTIVATION, input_transform: str = INPUT_TRANSFORM,
                 parametrization: str = PARAMETRIZATION, nll_beta: float = NLL_BETA, retrain_from: str = RETRAIN_FROM,
                 calibration: str = CALIBRATION, calibration_fraction: float = CALIBRATION_FRACTION,
                 normalize_y: bool = False, warm_start: bool = False, random_state: int = RANDOM_STATE):
        self._store_parameters(locals())


class EnsembleRegressor(_StackedRegressor):
    __doc__ = _docstring(
        """A deep ensemble (Lakshminarayanan et al. 2017) with a Gaussian likelihood.

    `ensemble_size` independently initialised networks; each member's mean function is one
    function sample (so `sample_functions` gives at most ensemble_size).""",
        """ensemble_size : int, default={ENSEMBLE_SIZE}
    Members of the ensemble (at least 2).""")

    _model_name = "ensemble"

    def __init__(self, *, ensemble_size: int = ENSEMBLE_SIZE, layer_sizes: Sequence[int] = LAYER_SIZES,
                 learning_rate: float = LEARNING_RATE, clip_gradient: float = CLIP_GRADIENT,
                 batch_size: int = BATCH_SIZE, n_epochs: int = N_EPOCHS, n_steps: int = N_STEPS,
                 min_steps: int = MIN_STEPS, batching: str = BATCHING,
                 learning_rate_schedule: str = LEARNING_RATE_SCHEDULE,
                 activation: str = ACTIVATION, input_transform: str = INPUT_TRANSFORM,
                 parametrization: str = PARAMETRIZATION, nll_beta: float = NLL_BETA, retrain_from: str = RETRAIN_FROM,
                 calibration: str = CALIBRATION, calibration_fraction: float = CALIBRATION_FRACTION,
                 normalize_y: bool = False, warm_start: bool = False, random_state: int = RANDOM_STATE):
        self._store_parameters(locals())


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
    layers = parameters.get("layer_sizes", list(_default("layer_sizes")))
    if isinstance(layers, list):
        members = parameters.get("ensemble_size", _default("ensemble_size")) \
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
    scales = fitted.get("calibration_")
    estimator.calibration_ = None if scales is None else VarianceScales(**scales)
    return estimator


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["BNNRegressor", "DropoutRegressor", "EnsembleRegressor", "load_estimator"]
