"""Active learning on real data: an ask/tell learner around any of the estimators.

    learner = ActiveLearner(BNNRegressor(n_epochs=300), "lrgpa", random_state=0, sampling_batch_size=10)
    learner.fit(X_labelled, y_labelled)
    query = learner.query(X_pool, 20)           # .indices (rows of X_pool, pick order), .scores, .mean, .std
    learner.teach(X_pool[query.indices], y_new)   # the labels; then the next training phase
    learner.save("learner.npz")                  # arrays + a JSON header, never pickle
    same = load_learner("learner.npz")

A round is what the experiment loop does between two trainings, through the same code: `query`
calls `acquisition.select_with_model` on the model's function samples (or features) with the labelled
rows as anchors, keyed by (random_state, fits so far); `teach` trains the next phase with the
estimator's `warm_start` (Adam's moments reset, training draws keyed by the fit count; from the
current or the initial weights, as the estimator's `retrain_from` says), as the loop does after
an acquisition. So a learner whose first labelled set is the loop's initial set,
asked for the loop's increments, picks the loop's points and computes its metrics (tested).

Inputs are used as given, in the estimator's units: standardise the features first (the
`suggest` command standardises on the labelled and pool rows together).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from al_bnn.acquisition import select_with_model
from al_bnn.config import ExperimentConfig, config_from_dict, estimator_keywords
from al_bnn.kernels import kernel_needing_model_features
from al_bnn.models.estimators import (
    EstimatorNotFittedError,
    check_array,
    estimator_from_state,
)
from al_bnn.recipe import DEFAULT_SAMPLER, with_sampler_defaults
from al_bnn.registry import model_entry
from al_bnn.safe_arrays import ArrayFileError, open_arrays, save_arrays
from al_bnn.selection import make_sampler

LEARNER_FILE_KIND = "al_bnn.learner"
PREDICT_CHUNK = 65536  # pool rows per predict call: memory stays O(chunk x width) for large pools
SCORE_KINDS = {"lrgpa": "posterior_variance", "gpa": "posterior_variance", "bgpa": "posterior_variance",
               "mcdue": "sample_variance"}


@dataclass
class Query:
    """One selection: pool rows in pick order and what the model says about them.

    scores: the sampler's own score of each pick (GPA: the GP posterior variance of the pick given
    the labelled rows and the earlier batches, when it was picked; MCDUE: the variance of the
    function samples); for a sampler without scores (random, most plug-ins) the model's epistemic
    variance. `score_kind` says which. Variances are in the target's units squared, means and stds
    in its units, as the estimator reports them."""

    indices: np.ndarray
    scores: np.ndarray
    score_kind: str
    mean: np.ndarray
    std: np.ndarray
    pool_std: np.ndarray  # the predictive (total) std of every pool row
    seconds: float        # the selection, drawing samples or features included


def estimator_for_config(config: ExperimentConfig):
    """The estimator an experiment config's model, network and training schedule describe: every
    keyword of the model's estimator that sets a config key (config.estimator_keywords)."""
    cls = model_entry(config.parms.name_model).estimator_class()  # a plug-in model may have none: a clear error
    return cls(**estimator_keywords(config, cls._parameter_names()))


