"""One typed definition of every configuration key, and the YAML loader that validates against it.

A config file has the sections below. Every key has a default (so a file may leave it out), a type,
and a range or a set of allowed values. Unknown keys are errors with a did-you-mean suggestion,
and every message names the file, the key and the fix, before any training starts.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from al_bnn.errors import InputError
from al_bnn.selection.comparison import REFERENCE_SELECTIONS


class ConfigError(InputError, ValueError):
    """A configuration file or value is invalid; the message names the file, key and fix."""


class _ShortRepr(reprlib.Repr):
    """reprlib with mappings in their own order (reprlib sorts them) and long strings cut."""

    def repr_dict(self, x: dict, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [f"{self.repr1(key, level - 1)}: {self.repr1(value, level - 1)}"
                  for key, value in list(x.items())[:self.maxdict]]
        return "{" + ", ".join(pieces) + (", ..." if len(x) > self.maxdict else "") + "}"


_short_repr = _ShortRepr()
_short_repr.maxstring = _short_repr.maxother = 80
_short_repr.maxlist = _short_repr.maxdict = _short_repr.maxtuple = _short_repr.maxset = 8
_short_repr.maxlevel = 3
_short_repr.maxlong = 40
SHORT_REPR_CHARS = 160  # the longest a value may take in a message


def short_repr(value: Any) -> str:
    """repr() for an error message: a value from a user's file may be huge (or, through YAML aliases,
    a shared tree far larger than the file), so lists, mappings and strings are cut short with `...`
    and the whole is at most SHORT_REPR_CHARS characters; small values read exactly as repr()."""
    try:
        text = _short_repr.repr(value)
    except Exception:  # a type whose repr fails: name the type instead
        text = f"<{type(value).__name__}>"
    return short_text(text)


def short_text(text: str) -> str:
    """`text` cut to SHORT_REPR_CHARS characters for an error message."""
    return text if len(text) <= SHORT_REPR_CHARS else text[:SHORT_REPR_CHARS - 3] + "..."


def _key(default: Any, help: str, *, minimum: float | None = None, exclusive_minimum: bool = False,
         maximum: float | None = None, exclusive_maximum: bool = False, choices: tuple | None = None,
         nullable: bool = False) -> Any:
    """A dataclass field carrying its documentation and its allowed range."""
    meta = dict(help=help, minimum=minimum, exclusive_minimum=exclusive_minimum, maximum=maximum,
                exclusive_maximum=exclusive_maximum, choices=choices, nullable=nullable)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ActiveLearningSchedule:
    al_iter: int = _key(5, "Number of acquisitions after the initial training phase.", minimum=0)
    num_al_incr: int = _key(200, "Pool points labelled per acquisition.", minimum=1)
    num_train_init: int = _key(500, "Random pool points labelled before the first acquisition "
                                     "(identical across policies for the same seed).", minimum=1)


@dataclass
class NetConfig:
    layer_sizes: list = _key([100, 100], "Widths of the dense leaky-ReLU hidden layers.")
    learning_rate: float = _key(1e-4, "Adam learning rate.", minimum=0.0, exclusive_minimum=True)
    divergence_scale: float = _key(1.0, "Weight of the KL term (divided by batches per epoch).",
                                   minimum=0.0)
    weight_std: float = _key(0.1, "Prior std of the Bayesian output weights and initial posterior std.",
                             minimum=0.0, exclusive_minimum=True)
    clip_gradient: float = _key(100.0, "Global-norm gradient clipping threshold (per run).",
                                minimum=0.0, exclusive_minimum=True)
    dropout_rate: float = _key(0.0, "Dropout rate of every hidden layer for `name_model: dropout` (in (0, 1)); "
                                    "must be 0 for the other models.",
                               minimum=0.0, maximum=1.0, exclusive_maximum=True)
    noise_std: float = _key(0.1, "NCP: std of the Gaussian noise that perturbs the inputs (standardised "
                                 "units; used only when ood_std_prior is set).", minimum=0.0)
    ncp_scale: float = _key(0.1, "NCP: weight of its KL term (used only when ood_std_prior is set).", minimum=0.0)
    ood_std_prior: float | None = _key(None, "NCP: std of the output prior at perturbed inputs; a number turns "
                                             "noise contrastive priors on, null (the published setting) off.",
                                       nullable=True, minimum=0.0, exclusive_minimum=True)
    center_at_target: bool = _key(True, "NCP: centre the output prior at the batch targets (else at zero).")
    activation: str = _key("leaky_relu", "Activation of the hidden layers.", choices=("leaky_relu", "relu"))
    input_transform: str = _key("none", "`none`: inputs as given (standardised). `tanh`: 5 tanh(x / 5) first, which "
                                        "soft-clips inputs beyond 5 standard deviations.", choices=("none", "tanh"))
    parametrization: str = _key("standard", "`standard`: x W + b, Glorot-initialised. `ntk`: neural-tangent "
                                            "parametrisation, (0.2 / sqrt(fan_in)) x W + 0.2 b with standard-normal "
                                            "variables, so one learning rate acts per layer as lr 0.2 / sqrt(fan_in) "
                                            "(use learning rates near 0.1-0.4).", choices=("standard", "ntk"))
    nll_beta: float = _key(0.0, "Training loss: the Gaussian negative log-likelihood weighted per point by "
                                "stop_gradient(noise std^2)^nll_beta (beta-NLL); 1 gives the mean squared-error "
                                "gradients, 0 (published) the plain likelihood.", minimum=0.0, maximum=1.0)


@dataclass
class SamplingParameters:
    name_model: str = _key("bnn", "Model: `bnn` (Bayesian last layer, Hafner et al.'s bbb; NCP with "
                                  "`ood_std_prior`), `dropout` (MC dropout) or `ensemble` (deep ensemble), or a "
                                  "registered one (al_bnn.registry).")
    ensemble_size: int = _key(5, "Members per run for `name_model: ensemble`; each member's mean is one "
                                 "function sample (so T = ensemble_size and n_mc_samples is not used).", minimum=2)
    sample_policy: str = _key("gpa", "Sampler name from the registry (`random`, `gpa` = fast GPA, "
                                     "`bgpa` = batch GPA, `lrgpa` = low-rank GPA, `mcdue` = top MC variance, "
                                     "the selection family `maxdiag`, `maxdet`, `maxdist`, `kmeanspp`, `lcmd`, "
                                     "`bait` (README: The selection family), or a user-registered one).")
    n_mc_samples: int = _key(100, "Function samples T drawn per acquisition for the GP kernel.",
                             minimum=2)
    sampling_batch_size: int = _key(10, "Points picked per greedy round before conditioning on them.",
                                    minimum=1)
    gp_noise: float = _key(0.01, "GP noise lambda added to the conditioning set's kernel.",
                           minimum=0.0, exclusive_minimum=True)
    function_samples: str = _key("joint", "`joint`: one weight draw shared by all points per sample "
                                          "(correct). `marginal`: an independent draw per point, as the "
                                          "thesis code did (off-diagonal covariance is pure noise).",
                                 choices=("joint", "marginal"))
    gpa_kernel: str = _key("mc", "`mc`: kernel = covariance of the function samples. `exact`: "
                                 "closed-form last-layer kernel (Gram matrix of the features). Or any registered "
                                 "kernel (al_bnn.registry), e.g. `grad`.")
    gpa_dtype: str = _key("float64", "Floating-point precision of the GPA and selection-family math "
                          "(and of the stored gradient features of `family_kernel: grad`).",
                          choices=("float64", "float32"))
    compare_with: list = _key([], "Reference selections made at every acquisition from the same model state, "
                                  "recording how far the run's picks agree with each (overlap, picks before the "
                                  "first differing round, seconds): `exact` (closed-form kernel, bnn only) or "
                                  "method_precision on the run's own samples, e.g. `fast_float32`, "
                                  "`batch_float64`, `lowrank_float32`. Costs their selection time; [] = none.",
                             choices=REFERENCE_SELECTIONS)
    resample_every_round: bool = _key(False, "bgpa only: redraw function samples every greedy round "
                                             "(thesis behaviour); default keeps one draw, like gpa.")
    family_kernel: str = _key("mc", "Selection family (maxdiag, maxdet, maxdist, kmeanspp, lcmd, bait): the kernel's "
                                    "features. `mc`: centred function samples / sqrt(T). `exact`: the closed-form "
                                    "last-layer features (bnn only). `grad`: the gradient of the mean output w.r.t. "
                                    "every weight (finite-width NTK), sketched to family_sketch_dim columns (any "
                                    "model; README: The selection family), or a registered kernel (al_bnn.registry).")
    family_mode: str = _key("auto", "Selection family: `p` selects from the pool alone, `tp` counts the training "
                                    "points as selected; `auto` = the paper's choice (tp for maxdist, kmeanspp, lcmd; "
                                    "p for maxdiag, maxdet, bait).", choices=("auto", "p", "tp"))
    family_transform: str = _key("auto", "Selection family: `train` conditions the kernel on the training set with "
                                         "noise gp_noise first (the paper's posterior transform), `none` does not; "
                                         "`auto` = train for maxdiag, maxdet, bait and none for the distance methods.",
                                 choices=("auto", "none", "train"))
    family_sketch_dim: int = _key(512, "Selection family: project features wider than this onto this many "
                                       "dimensions by a seeded Gaussian random projection (0 = never); with "
                                       "family_kernel `grad`, the gradient features' width (0 = exact gradients, "
                                       "one column per weight: small networks only).", minimum=0)


@dataclass
class TrainSchedule:
    batch_size: int = _key(16, "Minibatch size.", minimum=1)
    learning_rate_schedule: str = _key("constant", "`constant`: the learning rate throughout. `linear_decay`: "
                                                   "from the learning rate down to zero over each training phase.",
                                       choices=("constant", "linear_decay"))
    num_epochs: int = _key(1000, "Epochs per training phase (initial, and after each acquisition).",
                           minimum=1)
    num_steps: int = _key(0, "Optimiser steps per training phase instead of num_epochs (0 = use num_epochs): each "
                             "phase trains ceil(num_steps / batches per epoch) epochs, so a small training set gets "
                             "as many steps as a large one.", minimum=0)
    batching: str = _key("padded", "How an epoch's rows fill its minibatches. `padded`: batch_size rows each, the "
                                   "last batch holding the remainder (the reference code's). `balanced`: the same "
                                   "number of batches, rows spread so their sizes differ by at most one, and the "
                                   "bnn's KL term divided by that number: no step on a small last batch, which "
                                   "weighs its few rows (and the KL term) like a full batch.",
                         choices=("padded", "balanced"))
    min_steps: int = _key(0, "At least this many optimiser steps per training phase: the phase's epochs are raised "
                             "to ceil(min_steps / batches per epoch) where num_epochs (or num_steps) give fewer, so "
                             "a small training set is not under-trained (0 = no minimum).", minimum=0)
    retrain_from: str = _key("previous", "Where each training phase after an acquisition starts: `previous` "
                                         "continues from the last phase's weights (the published loop), `initial` "
                                         "retrains from the run's initial weights, as a fresh model would "
                                         "(warm-started networks generalise worse).", choices=("previous", "initial"))
    calibration: str = _key("none", "Variance recalibration of the loop's models (docs/models.md, Calibrated "
                                    "uncertainty): `holdout` trains a copy of each phase's model without a held-out "
                                    "share of its training rows (`calibration_fraction`, keyed by seed and phase), "
                                    "fits std^2 = a epistemic^2 + b aleatoric^2 on those rows and records the phase's "
                                    "last test log-likelihood and 90% coverage calibrated (the raw ones as *_raw); "
                                    "selection uses the raw model. Costs a second training per phase. `none`: raw "
                                    "metrics only.",
                            choices=("none", "holdout"))
    calibration_fraction: float = _key(0.2, "With calibration `holdout`: the share of each phase's training rows held "
                                            "out (at least 10 rows, at most half; phases under 20 rows are not "
                                            "calibrated).", minimum=0.0, exclusive_minimum=True, maximum=1.0,
                                       exclusive_maximum=True)
    eval_after_epochs: int = _key(10, "Evaluate train/test metrics every this many epochs.", minimum=1)
    log_after_epochs: int = _key(500, "Write a log line every this many epochs.", minimum=1)


    def epochs_for(self, n_train: int) -> int:
        """Epochs of a training phase on n_train points."""
        batches = -(-int(n_train) // self.batch_size)
        epochs = self.num_epochs if not self.num_steps else max(1, -(-self.num_steps // batches))
        return max(epochs, -(-self.min_steps // batches))


@dataclass
class DataConfig:
    dataset: str = _key("housing", "`housing` (California housing, 5 features, the published fixed split), "
                                   "a folder name under the UCI root (split by seed), or `file` (see `path`).")
    uci_root: str | None = _key(None, "Folder of UCI datasets (`<name>/data.txt`, `index_features.txt`, "
                                      "`index_target.txt`); null = $UCI_DATA_DIR, else the repository's data/uci.",
                                nullable=True)
    path: str | None = _key(None, "With dataset `file`: a .csv (needs `target`) or .npz (arrays x, y) file.",
                            nullable=True)
    target: str | None = _key(None, "With a CSV file: the target column's name or index.", nullable=True)
    test_fraction: float = _key(0.2, "Test share of the seeded split (datasets without a fixed split).",
                                minimum=0.0, exclusive_minimum=True, maximum=1.0, exclusive_maximum=True)
    size_pool: int = _key(0, "Subsample the pool to this many points (0 = full pool).", minimum=0)
    size_test: int = _key(0, "Subsample the test set to this many points (0 = full test set).",
                          minimum=0)
    validation_fraction: float = _key(0.0, "Above 0: hold out this share of the pool, by seed, and evaluate on it "
                                           "instead of the test set, which the run then never uses (for choosing "
                                           "settings without touching the test set; metrics named test_* are then "
                                           "the validation set's).", minimum=0.0, maximum=1.0,
                                      exclusive_maximum=True)


@dataclass
class ExperimentConfig:
    seed: int = _key(0, "Run seed: initial set, weights, data order, weight noise, samples.", minimum=0)
    al_schedule: ActiveLearningSchedule = field(default_factory=ActiveLearningSchedule,
                                                metadata=dict(help="Active-learning schedule."))
    net_config: NetConfig = field(default_factory=NetConfig, metadata=dict(help="Network."))
    parms: SamplingParameters = field(default_factory=SamplingParameters,
                                      metadata=dict(help="Model and sampler."))
    train_schedule: TrainSchedule = field(default_factory=TrainSchedule,
                                          metadata=dict(help="Training schedule."))
    data: DataConfig = field(default_factory=DataConfig, metadata=dict(help="Data."))

    @property
    def final_train_size(self) -> int:
        s = self.al_schedule
        return s.num_train_init + s.al_iter * s.num_al_incr

    def phase_epochs(self) -> list[int]:
        """Epochs of each training phase (0 = the initial set): num_epochs each, or with
        train_schedule.num_steps as many as the phase's training-set size needs for that many steps."""
        s = self.al_schedule
        sizes = [s.num_train_init + phase * s.num_al_incr for phase in range(s.al_iter + 1)]
        return [self.train_schedule.epochs_for(size) for size in sizes]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def training_signature(self) -> tuple:
        """Everything that must match for two runs to be trained side by side in one stack."""
        return (repr(dataclasses.asdict(self.al_schedule)), repr(dataclasses.asdict(self.net_config)),
                repr(dataclasses.asdict(self.train_schedule)), repr(dataclasses.asdict(self.data)),
                self.parms.name_model, self.parms.ensemble_size if self.parms.name_model == "ensemble" else None)


