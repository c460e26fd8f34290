"""Active learning with Bayesian neural networks for regression.

The public API, in scikit-learn's conventions:

- estimators: `BNNRegressor` (with a noise contrastive prior option), `DropoutRegressor`,
  `EnsembleRegressor`; `load_estimator(path)` reads one saved with `.save(path)` (arrays plus a
  JSON header, never pickle);
- active learning on a real pool: `ActiveLearner(estimator, sampler)` (fit / query / teach / save),
  `load_learner(path)`;
- selection: `Selector(name, **settings)` for any registered sampler, on sample or feature
  matrices or on a fitted estimator; `select_gpa` (pure NumPy); `register_sampler` and
  `sampler_names` for the registry.

Importing the package (or `al_bnn.selection`) does not import TensorFlow; the estimators do, when
first used.
"""

from __future__ import annotations

import importlib

from al_bnn.selection import register_sampler, sampler_names, select_gpa

_LAZY = {
    "BNNRegressor": "al_bnn.models.estimators",
    "DropoutRegressor": "al_bnn.models.estimators",
    "EnsembleRegressor": "al_bnn.models.estimators",
    "load_estimator": "al_bnn.models.estimators",
    "Selector": "al_bnn.selector",
    "ActiveLearner": "al_bnn.learner",
    "load_learner": "al_bnn.learner",
}

__all__ = ["ActiveLearner", "BNNRegressor", "DropoutRegressor", "EnsembleRegressor", "Selector", "load_estimator",
           "load_learner", "register_sampler", "sampler_names", "select_gpa"]
from al_bnn.version import __version__ as __version__  # noqa: E402  (the one source of the version)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'al_bnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
