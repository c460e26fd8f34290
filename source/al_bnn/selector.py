"""Selector: any registered sampler, usable on arrays without a model or on a fitted estimator.

    selector = Selector()                     # the default: lcmd on the gradient kernel (al_bnn.recipe)
    selector = Selector("lrgpa", sampling_batch_size=10, gp_noise=0.01)
    picks = selector.select(10, n_train=len(X_train), samples=samples)           # samples (T, n_train + n_pool)
    picks = selector.select_from_model(model, X_train, X_pool, 10)               # draws from the model

Settings are the keys of the config's `parms` section (README "Config keys"), validated with its
messages. Picks are indices into the pool (0 = the first pool row), in pick order. Through a model,
a selection is computed by the same function as an acquisition of the experiment loop, with the
same keyed draws: the model's function samples of draw 0 after its last fit, and the selection's
own randomness keyed by (model random_state, "selection", fits so far).
"""

from __future__ import annotations

import numbers
from typing import NoReturn

import numpy as np
from sklearn.base import BaseEstimator

from al_bnn.config import ConfigError, config_from_dict
from al_bnn.randomness import numpy_generator
from al_bnn.recipe import DEFAULT_SAMPLER, with_sampler_defaults
from al_bnn.selection import SelectionRequest, check_selection, make_sampler


class SelectionSizeError(ConfigError):
    """n_select is not a positive integer (or exceeds the pool)."""


def check_n_select(n_select, n_pool: int, name: str = "n_select") -> int:
    """n_select as an int in 1..n_pool: a float such as 2.5, a bool or a string is refused, not rounded."""
    if isinstance(n_select, bool) or not isinstance(n_select, numbers.Integral):
        raise SelectionSizeError(f"{name}={n_select!r} must be a positive integer (the number of pool points to "
                                 "pick), not a " + type(n_select).__name__)
    if not 0 < int(n_select) <= n_pool:
        raise SelectionSizeError(f"{name}={n_select} must be between 1 and the pool size {n_pool}")
    return int(n_select)


class Selector(BaseEstimator):
    """A registered sampler (by name) with its settings.

    Parameters
    ----------
    sampler : str, default="lcmd"
        A registered sampler's name (`al_bnn.sampler_names()`). The default is the study's
        recommendation (al_bnn.recipe.DEFAULT_SAMPLER, docs/study.md): lcmd, which runs with
        family_kernel "grad" (sketched gradient features) unless the settings set family_kernel;
        every other sampler gets the config schema's defaults.
    **settings
        Keys of the config's `parms` section (README "Config keys"), such as n_mc_samples,
        sampling_batch_size, gp_noise, gpa_kernel, gpa_dtype; validated when used, with the
        config's messages. They are parameters like `sampler`: `get_params`, `set_params` and
        `sklearn.base.clone` see them.
    """

    def __init__(self, sampler: str = DEFAULT_SAMPLER, **settings):
        self.sampler = sampler
        self.settings = settings

    def get_params(self, deep: bool = True) -> dict:
        return {"sampler": self.sampler, **self.settings}

    def set_params(self, **parameters) -> Selector:
        if "sampler" in parameters:
            self.sampler = parameters.pop("sampler")
        self.settings = {**self.settings, **parameters}
        return self

    @property
    def parms(self):
        """The validated `parms` section this selector runs with."""
        settings = with_sampler_defaults(self.sampler, self.settings)
        return config_from_dict({"parms": {**settings, "sample_policy": self.sampler}},
                                f"Selector({self.sampler!r}) settings").parms

    @property
    def needs(self) -> str:
        """What the sampler needs: "nothing", "samples", "features" or "gradient_features"."""
        return make_sampler(self.parms).needs

    def select(self, n_select: int, *, n_train: int = 0, samples: np.ndarray | None = None,
               features: np.ndarray | None = None, n_pool: int | None = None, random_state: int = 0) -> np.ndarray:
        """Pool indices in pick order, from function samples (T, n_train + n_pool) or features
        (n_train + n_pool, d), training (anchor) points first; a sampler that needs neither (random)
        takes `n_pool`. random_state keys the sampler's own randomness."""
        parms = self.parms
        sampler = make_sampler(parms)
        if sampler.needs == "samples" and samples is None:
            raise ValueError(f"sampler {self.sampler!r} needs function samples: pass samples=(T, n_train + n_pool)")
        if sampler.needs in ("features", "gradient_features") and features is None:
            raise ValueError(f"sampler {self.sampler!r} needs kernel features: pass features=(n_train + n_pool, d)"
                             + (" (e.g. al_bnn.models.gradient_features.gradient_features(...))"
                                if sampler.needs == "gradient_features" else ""))
        if sampler.needs == "samples":
            samples = _checked(samples, "samples")
            total = samples.shape[1]
        elif sampler.needs in ("features", "gradient_features"):
            features = _checked(features, "features")
            total = len(features)
        else:
            if n_pool is None:
                raise ValueError(f"sampler {self.sampler!r} needs only the pool size: pass n_pool")
            total = n_train + int(n_pool)
        if not 0 <= n_train < total:
            raise ValueError(f"n_train={n_train} leaves no pool among {total} points; give 0 <= n_train < {total}")
        n_select = check_n_select(n_select, total - n_train)
        request = SelectionRequest(n_select=n_select, n_train=int(n_train), n_pool=total - n_train,
                                   rng=numpy_generator(random_state, "selection", 0))
        if sampler.needs == "samples":
            assert samples is not None  # checked above
            request.draw_samples = lambda draw: samples if draw == 0 else _no_redraw(self.sampler)
        elif sampler.needs == "features":
            request.features = features
        elif sampler.needs == "gradient_features":
            request.gradient_features = features
        return check_selection(sampler.select(request), request, self.sampler)

    def select_from_model(self, estimator, X_train, X_pool, n_select: int) -> np.ndarray:
        """Pool indices (rows of X_pool) in pick order, from a fitted estimator's function samples
        or features, with X_train as the anchors (the points already labelled)."""
        from al_bnn.acquisition import select_with_model
        from al_bnn.kernels import kernel_needing_model_features
        from al_bnn.models.estimators import EstimatorNotFittedError, check_array

        if not hasattr(estimator, "network_"):
            raise EstimatorNotFittedError("the estimator is not fitted yet; call fit(X, y) first")
        X_train = check_array(X_train, "X_train", n_features=estimator.n_features_in_)
        X_pool = check_array(X_pool, "X_pool", n_features=estimator.n_features_in_)
        n_select = check_n_select(n_select, len(X_pool))
        parms = self.parms
        sampler = make_sampler(parms)
        kernel = kernel_needing_model_features(sampler)
        if kernel is not None and not estimator.has_features:
            raise ValueError(f"sampler {self.sampler!r} with the {kernel!r} kernel (gpa_kernel or family_kernel) "
                             f"needs a model with closed-form features (BNNRegressor), not {type(estimator).__name__}; "
                             "use the 'mc' kernel (or family_kernel 'grad')")
        x = np.concatenate([X_train, X_pool]).astype(np.float32)
        return select_with_model(estimator.network_, 0, parms, sampler, x, np.arange(len(x)),
                                 len(X_train), n_select, estimator.random_state, estimator.n_fits_).picks


def _checked(array, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has NaN or infinite values")
    return array


def _no_redraw(name: str) -> NoReturn:
    raise ValueError(f"sampler {name!r} redraws function samples, which needs a model: use select_from_model")