_SECTIONS = {f.name: f for f in dataclasses.fields(ExperimentConfig)}


def _section_fields(section: str) -> dict[str, dataclasses.Field]:
    section_cls: Any = _SECTIONS[section].default_factory  # a section: its dataclass
    return {f.name: f for f in dataclasses.fields(section_cls)}


def schema_field(key: str) -> dataclasses.Field:
    """The schema's field of a key: `seed`, or `section.key` such as `train_schedule.num_epochs`."""
    section, _, name = key.rpartition(".")
    return _section_fields(section)[name] if section else _SECTIONS[name]


def key_default(key: str) -> Any:
    """The schema's default of a key (`section.key`, or `seed`); a fresh copy for a list."""
    f = schema_field(key)
    factory: Any = f.default_factory
    return f.default if f.default is not dataclasses.MISSING else factory()


def check_key(key: str, value: Any, where: str) -> Any:
    """One value checked as the schema checks `key` in a config file (type, allowed values, range),
    for files that carry a config key outside a config's sections (a sweep's test_fraction);
    the value to use, or a ConfigError whose message starts with `where`."""
    return _check_value(value, schema_field(key), where)


def config_value(config: ExperimentConfig, key: str) -> Any:
    """A config's value of a key (`seed`, `net_config.layer_sizes`)."""
    section, _, name = key.rpartition(".")
    return getattr(getattr(config, section) if section else config, name)