class ActiveLearner(BaseEstimator):
    """Ask/tell active learning: `fit` on the labelled rows, `query` a pool, `teach` the labels.

    Parameters
    ----------
    estimator : BNNRegressor, DropoutRegressor or EnsembleRegressor
        The model (the learner owns it and sets its warm_start per call).
    sampler : str or sampler object, default="lcmd"
        A registered name (`sampler_names()`) or an object with `needs` and `select` (see
        al_bnn.selection). The default is the study's recommendation (al_bnn.recipe.DEFAULT_SAMPLER,
        docs/study.md): lcmd, run with family_kernel "grad" unless the settings set family_kernel;
        other samplers get the config schema's defaults.
    random_state : int or None, default=None
        If given, replaces the estimator's: it keys the weights, the training draws, the function
        samples and the sampler's own randomness, so the same random_state and data give the same
        picks. Reading it gives the estimator's random_state.
    **settings
        Keys of the config's `parms` section (n_mc_samples, sampling_batch_size, gp_noise,
        gpa_kernel, gpa_dtype, ...), validated now with the config's messages; parameters like
        the others for `get_params`, `set_params` and `sklearn.base.clone`.
    """

    def __init__(self, estimator, sampler=DEFAULT_SAMPLER, *, random_state: int | None = None, **settings):
        if not hasattr(estimator, "saved_state"):
            raise TypeError(f"estimator must be a BNNRegressor, DropoutRegressor or EnsembleRegressor, got "
                            f"{type(estimator).__name__}")
        self.estimator = estimator
        self.random_state = random_state
        self.sampler = sampler
        self.settings = dict(settings)
        _ = self.parms  # validates the settings now, with the config's messages
        self.metadata: dict = {}  # JSON-serialisable, saved with the learner (suggest keeps its scaling here)
        self.history_: list[dict] = []

    @property
    def random_state(self) -> int:
        value = self.estimator.random_state
        return value if type(value) is int else int(value)

    @random_state.setter
    def random_state(self, value: int | None) -> None:
        if value is not None:
            self.estimator.set_params(random_state=value)

    # -- scikit-learn's parameter protocol: the settings are parameters too ----------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {**super().get_params(deep), **self.settings}

    def set_params(self, **parameters) -> ActiveLearner:
        own = {name: parameters.pop(name) for name in list(parameters)
               if "__" not in name and name not in self._get_param_names()}
        super().set_params(**parameters)
        if own:
            self.settings = {**self.settings, **own}
            _ = self.parms
        return self

    @property
    def parms(self):
        name = self.sampler if isinstance(self.sampler, str) else "random"
        source = f"ActiveLearner sampler {self.sampler!r} settings" if isinstance(self.sampler, str) else \
            "ActiveLearner settings"
        settings = with_sampler_defaults(self.sampler, self.settings)
        return config_from_dict({"parms": {**settings, "sample_policy": name}}, source).parms

    def _sampler(self):
        return make_sampler(self.parms) if isinstance(self.sampler, str) else self.sampler

    @property
    def n_labelled(self) -> int:
        return len(self.y_) if hasattr(self, "y_") else 0

    # -- tell ---------------------------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None, *, warm_start: bool = False,
            eval_every: int | None = None) -> ActiveLearner:
        """Make (X, y) the labelled set and train. warm_start=True continues from the estimator's
        current weights (e.g. a model of an earlier round, loaded), else training starts over.
        Validation data, if given, is evaluated into the estimator's history_ by every later
        training too."""
        X, y = self._checked(X, y, "X", "y")
        if len(X) < 2:
            raise ValueError(f"need at least 2 labelled rows to fit, got {len(X)}")
        if (X_val is None) != (y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        self.X_val_ = None if X_val is None else check_array(X_val, "X_val", n_features=X.shape[1])
        self.y_val_ = None if y_val is None else check_array(y_val, "y_val", ndim=1)
        self.X_, self.y_ = X, y
        self._train(warm_start and hasattr(self.estimator, "network_"), eval_every, n_added=len(y), new=None)
        return self

    def teach(self, X_new, y_new, *, eval_every: int | None = None) -> ActiveLearner:
        """Add labelled rows and train the next phase on all labelled rows (old first, then these, in
        order), as the experiment loop does after an acquisition. Before
        training, the current model's error on the new rows is recorded in history_ (a test-free
        check: rows it has not been trained on, though picked where it was unsure)."""
        if not hasattr(self, "y_"):
            raise EstimatorNotFittedError("this ActiveLearner is not fitted yet; call fit(X, y) first")
        X_new, y_new = self._checked(X_new, y_new, "X_new", "y_new")
        if len(y_new) == 0:
            raise ValueError("teach needs at least one new labelled row")
        mean, std = self.predict(X_new, return_std=True)
        new = dict(new_rmse=float(np.sqrt(np.mean((mean - y_new) ** 2))),
                   new_log_likelihood=float(np.mean(-0.5 * ((y_new - mean) / std) ** 2 - np.log(std)
                                                    - 0.5 * np.log(2 * np.pi))))
        self.X_, self.y_ = np.concatenate([self.X_, X_new]), np.concatenate([self.y_, y_new])
        self._train(True, eval_every, n_added=len(y_new), new=new)
        return self

    def _checked(self, X, y, x_name: str, y_name: str) -> tuple[np.ndarray, np.ndarray]:
        n_features = self.X_.shape[1] if hasattr(self, "X_") else None
        X = check_array(X, x_name, n_features=n_features)
        y = check_array(y, y_name, ndim=1)
        if len(X) != len(y):
            raise ValueError(f"{x_name} has {len(X)} rows but {y_name} has {len(y)}; they must match")
        return X, y

    def _train(self, continuing: bool, eval_every: int | None, n_added: int, new: dict | None) -> None:
        started = time.perf_counter()
        self.estimator.set_params(warm_start=continuing)
        self.estimator.fit(self.X_, self.y_, self.X_val_, self.y_val_, eval_every=eval_every)
        self.estimator.set_params(warm_start=True)
        last = self.estimator.history_[-1]
        row = dict(round=len(self.history_), fit=self.estimator.n_fits_ - 1, n_labelled=len(self.y_), n_added=n_added,
                   new_rmse=math.nan, new_log_likelihood=math.nan, train_rmse=float(last["train_rmse"]),
                   train_log_likelihood=float(last["train_log_likelihood"]),
                   training_seconds=time.perf_counter() - started)
        row.update(new or {})
        if self.X_val_ is not None:
            row.update(validation_rmse=float(last["validation_rmse"]),
                       validation_log_likelihood=float(last["validation_log_likelihood"]))
        self.history_.append(row)

    # -- ask ----------------------------------------------------------------------------------------
    def predict(self, X, return_std: bool = False, std_kind: str = "total"):
        """The estimator's predict, in chunks of rows (pools of millions of rows)."""
        X = check_array(X, "X", n_features=self.estimator.n_features_in_) if hasattr(self.estimator, "network_") \
            else X
        if len(X) <= PREDICT_CHUNK:
            return self.estimator.predict(X, return_std=return_std, std_kind=std_kind)
        parts = [self.estimator.predict(X[start:start + PREDICT_CHUNK], return_std=return_std, std_kind=std_kind)
                 for start in range(0, len(X), PREDICT_CHUNK)]
        if not return_std:
            return np.concatenate(parts)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def query(self, X_pool, n: int) -> Query:
        """The `n` rows of X_pool to label next, in pick order, by the sampler on the current
        model with the labelled rows as anchors (one acquisition of the experiment loop)."""
        if not hasattr(self, "y_"):
            raise EstimatorNotFittedError("this ActiveLearner is not fitted yet; call fit(X, y) first")
        X_pool = check_array(X_pool, "X_pool", n_features=self.X_.shape[1])
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(X_pool):
            raise ValueError(f"n={n!r} must be an integer between 1 and the pool size {len(X_pool)}")
        parms, sampler = self.parms, self._sampler()
        kernel = kernel_needing_model_features(sampler)
        if kernel is not None and not self.estimator.has_features:
            raise ValueError(f"the {kernel!r} kernel (gpa_kernel or family_kernel) needs a model with closed-form "
                             f"features (BNNRegressor), not {type(self.estimator).__name__}")
        x = np.empty((len(self.X_) + len(X_pool), X_pool.shape[1]), dtype=np.float32)
        x[:len(self.X_)], x[len(self.X_):] = self.X_, X_pool
        selection = select_with_model(self.estimator.network_, 0, parms, sampler, x, np.arange(len(x)),
                                      len(self.X_), int(n), self.random_state, self.estimator.n_fits_)
        del x
        picks = selection.picks
        pool_mean, pool_std = self.predict(X_pool, return_std=True)
        if selection.scores is not None and len(selection.scores) == len(picks):
            scores = selection.scores * self.estimator.y_scale_ ** 2  # the model's units -> the target's
            kind = SCORE_KINDS.get(self.sampler, "sampler_score") if isinstance(self.sampler, str) else "sampler_score"
        else:
            scores = self.predict(X_pool[picks], return_std=True, std_kind="epistemic")[1] ** 2
            kind = "epistemic_variance"
        if self.history_:
            self.history_[-1].update(n_pool=len(X_pool), n_queried=int(n), pool_std_mean=float(pool_std.mean()),
                                     pool_std_max=float(pool_std.max()), picked_std_mean=float(pool_std[picks].mean()),
                                     selection_seconds=selection.seconds)
        return Query(picks, scores, kind, pool_mean[picks], pool_std[picks], pool_std, selection.seconds)

    # -- saving: arrays plus a JSON header, never pickle ----------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the learner (model, labelled rows, validation rows, history, settings, metadata)."""
        if not hasattr(self, "y_"):
            raise EstimatorNotFittedError("this ActiveLearner is not fitted yet; there is nothing to save")
        if not isinstance(self.sampler, str):
            raise ValueError("only a learner with a registered sampler name can be saved (a sampler object "
                             "cannot be written without pickle); register it with al_bnn.register_sampler")
        estimator_header, estimator_arrays = self.estimator.saved_state()
        header = {"sampler": self.sampler, "settings": self.settings, "history": self.history_,
                  "metadata": self.metadata, "estimator": estimator_header}
        arrays = {f"estimator.{name}": value for name, value in estimator_arrays.items()}
        arrays.update(X=self.X_, y=self.y_)
        if self.X_val_ is not None:
            arrays.update(X_val=self.X_val_, y_val=self.y_val_)
        return save_arrays(path, LEARNER_FILE_KIND, 1, header, arrays)


def load_learner(path: str | Path) -> ActiveLearner:
    """A learner written by `ActiveLearner.save`; the file is read without unpickling anything.
    Its header is checked against the schema and its arrays' declared shapes against the header
    before anything is built or read, so a crafted file is an ArrayFileError naming it."""
    from al_bnn.headers import learner_schema, validate
    from al_bnn.models.estimators import ESTIMATORS

    with open_arrays(path, LEARNER_FILE_KIND) as reader:
        header = validate(reader.header, learner_schema(list(ESTIMATORS)), path)
        n_features = header["estimator"]["fitted"]["n_features_in_"]
        rows = {"X", "y"} | ({"X_val", "y_val"} if "X_val" in reader or "y_val" in reader else set())
        reader.require(rows | {name for name in reader if name.startswith("estimator.")}, "learner file")
        for x_name, y_name in (("X", "y"), ("X_val", "y_val")):
            if x_name not in rows:
                continue
            x_shape, y_shape = reader.shape(x_name), reader.shape(y_name)
            if (len(x_shape) != 2 or x_shape[1] != n_features or y_shape != x_shape[:1]
                    or any(reader.members[name].dtype.kind not in "fiu" for name in (x_name, y_name))):
                raise ArrayFileError(f"{path}: its {x_name} {x_shape} and {y_name} {y_shape} are not rows of "
                                     f"{n_features} features and their targets, as its header says")
        estimator = estimator_from_state(header["estimator"], reader, path, prefix="estimator.")
        try:
            learner = ActiveLearner(estimator, header["sampler"], **header["settings"])
        except (TypeError, ValueError) as error:  # ConfigError is a ValueError
            raise ArrayFileError(f"{path}: its sampler or settings are not valid: {str(error)[:300]}") from None
        learner.X_, learner.y_ = np.asarray(reader["X"], np.float64), np.asarray(reader["y"], np.float64)
        if "X_val" in rows:
            learner.X_val_, learner.y_val_ = (np.asarray(reader["X_val"], np.float64),
                                                np.asarray(reader["y_val"], np.float64))
        else:
            learner.X_val_ = learner.y_val_ = None
    learner.history_ = list(header["history"])
    learner.metadata = header["metadata"] if isinstance(header["metadata"], dict) else {}
    return learner


__all__ = ["ActiveLearner", "Query", "estimator_for_config", "load_learner"]