# The estimators' keywords (BNNRegressor, DropoutRegressor, EnsembleRegressor) that set a config key
# have the key's own name in one of these sections (layer_sizes, batch_size, ensemble_size, ...) ...
ESTIMATOR_SECTIONS = ("net_config", "train_schedule", "parms")
# ... except for these deliberate differences (scikit-learn's random_state; n_epochs and n_steps
# as its estimators name them): keyword -> config key. Every mapping between the two reads them here.
ESTIMATOR_NAMES: dict[str, str] = {"n_epochs": "train_schedule.num_epochs", "n_steps": "train_schedule.num_steps",
                                   "random_state": "seed"}
# An estimator's default is the default model recipe's value (al_bnn.recipe), else the schema's,
# except for these deliberate differences: the schema's dropout_rate 0.0 means "no dropout" (the
# other models need it), while DropoutRegressor needs a rate in (0, 1); the schema's defaults stay
# the published loop's (uncalibrated), while an estimator is calibrated unless told otherwise.
ESTIMATOR_DEFAULTS: dict[str, Any] = {"dropout_rate": 0.1, "calibration": "holdout"}


def estimator_config_key(keyword: str) -> str | None:
    """The config key (`section.key` or `seed`) an estimator keyword sets, or None for the
    estimators' own keywords (normalize_y, warm_start)."""
    if keyword in ESTIMATOR_NAMES:
        return ESTIMATOR_NAMES[keyword]
    for section in ESTIMATOR_SECTIONS:
        if keyword in _section_fields(section):
            return f"{section}.{keyword}"
    return None


def estimator_keywords(config: ExperimentConfig, keywords: Iterable[str]) -> dict[str, Any]:
    """Of an estimator's `keywords`, those that set a config key, with this config's values. A
    keyword whose default deliberately differs (ESTIMATOR_DEFAULTS) is left out where the config
    holds the schema's default, so the estimator keeps its own (a config at the published defaults
    still gives a calibrated estimator)."""
    values = {}
    for keyword in keywords:
        key = estimator_config_key(keyword)
        if key is None:
            continue
        value = config_value(config, key)
        if keyword not in ESTIMATOR_DEFAULTS or value != key_default(key):
            values[keyword] = copy.deepcopy(value)
    return values


def keyword_sections(values: Mapping[str, Any]) -> dict[str, Any]:
    """Estimator keywords with values as config sections ({"net_config": {...}, "seed": 0}) for
    config_from_dict, whose messages then name the config key; a tuple for a list key (an
    estimator's layer_sizes) becomes a list. Keywords that set no config key are left out."""
    sections: dict[str, Any] = {}
    for keyword, value in values.items():
        key = estimator_config_key(keyword)
        if key is None:
            continue
        if isinstance(value, tuple) and str(schema_field(key).type).split(" |")[0] == "list":
            value = list(value)
        section, _, name = key.rpartition(".")
        if section:
            sections.setdefault(section, {})[name] = value
        else:
            sections[name] = value
    return sections


def _type_name(tp: Any) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
            "list": "a list"}.get(str(tp).split(" |")[0], str(tp))


def _number_hint(value: Any, integer: bool = False) -> str:
    """For text that YAML 1.2 would read as a number (`1e-4`, `0o17`): how to write it so YAML 1.1,
    which this package reads, does too."""
    if not isinstance(value, str) or len(value) > 40:
        return ""
    number = _yaml12_value(value)
    if integer and isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int if integer else (int, float)):
        return ""
    if isinstance(number, float) and not math.isfinite(number):
        return ""
    return f" (YAML 1.1, which this package reads, takes it as text; write {_yaml_scalar(number)} instead)"


def _yaml_scalar(value: Any) -> str:
    """How PyYAML writes a bool or a number (so that YAML 1.1 reads it back as that value)."""
    return yaml.safe_dump(value).removesuffix("...\n").strip()


def _checked_bool(value: Any, where: str) -> Any:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {short_repr(value)}.")
    return value


def _checked_int(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {short_repr(value)}{_number_hint(value, True)}.")
    return value


def _checked_float(value: Any, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {short_repr(value)}{_number_hint(value)}.")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {short_repr(value)}.")
    return value


def _checked_str(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {short_repr(value)}.")
    return value


def _checked_list(value: Any, choices: tuple | None, where: str) -> list:
    """A list key: distinct names from `choices` where it has them, else positive integers (layer sizes)."""
    if choices is not None:
        if (not isinstance(value, list) or any(not isinstance(v, str) or v not in choices for v in value)
                or len(set(value)) != len(value)):
            raise ConfigError(f"{where}: expected a list of distinct names from {', '.join(choices)}, "
                              f"got {short_repr(value)}.")
        return list(value)
    if (not isinstance(value, list) or not value
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)):
        raise ConfigError(f"{where}: expected a non-empty list of positive integers such as "
                          f"[100, 100], got {short_repr(value)}.")
    return list(value)


_SCALAR_CHECKS = {"int": _checked_int, "float": _checked_float, "str": _checked_str}


def _check_allowed(value: Any, meta: Any, where: str) -> None:
    """A scalar's allowed values and range, from its field's metadata."""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: {short_repr(value)} is not allowed; choose one of "
                          f"{', '.join(map(repr, choices))}.")
    low, high = meta.get("minimum"), meta.get("maximum")
    if low is not None and (value < low or (meta.get("exclusive_minimum") and value == low)):
        bound = ">" if meta.get("exclusive_minimum") else ">="
        raise ConfigError(f"{where}: {short_repr(value)} is out of range; it must be {bound} {low}.")
    if high is not None and (value > high or (meta.get("exclusive_maximum") and value == high)):
        bound = "<" if meta.get("exclusive_maximum") else "<="
        raise ConfigError(f"{where}: {short_repr(value)} is out of range; it must be {bound} {high}.")


def _check_value(value: Any, f: dataclasses.Field, where: str) -> Any:
    """`value` for the key `f` (its type, then its allowed values and range): the value to use,
    or a ConfigError whose message starts with `where`."""
    meta = f.metadata
    base = str(f.type).split(" |")[0]
    if value is None:
        if meta.get("nullable"):
            return None
        raise ConfigError(f"{where}: must not be null; give {_type_name(base)} (default {f.default!r}).")
    if base == "bool":
        return _checked_bool(value, where)
    if base == "list":
        return _checked_list(value, meta.get("choices"), where)
    if base in _SCALAR_CHECKS:
        value = _SCALAR_CHECKS[base](value, where)
    _check_allowed(value, meta, where)
    return value


def _unknown_key_message(key: str, allowed: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean {short_repr(close[0])}?" if close else ""
    return f"{where}: unknown key {short_repr(key)}.{hint} Allowed keys: {', '.join(allowed)}."


def config_from_dict(raw: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a parsed YAML mapping against the schema; missing keys take their defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}.")
    values: dict[str, Any] = {}
    for key, value in _checked_sections(raw, source).items():
        section_cls: Any = _SECTIONS[key].default_factory  # a section: its dataclass
        values[key] = section_cls(**value) if isinstance(value, dict) else value
    config = ExperimentConfig(**values)
    check_consistency(config, source)
    return config


def _checked_sections(raw: dict, source: str, prefix: str = "") -> dict[str, Any]:
    """Each key of a mapping of config sections checked against the schema: top-level key -> its
    value, or a section -> the mapping of its checked values. `prefix` (e.g. `experiment.`) is where
    the sections sit in the file, for the messages."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _SECTIONS:
            where = f"{source}: key '{prefix[:-1]}'" if prefix else source
            raise ConfigError(_unknown_key_message(str(key), list(_SECTIONS), where))
        f = _SECTIONS[key]
        if not dataclasses.is_dataclass(f.default_factory if f.default is dataclasses.MISSING else None):
            values[key] = _check_value(value, f, f"{source}: key '{prefix}{key}'")
            continue
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section '{prefix}{key}' must be a mapping, got {short_repr(value)}.")
        fields = _section_fields(key)
        section_values = {}
        for sub_key, sub_value in value.items():
            if sub_key not in fields:
                where = f"{source}: section '{prefix}{key}'"
                raise ConfigError(_unknown_key_message(str(sub_key), list(fields), where))
            section_values[sub_key] = _check_value(sub_value, fields[sub_key],
                                                   f"{source}: key '{prefix}{key}.{sub_key}'")
        values[key] = section_values
    return values


def check_sections(raw: Any, source: str, key: str) -> None:
    """Check part of a config that is merged into whole configs later (a sweep's `experiment`, or
    its settings for one model or sampler; `key` names where it sits in `source`): a mapping of
    sections whose every key is known and every value valid, with the messages of a config file.
    The cross-key checks wait for the merged config (config_from_dict)."""
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key '{key}' must be a mapping of config sections (net_config, parms, ...), "
                          f"got {short_repr(raw)}.")
    _checked_sections(raw, source, f"{key}.")


def check_consistency(config: ExperimentConfig, source: str = "<config>") -> None:
    """Cross-key checks that a single key's range cannot express."""
    _check_sampler_name(config.parms, source)
    _check_model_keys(config, source)
    _check_sampling_keys(config, source)
    _check_data_keys(config, source)


def _check_sampler_name(parms: SamplingParameters, source: str) -> None:
    from al_bnn.selection import sampler_names  # late import: the registry may be extended at run time

    if parms.sample_policy not in sampler_names():
        raise ConfigError(_unknown_key_message(parms.sample_policy, sampler_names(),
                                               f"{source}: key 'parms.sample_policy'").replace(
            "unknown key", "unknown sampler").replace("Allowed keys", "Registered samplers"))


def _check_model_keys(config: ExperimentConfig, source: str) -> None:
    """The model and kernel names (registered ones, plug-ins included) and the keys that only some
    models read (dropout_rate, the closed-form features, NCP, marginal samples)."""
    from al_bnn.registry import model_entry  # late import: plug-ins may register more models and kernels

    parms, net = config.parms, config.net_config
    model = parms.name_model
    entry = model_entry(model, f"{source}: key 'parms.name_model'")
    if "dropout_rate" in entry.options and net.dropout_rate == 0.0:
        raise ConfigError(f"{source}: key 'net_config.dropout_rate' is 0.0, but `name_model: {model}` needs a rate "
                          "in (0, 1), e.g. 0.1.")
    if "dropout_rate" not in entry.options and net.dropout_rate != 0.0:
        raise ConfigError(f"{source}: key 'net_config.dropout_rate' is {net.dropout_rate!r}, but the `{model}` "
                          f"model has no dropout; set it to 0.0 or use name_model: {_models_that('dropout_rate')}.")
    for key, value, default in (("net_config.ood_std_prior", net.ood_std_prior, None),
                                ("parms.function_samples", parms.function_samples, "joint")):
        if value != default and key.split(".")[1] not in entry.options:
            raise ConfigError(f"{source}: key '{key}' is {value!r}, which only the {_models_that(key.split('.')[1])} "
                              f"model supports; set it to {default!r} for `{model}`.")
    _check_kernel_names(parms, entry.has_features, source)


def _models_that(option: str) -> str:
    """`bnn` (or `a`, `b`): the registered models that read a model-specific key (or have features)."""
    from al_bnn.registry import models_with

    names = models_with(lambda entry: entry.has_features if option == "features" else option in entry.options)
    return ", ".join(f"`{name}`" for name in names) or "no registered"


def _check_kernel_names(parms: SamplingParameters, has_features: bool, source: str) -> None:
    """gpa_kernel and family_kernel name registered kernels, and one that needs the model's closed-form
    features (`exact`) is given only for a model that has them (as is compare_with's `exact`)."""
    from al_bnn.registry import kernel_entry

    model = parms.name_model
    for key, value, instead in (("parms.gpa_kernel", parms.gpa_kernel, "'mc'"),
                                ("parms.family_kernel", parms.family_kernel, "'mc' or 'grad'")):
        if kernel_entry(value, f"{source}: key '{key}'").needs_model_features and not has_features:
            raise ConfigError(f"{source}: key '{key}' is {value!r}, which only the {_models_that('features')} model "
                              f"supports; set it to {instead} for `{model}`.")
    if "exact" in parms.compare_with and not has_features:
        raise ConfigError(f"{source}: key 'parms.compare_with' names 'exact', the closed-form kernel only the "
                          f"{_models_that('features')} model has; remove it for `{model}`.")


def _check_sampling_keys(config: ExperimentConfig, source: str) -> None:
    parms, net = config.parms, config.net_config
    if net.ood_std_prior is not None and net.noise_std <= 0:
        raise ConfigError(f"{source}: key 'net_config.noise_std' is {net.noise_std!r}, but noise contrastive "
                          "priors (ood_std_prior set) need input noise > 0.")
    if parms.resample_every_round and (parms.sample_policy != "bgpa" or parms.gpa_kernel != "mc"):
        raise ConfigError(f"{source}: key 'parms.resample_every_round' is true, which only batch GPA with "
                          "Monte-Carlo samples supports; use sample_policy: bgpa with gpa_kernel: mc, or set "
                          "it to false.")
    if parms.resample_every_round and parms.compare_with:
        raise ConfigError(f"{source}: key 'parms.compare_with' needs the samples the run's sampler saw, but "
                          "'parms.resample_every_round' redraws them every round; use one or the other.")


def _check_data_keys(config: ExperimentConfig, source: str) -> None:
    data = config.data
    if data.dataset == "file" and not data.path:
        raise ConfigError(f"{source}: key 'data.dataset' is 'file' but 'data.path' is not set; give a .csv or "
                          ".npz file.")
    if data.size_pool and data.size_pool < config.final_train_size:
        raise ConfigError(f"{source}: key 'data.size_pool' is {data.size_pool}, but the schedule labels "
                          f"{config.final_train_size} points (num_train_init + al_iter * num_al_incr); "
                          "use a larger pool (0 = full) or a shorter schedule.")


MAX_YAML_BYTES = 1_000_000  # a config, sweep or manifest file larger than this is refused before parsing
MAX_ALIAS_VALUES = 100_000  # values that aliases (*name, <<: *name) may add to a document beyond those written
MAX_YAML_DEPTH = 64  # lists and mappings nested deeper than this are refused (a config needs 3 or 4)
_SATURATED = 10**9  # expanded sizes are counted up to here: the message needs no more


# libyaml's parser where PyYAML has it: several times faster, with a nesting limit of its own
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SAFE_LOADER):
    """A safe YAML loader that refuses a key given twice in one mapping (plain YAML keeps the last)
    and a plain value that YAML 1.1 (PyYAML, which the package also writes with) and YAML 1.2 read
    differently, e.g. `010` (8 or 10), `1:30` (90 or text), `yes` / `no` / `on` / `off` (booleans or
    text): such a value is a ConfigError naming it, its line and how to write it unambiguously."""


def _construct_mapping_once(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first_line: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges defaults that explicit keys may override
        key = loader.construct_object(key_node, deep=True)
        try:
            earlier = first_line.get(key)
        except TypeError:  # an unhashable key: the standard constructor reports it
            break
        mark = key_node.start_mark
        if earlier is not None:
            where = (f"on lines {earlier.line + 1} and {mark.line + 1}" if earlier.line != mark.line else
                     f"on line {mark.line + 1}, columns {earlier.column + 1} and {mark.column + 1}")
            raise ConfigError(f"{loader.name}: key {short_repr(key)} is given twice, {where}; YAML would silently "
                              "keep only the second. Remove one of them.")
        first_line[key] = mark
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


# YAML 1.2's core schema for plain scalars (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_YAML12_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_YAML12_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_YAML12_SPECIAL_FLOAT = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


def _yaml12_value(text: str) -> Any:
    """What a YAML 1.2 (core schema) reader makes of a plain scalar that YAML 1.1 reads as a boolean
    or a number: a bool, int or float, or the text itself."""
    if _YAML12_BOOL.fullmatch(text):
        return text[0] in "tT"
    if _YAML12_INT.fullmatch(text):
        return int(text[2:], 8) if text[:2] == "0o" else int(text[2:], 16) if text[:2] == "0x" else int(text, 10)
    if _YAML12_FLOAT.fullmatch(text):
        return float(text)
    if _YAML12_SPECIAL_FLOAT.fullmatch(text):
        return float(text.lower().replace(".", ""))
    return text


def _same_value(first: Any, second: Any) -> bool:
    if type(first) is not type(second):
        return False
    return first == second or (isinstance(first, float) and math.isnan(first) and math.isnan(second))


def _constructor_agreeing_with_yaml12(tag: str):
    standard = yaml.constructor.SafeConstructor.yaml_constructors[tag]

    def construct(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
        value = standard(loader, node)
        if not node.style:  # plain, not quoted (None from PyYAML's parser, '' from libyaml's)
            other = _yaml12_value(node.value)
            if not _same_value(value, other):
                meant = _yaml_scalar(value)
                read = (f"the text {short_repr(other)}" if isinstance(other, str) else short_repr(other))
                raise ConfigError(
                    f"{loader.name}: line {node.start_mark.line + 1}: the value {short_text(node.value)} is "
                    f"{short_repr(value)} to YAML 1.1 (this reader) but {read} to YAML 1.2; write {meant} if you "
                    f"mean {short_repr(value)}, or quote it ({short_repr(node.value)}) if it is text.")
        return value

    return construct


for _tag in ("bool", "int", "float"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}",
                                  _constructor_agreeing_with_yaml12(f"tag:yaml.org,2002:{_tag}"))
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_once)


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_alias_expansion(root: yaml.Node, source: str) -> None:
    """Refuse a document whose aliases repeat a value that contains itself, or add more than
    MAX_ALIAS_VALUES values to those written (an alias bomb: a few hundred bytes that expand to
    billions of values, and to gigabytes once anything copies or prints them). Counted on the
    composed nodes, where an alias is a shared node, without expanding anything. Nesting deeper than
    MAX_YAML_DEPTH is refused too (code that walks the values recursively would fail on it)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    on_path: set[int] = set()
    written = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = min(_SATURATED, 1 + sum(sizes[id(child)] for child in children))
            depths[key] = 1 + max((depths[id(child)] for child in children), default=0)
            if depths[key] > MAX_YAML_DEPTH:
                raise ConfigError(f"{source}: line {node.start_mark.line + 1}: lists and mappings nested more than "
                                  f"{MAX_YAML_DEPTH} deep; flatten them.")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError(f"{source}: line {node.start_mark.line + 1}: an alias (*name) repeats a value inside "
                              "itself, a structure without end; write the values out instead.")
        on_path.add(key)
        written += 1
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    total = sizes[id(root)]
    if total - written > MAX_ALIAS_VALUES:
        size = f"{total:,}" if total < _SATURATED else f"more than {_SATURATED:,}"
        raise ConfigError(f"{source}: its aliases (*name) expand its {written:,} values to {size}, more than the "
                          f"{MAX_ALIAS_VALUES:,} extra values allowed; write the repeated values out, or repeat them "
                          "less.")


def parse_yaml(text: str, source: str, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse YAML text like yaml.safe_load, but as a ConfigError naming `source`: text over
    `max_bytes` (MAX_YAML_BYTES), a key repeated in a mapping (naming both lines), a plain value that YAML 1.1
    and 1.2 read differently, aliases that expand to too much, nesting too deep for the parser."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _too_large(source, len(text.encode("utf-8", "surrogatepass")), max_bytes)
    loader = _StrictLoader(text)
    loader.name = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_alias_expansion(node, source)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read; flatten its lists and mappings.") from None
    except (ValueError, OverflowError) as error:
        if isinstance(error, ConfigError):
            raise
        # e.g. an integer of more than 4300 digits, which Python refuses to convert
        raise ConfigError(f"{source}: a value could not be read: {short_text(str(error))}.") from None
    finally:
        loader.dispose()


def _too_large(source: str, size: int, max_bytes: int) -> ConfigError:
    return ConfigError(f"{source}: {size:,} bytes, more than the {max_bytes:,} bytes a YAML file may have here; "
                       "a config of this package needs a few kilobytes: check that this is the file you meant.")


def read_yaml(path: str | Path, what: str = "config file", mapping: bool = False,
              max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Parse a YAML file; a missing file, one over `max_bytes` (MAX_YAML_BYTES; a manifest the package
    writes for many runs may need more), bytes that are not UTF-8, bad YAML, a key given twice, an
    ambiguous plain value, an alias bomb (or, with mapping=True, a top level that is not a mapping;
    an empty file reads as {}) is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found.")
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > max_bytes:
                raise _too_large(f"{path}: {what}", size, max_bytes)
            data = file.read(max_bytes + 1)  # at most this much, whatever the size said
        if len(data) > max_bytes:
            raise _too_large(f"{path}: {what}", len(data), max_bytes)
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {data[error.start]:#04x} at line "
                          f"{line}); save it as UTF-8.") from None
    except OSError as error:
        raise ConfigError(f"{path}: {what} could not be read: {error.strerror or error}.") from None
    try:
        raw = parse_yaml(text, str(path), max_bytes)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if mapping:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping.")
    return raw


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate one YAML config file."""
    return config_from_dict(read_yaml(path), str(path))


def with_overrides(config: ExperimentConfig, source: str = "<command line>", **section_keys: Any) -> ExperimentConfig:
    """A copy with some keys replaced (e.g. from the command line), validated like a file."""
    raw = config.to_dict()
    for section, updates in section_keys.items():
        if isinstance(raw.get(section), dict):
            raw[section].update(updates)
        else:
            raw[section] = updates
    return config_from_dict(raw, source)


def merge_sections(base: dict, update: dict) -> dict:
    """`base` updated by `update`, nested mappings merged key by key (neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_sections(merged[key], value) if nested else copy.deepcopy(value)
    return merged


QUICK_KEY = "quick"  # a settings file's section of overrides for --quick (tiny sizes, for tests)


def with_quick(layers: Mapping[str, dict], quick: bool) -> dict:
    """The one `quick:` overlay (benchmark configs, the study's question and cost files):
    `layers` (source name -> parsed mapping, e.g. the study's common.yaml then a question's file)
    merged in order, each without its `quick:` section; with `quick`, those sections, merged in
    the same order, on top. A `quick:` that is not a mapping is a ConfigError naming its file."""
    merged: dict = {}
    overrides: dict = {}
    for source, layer in layers.items():
        layer = dict(layer)
        section = layer.pop(QUICK_KEY, None) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: key '{QUICK_KEY}' must be a mapping of the keys --quick overrides, got "
                              f"{short_repr(section)}.")
        overrides = merge_sections(overrides, section)
        merged = merge_sections(merged, layer)
    return merge_sections(merged, overrides) if quick else merged


def dump_config(config: ExperimentConfig) -> str:
    """The config as run, every default filled in, as YAML."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, help) for every key: the README's key table is generated from this."""
    rows = []
    for f in dataclasses.fields(ExperimentConfig):
        if f.default is not dataclasses.MISSING:
            rows.append((f.name, repr(f.default), f.metadata["help"]))
            continue
        section_cls: Any = f.default_factory  # a section: its dataclass
        for sf in dataclasses.fields(section_cls):
            factory: Any = sf.default_factory
            default = sf.default if sf.default is not dataclasses.MISSING else factory()
            rows.append((f"{f.name}.{sf.name}", yaml.safe_dump(default, default_flow_style=True).strip()
                         .removesuffix("...").strip(), sf.metadata["help"]))
    return rows


def markdown_key_table() -> str:
    """The README's table of config keys."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | `{default}` | {text} |" for key, default, text in describe_keys()]
    return "\n".join(lines)


def _yaml_inline(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def markdown_estimator_tables() -> str:
    """docs/configs.md's tables of the estimators' keywords that differ from the config keys they
    set, in name (ESTIMATOR_NAMES) or in default (ESTIMATOR_DEFAULTS)."""
    lines = ["| estimator keyword | config key |", "|---|---|"]
    lines += [f"| `{keyword}` | `{key}` |" for keyword, key in ESTIMATOR_NAMES.items()]
    lines += ["", "| estimator keyword | estimator default |", "|---|---|"]
    lines += [f"| `{keyword}` | `{_yaml_inline(value)}` |" for keyword, value in ESTIMATOR_DEFAULTS.items()]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m al_bnn.config [--estimators] -> docs/configs.md's tables
    import sys

    print(markdown_estimator_tables() if "--estimators" in sys.argv[1:] else markdown_key_table())
