"""Which rows to label next: active learning on a labelled CSV and an unlabelled pool CSV.

    python source/suggest.py --labelled L.csv --target y --pool P.csv --n 20 --out DIR
    python source/suggest.py ... --out DIR --resume-model DIR/model.npz     # the next round

Features are matched by column name (every column of L except the target and --id-column must be
in P, and P may have no others; the order may differ). They are standardised on the labelled and
pool rows together and the target on the labelled rows (a resumed round keeps the first round's
scaling, so the model sees the same units). Pool rows whose --id-column value is in L are taken as
labelled and skipped. A target column in P with values is refused unless --pool-labelled-ok, which
ignores those values (every pool row stays a candidate; for simulations).

Writes to DIR (one writer at a time: DIR/.lock): suggestions.csv (and a copy per round), model.npz
(the learner: model, labelled rows, history, scaling; no pickle), history.csv, uncertainty.png,
config.yaml, log.txt and suggest_manifest.json. A round's files are written all or nothing: each
under a pending name first, then renamed into place, the manifest last; a folder whose manifest is
missing or does not match its model.npz holds a half-written round, which is not resumed. Pool rows
are found by their line in the file (blank lines skipped, never shifting a row); suggest's own
output columns get the prefix 'suggest_' when the pool has a column of the same name; text cells
that a spreadsheet would run as a formula are written with a leading single quote. Every input
problem is reported, naming file, column and row (and line), before any training.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import io
import json
import logging
import os
import re
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from al_bnn.checkpoint import digest
from al_bnn.config import (
    ESTIMATOR_DEFAULTS,
    ExperimentConfig,
    config_from_dict,
    dump_config,
    estimator_keywords,
    read_yaml,
    with_overrides,
)
from al_bnn.data import (
    DataFileError,
    NonNumericCellError,
    Table,
    check_csv_file,
    read_csv_table,
    row_cells,
)
from al_bnn.errors import InputError
from al_bnn.paths import UnsafePathError, check_replaceable, inside, open_regular, remove_file
from al_bnn.recipe import DEFAULT_SAMPLER, on_default_recipe, with_sampler_defaults
from al_bnn.registry import models_with
from al_bnn.results import DirectoryLock, ResultsDirectoryBusyError, attach_log, detach_log
from al_bnn.safe_arrays import WriteError, atomic_write_bytes

logger = logging.getLogger("al_bnn.suggest")
MODEL_FILE, HISTORY_FILE, PLOT_FILE, CONFIG_FILE, LOG_FILE = (
    "model.npz", "history.csv", "uncertainty.png", "config.yaml", "log.txt")
DENSE_SAMPLERS_LIMIT = 20000
HISTORY_COLUMNS = ("round", "n_labelled", "n_added", "train_rmse", "new_rmse", "new_log_likelihood", "n_pool",
                   "pool_std_mean", "pool_std_max", "picked_std_mean", "n_queried", "training_seconds",
                   "selection_seconds")  # fast GPA forms a dense n x n pool covariance


class SuggestInputError(InputError, ValueError):
    """A problem with suggest's input; the message names the file, column and row, and the fix."""


# -- reading the CSVs: the library's one reader of a user's table (al_bnn.data.read_csv_table) -------------
@contextmanager
def _as_input_error():
    """suggest's wording and class for the reader's DataFileError (the message names file, column,
    row and line either way)."""
    try:
        yield
    except NonNumericCellError as error:
        raise SuggestInputError(f"{error.path}: column {error.column!r}, row {error.row} (line {error.line}) holds "
                                f"{error.cell!r}, which is not a number; every feature and target cell must be "
                                "numeric (encode categories as numbers or drop the column)") from None
    except DataFileError as error:
        raise SuggestInputError(str(error)) from None


def _check_is_csv(path: Path, what: str) -> list[str]:
    with _as_input_error():
        return check_csv_file(path, what)


def read_csv(path: str | os.PathLike, what: str, id_column: str | None = None,
             optional: tuple[str, ...] = ()) -> Table:
    """The id column is read as text; every other column must be numeric (cells in `optional`
    columns may be empty). Blank lines are skipped; messages name a row by its number among the data
    rows and by its line in the file (al_bnn.data.read_csv_table, errors as SuggestInputError)."""
    with _as_input_error():
        return read_csv_table(path, what, id_column, optional)


# -- what is written: column names and cells ---------------------------------------------------------
OUTPUT_PREFIX = "suggest_"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def output_columns(target: str, user_columns: list[str]) -> dict[str, str]:
    """The names of the columns suggest adds, by role. The user's columns are never renamed, dropped
    or overwritten: when one of the plain names (rank, pool_row, pool_line, score, score_kind,
    predicted_<target>, predicted_std) is also a pool column, every added name gets the prefix
    'suggest_'; if a prefixed name is taken too, the round is refused naming it."""
    plain = {"rank": "rank", "pool_row": "pool_row", "pool_line": "pool_line", "score": "score",
             "score_kind": "score_kind", "predicted": f"predicted_{target}", "predicted_std": "predicted_std"}
    taken = set(user_columns)
    clashes = sorted(taken & set(plain.values()))
    if not clashes:
        return plain
    prefixed = {role: OUTPUT_PREFIX + name for role, name in plain.items()}
    still = sorted(taken & set(prefixed.values()))
    if still:
        raise SuggestInputError(f"the pool has column(s) {clashes} and {still}, the names suggest gives its own "
                                f"output columns (plain and with the prefix {OUTPUT_PREFIX!r}); rename "
                                f"{still[0]!r} in the labelled and pool files")
    logger.warning("the pool has column(s) %s, which suggest also writes: its own columns get the prefix %r "
                   "(%s)", clashes, OUTPUT_PREFIX, ", ".join(prefixed.values()))
    return prefixed


def escape_cell(text: str) -> str:
    """A text cell as written to a CSV: one a spreadsheet would run as a formula (it starts with =,
    +, -, @, tab or CR) gets a leading single quote; plain numbers such as -1.5 or +2e3 are kept."""
    if text and text[0] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


# -- scaling: standardised in a numerically safe way ----------------------------------------------------
TINY_VARIANCE = 1e-200  # below this (std 1e-100) a variance computed directly has lost its digits
TARGET_SCALE_RANGE = (1e-150, 1e150)  # scores are written in target units squared


def _safe_mean_scale(parts: list[np.ndarray], column: int) -> tuple[float, float]:
    """Mean and std of one column over several arrays, computed on the column divided by its largest
    magnitude first, so neither the squares overflow (1e300) nor underflow (1e-200)."""
    count = sum(len(part) for part in parts)
    top = max(float(np.abs(part[:, column]).max()) for part in parts if len(part))
    if top == 0:
        return 0.0, 1.0
    total = sum(float((part[:, column] / top).sum()) for part in parts)
    mean = total / count
    square = sum(sum(float((((part[s:s + 65536, column] / top) - mean) ** 2).sum())
                     for s in range(0, len(part), 65536)) for part in parts)
    std = np.sqrt(square / count)
    return mean * top, (std * top if std > 0 else 1.0)


def feature_scaling(X_labelled: np.ndarray, X_pool: np.ndarray, features: list[str],
                    source: str) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and std over the labelled and pool rows together (std 1 for a constant
    column). Columns whose direct computation overflows or underflows are computed after dividing
    by their largest magnitude; a scale that is still not a finite positive number is refused."""
    count = len(X_labelled) + len(X_pool)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        x_mean = (X_labelled.sum(0) + X_pool.sum(0)) / count
        x_var = (((X_labelled - x_mean) ** 2).sum(0) + _chunked_square_sum(X_pool, x_mean)) / count
        x_scale = np.where(x_var > 0, np.sqrt(x_var), 1.0)
    varies = np.maximum(X_labelled.max(0), X_pool.max(0)) != np.minimum(X_labelled.min(0), X_pool.min(0))
    unsafe = ~np.isfinite(x_mean) | ~np.isfinite(x_var) | (varies & (x_var < TINY_VARIANCE))
    for column in np.flatnonzero(unsafe):
        x_mean[column], x_scale[column] = _safe_mean_scale([X_labelled, X_pool], int(column))
    bad = np.flatnonzero(~np.isfinite(x_mean) | ~np.isfinite(x_scale) | (x_scale <= 0))
    if len(bad):
        column = features[bad[0]]
        raise SuggestInputError(f"{source}: feature column {column!r} cannot be standardised (mean "
                                f"{x_mean[bad[0]]:.3g}, scale {x_scale[bad[0]]:.3g}); rescale the column")
    return x_mean, x_scale


def target_scaling(y: np.ndarray, target: str, source: str) -> tuple[float, float]:
    """The target's mean and std on the labelled rows, refused when its scale is so extreme that
    scores in target units squared would overflow or underflow."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        y_mean, y_scale = float(y.mean()), float(y.std())
    if not (np.isfinite(y_mean) and np.isfinite(y_scale)) or y_scale < np.sqrt(TINY_VARIANCE):
        y_mean, y_scale = _safe_mean_scale([y[:, None]], 0)
    low, high = TARGET_SCALE_RANGE
    if not (np.isfinite(y_mean) and low <= y_scale <= high):
        raise SuggestInputError(f"{source}: column {target!r} (the target) has a spread (std) of {y_scale:.3g}, "
                                f"outside [{low:g}, {high:g}]: the scores (target units squared) would overflow "
                                "or underflow. Rescale the column (e.g. multiply it by a power of ten) and use "
                                "the same units in every round")
    return y_mean, y_scale


class Inputs:
    """The checked, matched inputs of one round (raw units)."""

    def __init__(self, args):
        self.labelled_path, self.pool_path, self.target, self.id_column = Path(args.labelled), Path(args.pool), \
            args.target, args.id_column
        labelled = self._read_labelled()
        pool_columns = _check_is_csv(self.pool_path, "pool")
        pool_features = self._check_pool_columns(pool_columns)
        self.output_columns = output_columns(self.target, pool_columns)
        pool_table = read_csv(self.pool_path, "pool", self.id_column, optional=(self.target,))
        pool, self.pool_ids, self.pool_columns, self.pool_places = (pool_table.frame, pool_table.ids,
                                                                    pool_table.columns, pool_table.places)
        if pool_features != self.features:
            logger.info("%s: feature columns in another order than in %s; matched by name", self.pool_path,
                        self.labelled_path)
        if self.target in pool.columns:
            self._check_pool_targets(pool[self.target].to_numpy(), args.pool_labelled_ok)
        self.X_labelled = labelled[self.features].to_numpy(np.float64)
        self.y_labelled = labelled[self.target].to_numpy(np.float64)
        self.X_pool = np.ascontiguousarray(pool[self.features].to_numpy(np.float64))
        del pool, labelled
        self.candidates = self._unlabelled_candidates()
        self._check_enough(args.n)

    def _read_labelled(self):
        """The labelled table (its frame), after checking the target column and its values and that
        there are feature columns; sets features and labelled_ids."""
        path, target = self.labelled_path, self.target
        columns = _check_is_csv(path, "labelled")
        if target not in columns:
            raise SuggestInputError(f"{path}: no target column {target!r} (--target); columns are {columns}")
        table = read_csv(path, "labelled", self.id_column, optional=(target,))
        labelled, self.labelled_ids = table.frame, table.ids
        bad = ~np.isfinite(labelled[target].to_numpy())
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SuggestInputError(f"{path}: column {target!r} (the target), row {row + 1} (line "
                                    f"{table.places.lines[row]}) is empty, NaN or inf; every labelled row "
                                    "needs a finite target value: fill it in, or move the row to the pool")
        self.features = [c for c in labelled.columns if c != target]
        if not self.features:
            raise SuggestInputError(f"{path}: no feature columns besides the target {target!r}"
                                    + (f" and the id column {self.id_column!r}" if self.id_column else ""))
        return labelled

    def _check_pool_columns(self, pool_columns: list[str]) -> list[str]:
        """The pool's feature columns, after checking they are the labelled file's, matched by name."""
        pool_path, labelled_path = self.pool_path, self.labelled_path
        pool_features = [c for c in pool_columns if c not in (self.target, self.id_column)]
        missing = [c for c in self.features if c not in pool_features]
        if missing:
            raise SuggestInputError(f"{pool_path}: feature column {missing[0]!r} of {labelled_path} is missing "
                                    f"(pool columns: {pool_columns}); the pool needs every feature column of the "
                                    "labelled file, matched by name")
        extra = [c for c in pool_features if c not in self.features]
        if extra:
            raise SuggestInputError(f"{pool_path}: column {extra[0]!r} is not a column of {labelled_path}; the pool "
                                    "may hold only the labelled file's feature columns (and the id column): remove "
                                    "it from the pool or add it to the labelled file")
        return pool_features

    def _check_pool_targets(self, values: np.ndarray, labelled_ok: bool) -> None:
        """Target values in the pool: refused, or ignored with --pool-labelled-ok."""
        given = np.flatnonzero(~np.isnan(values))
        if len(given) and not labelled_ok:
            raise SuggestInputError(
                f"{self.pool_path}: column {self.target!r} (the target) has values in {len(given)} row(s) (first: "
                f"row {given[0] + 1}, line {self.pool_places.lines[given[0]]}); the pool should hold unlabelled "
                "rows. Move labelled rows to the labelled file, or pass --pool-labelled-ok to ignore these "
                "values (every pool row stays a candidate)")
        if len(given):
            logger.warning("%s: ignoring the %d target value(s) in the pool (--pool-labelled-ok)", self.pool_path,
                           len(given))

    def _unlabelled_candidates(self) -> np.ndarray:
        """Pool rows (0-based) that may be suggested: those whose id is not a labelled row's."""
        if self.pool_ids is not None:
            known = np.isin(self.pool_ids, self.labelled_ids)
            if known.any():
                logger.info("%d pool row(s) have ids in %s and are skipped as labelled", int(known.sum()),
                            self.labelled_path)
                return np.flatnonzero(~known)
        return np.arange(len(self.X_pool))

    def _check_enough(self, n: int) -> None:
        labelled_path = self.labelled_path
        if len(self.y_labelled) < 2:
            raise SuggestInputError(f"{labelled_path}: {len(self.y_labelled)} labelled row(s); the model needs at "
                                    "least 2 to fit (a few dozen to be useful): label more rows first")
        if np.ptp(self.y_labelled) == 0:
            raise SuggestInputError(f"{labelled_path}: column {self.target!r} (the target) has the same value in "
                                    "every row; a model cannot learn from that: label rows with differing outcomes")
        if n > len(self.candidates):
            raise SuggestInputError(f"--n {n} is larger than the pool: {self.pool_path} has {len(self.candidates)} "
                                    "unlabelled row(s); ask for at most that many")

    def reorder_features(self, order: list[str]) -> None:
        """Put the feature columns in the given order (a resumed model's)."""
        index = [self.features.index(name) for name in order]
        self.features = list(order)
        self.X_labelled = self.X_labelled[:, index]
        self.X_pool = np.ascontiguousarray(self.X_pool[:, index])


# -- the round ----------------------------------------------------------------------------------------
@contextmanager
def directory_lock(directory: Path):
    """One writer per directory: the results directories' lock (al_bnn.results.DirectoryLock) on
    DIR/.lock, which follows no symbolic link and refuses a FIFO, device or hard-linked file. A
    run refused before it wrote anything leaves no trace: a folder it created is removed again."""
    if directory.exists() and not directory.is_dir():
        raise SuggestInputError(f"--out {directory} exists and is not a folder; choose another --out")
    created = not os.path.lexists(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriteError(directory, "the output folder", error) from None
    lock = DirectoryLock(directory, name=".lock")
    try:
        try:
            lock.acquire()
        except ResultsDirectoryBusyError:
            raise SuggestInputError(f"{directory}: another suggest is writing to this directory; wait for it to "
                                    "finish or choose another --out") from None
        yield
    except BaseException:
        if created:  # refused or failed in a folder it made: remove the lock, and the folder if that left it empty
            lock.release(discard=True)
            try:
                directory.rmdir()
            except OSError:
                pass
        raise
    finally:
        lock.release()


GPA_ONLY_KEYS = ("gpa_kernel",)  # parms keys only the GPA samplers read (the family reads family_kernel)


def build_config(args) -> ExperimentConfig:
    # The default model recipe (al_bnn.recipe) under whatever --config sets, the schema's defaults elsewhere.
    raw = read_yaml(args.config, mapping=True) if args.config else {}
    config = config_from_dict(on_default_recipe(raw), str(args.config) if args.config else "suggest defaults")
    parms, net = {}, {}
    given = raw.get("parms")
    given = given if isinstance(given, dict) else {}
    # --sampler, else the config's parms.sample_policy, else the library's default (lcmd), not the schema's gpa
    if args.sampler or "sample_policy" not in given:
        parms["sample_policy"] = args.sampler or DEFAULT_SAMPLER
    ignored = [key for key in GPA_ONLY_KEYS if key in given]
    if ignored and not args.sampler and "sample_policy" not in given:
        logger.warning("%s sets %s, which only the GPA samplers read, but names no parms.sample_policy: suggest "
                       "runs %s, which ignores it; add parms.sample_policy (e.g. lrgpa) or pass --sampler to use it",
                       args.config, ", ".join(f"parms.{key}" for key in ignored), DEFAULT_SAMPLER)
    # the default sampler (lcmd) runs on its recommended kernel (family_kernel grad) unless the config sets one
    parms.update({key: value for key, value in
                  with_sampler_defaults(parms.get("sample_policy", config.parms.sample_policy), {}).items()
                  if key not in given})
    if args.model:
        parms["name_model"] = args.model
        if args.model == "dropout" and config.net_config.dropout_rate == 0.0:
            net["dropout_rate"] = ESTIMATOR_DEFAULTS["dropout_rate"]
        if args.model != "dropout":
            net["dropout_rate"] = 0.0
    # (calibration: the recipe's `holdout` unless the config sets it; the schema's 'none' is the published loop's)
    sections = {"parms": parms, "net_config": net}
    if args.seed is not None:
        sections["seed"] = args.seed
    return with_overrides(config, "suggest command line", **{k: v for k, v in sections.items() if v != {}})


def suggest_estimator(config: ExperimentConfig):
    """The estimator suggest trains: the config's model and settings, calibrated as the config says
    (build_config makes that 'holdout' unless the user's config sets train_schedule.calibration)."""
    from al_bnn.learner import estimator_for_config

    return estimator_for_config(config).set_params(calibration=config.train_schedule.calibration)


RESUME_SCALE_FACTOR = 30.0  # a resumed model's target scale may differ from the labelled rows' by this much


def _checked_metadata(metadata: dict, inputs: Inputs, resume: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The resumed model's scaling, after checking that it was trained on these feature columns and
    this target in these units; refused naming the difference otherwise."""
    keys = ("features", "target", "x_mean", "x_scale", "y_mean", "y_scale")
    absent = [key for key in keys if key not in metadata]
    if absent:
        raise SuggestInputError(f"--resume-model {resume}: not a model written by suggest (its metadata lacks "
                                f"{absent}); start a new round without --resume-model")
    features, target = metadata["features"], metadata["target"]
    if not isinstance(features, list) or not all(isinstance(name, str) for name in features):
        raise SuggestInputError(f"--resume-model {resume}: its feature list is not a list of column names")
    if set(features) != set(inputs.features) or len(features) != len(inputs.features):
        only_model = [name for name in features if name not in inputs.features]
        only_file = [name for name in inputs.features if name not in features]
        raise SuggestInputError(f"--resume-model {resume}: the model was trained on feature columns {features}, but "
                                f"{inputs.labelled_path} has {inputs.features} (only in the model: {only_model}; "
                                f"only in the file: {only_file}); resume with the same feature columns, or start a "
                                "new round without --resume-model")
    if target != inputs.target:
        raise SuggestInputError(f"--resume-model {resume}: the model was trained for target {target!r}, not "
                                f"{inputs.target!r} (--target); resume with --target {target!r}, or start a new "
                                "round without --resume-model")
    if features != inputs.features:
        inputs.reorder_features(features)
    try:
        x_mean = np.asarray(metadata["x_mean"], dtype=np.float64)
        x_scale = np.asarray(metadata["x_scale"], dtype=np.float64)
        y_mean, y_scale = float(metadata["y_mean"]), float(metadata["y_scale"])
    except (TypeError, ValueError):
        raise SuggestInputError(f"--resume-model {resume}: its scaling is not numeric") from None
    if (x_mean.shape != (len(features),) or x_scale.shape != (len(features),) or not np.isfinite(x_mean).all()
            or not (np.isfinite(x_scale) & (x_scale > 0)).all() or not np.isfinite(y_mean)
            or not (np.isfinite(y_scale) and y_scale > 0)):
        raise SuggestInputError(f"--resume-model {resume}: its scaling is not one finite positive scale per feature "
                                "and for the target; start a new round without --resume-model")
    now_mean, now_scale = target_scaling(inputs.y_labelled, inputs.target, str(inputs.labelled_path))
    factor = RESUME_SCALE_FACTOR
    if not (1 / factor <= now_scale / y_scale <= factor) or abs(now_mean - y_mean) > factor * y_scale:
        raise SuggestInputError(
            f"--resume-model {resume}: the model was trained on target {target!r} with mean {y_mean:.4g} and std "
            f"{y_scale:.4g}, but the labelled rows of {inputs.labelled_path} have mean {now_mean:.4g} and std "
            f"{now_scale:.4g} (more than {factor:g} times apart): another target or other units. Give the target in "
            "the units of the first round, or start a new round without --resume-model")
    return x_mean, x_scale, y_mean, y_scale


def _standardise(inputs: Inputs, metadata: dict | None, resume: Path | None = None):
    if metadata is not None:
        assert resume is not None  # metadata comes from the model being resumed
        x_mean, x_scale, y_mean, y_scale = _checked_metadata(metadata, inputs, resume)
    else:
        x_mean, x_scale = feature_scaling(inputs.X_labelled, inputs.X_pool, inputs.features,
                                          f"{inputs.labelled_path} and {inputs.pool_path}")
        y_mean, y_scale = target_scaling(inputs.y_labelled, inputs.target, str(inputs.labelled_path))
    metadata = {"features": inputs.features, "target": inputs.target, "x_mean": x_mean.tolist(),
                "x_scale": x_scale.tolist(), "y_mean": y_mean, "y_scale": y_scale}
    return metadata, x_mean, x_scale, y_mean, y_scale


def _standardised(values: np.ndarray, mean: np.ndarray, scale: np.ndarray, features: list[str],
                  source: str) -> np.ndarray:
    """(values - mean) / scale, refused naming the column where that is not finite (a resumed
    model's scaling far from these values)."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = (values - mean) / scale
    bad = ~np.isfinite(result)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise SuggestInputError(f"{source}: feature column {features[column]!r}, value {values[row, column]:.3g}, "
                                "is too far from the model's scaling to be standardised; rescale the column")
    return result


def _chunked_square_sum(X: np.ndarray, mean: np.ndarray, chunk: int = 65536) -> np.ndarray:
    return sum((((X[s:s + chunk] - mean) ** 2).sum(0) for s in range(0, len(X), chunk)), np.zeros(X.shape[1]))


# -- the round's files: written all or nothing, a manifest last -----------------------------------------
MANIFEST_FILE = "suggest_manifest.json"
PENDING_SUFFIX = ".pending"
OWN_NAME = re.compile(r"suggestions\.csv|suggestions_round_\d{1,9}\.csv|model\.npz|history\.csv|uncertainty\.png"
                      r"|config\.yaml|suggest_manifest\.json")  # the only names suggest writes or deletes
BAD_PATH_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL)


def _pending(out: Path, name: str) -> Path:
    return out / f".{name}{PENDING_SUFFIX}"


def _digest(path: Path) -> dict:
    """A file's size and SHA-256 (al_bnn.checkpoint.digest), from one read: what the manifest records."""
    with open(path, "rb") as stream:
        sha256 = digest(stream)
        return {"bytes": stream.tell(), "sha256": sha256}


def read_manifest(out: Path) -> dict | None:
    """The round manifest of --out, None when absent, unreadable or malformed (read through the path
    policy's read-only open_regular: no symbolic link followed, no FIFO or device opened; names
    checked against the names suggest writes)."""
    try:
        handle = open_regular(out / MANIFEST_FILE, "the round manifest", read_only=True)
    except (OSError, UnsafePathError):
        return None
    try:
        with os.fdopen(handle, "rb") as stream:
            manifest = json.loads(stream.read(1 << 20))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) \
            or not isinstance(manifest.get("written"), list):
        return None
    names = [*manifest["files"], *manifest["written"]]
    if not all(isinstance(name, str) and OWN_NAME.fullmatch(name) for name in names):
        return None
    return manifest


def _pending_names(out: Path) -> list[str]:
    """The pending files (under suggest's own names) that an unfinished round left in `out`."""
    return sorted(entry.name for entry in out.iterdir() if entry.name.startswith(".")
                  and entry.name.endswith(PENDING_SUFFIX) and OWN_NAME.fullmatch(entry.name[1:-len(PENDING_SUFFIX)]))


def round_state(out: Path) -> tuple[str, str]:
    """('none' | 'complete' | 'incomplete', why). Complete: the manifest is in place and model.npz is
    the file it lists (or, from before manifests, model.npz alone). A round whose writing stopped
    part way (pending files left, manifest missing or not matching) is incomplete, never done."""
    if not out.is_dir():
        return "none", ""
    pending = _pending_names(out)
    if pending:
        return "incomplete", f"unfinished files {pending[:3]} are left"
    if not os.path.lexists(out / MANIFEST_FILE):
        return ("complete", "") if (out / MODEL_FILE).is_file() else ("none", "")
    manifest = read_manifest(out)
    if manifest is None:
        return "incomplete", f"{MANIFEST_FILE} is not a readable manifest"
    entry = manifest["files"].get(MODEL_FILE)
    model = out / MODEL_FILE
    if entry is None or model.is_symlink() or not model.is_file() or _digest(model) != entry:
        return "incomplete", f"{MODEL_FILE} is not the file {MANIFEST_FILE} lists"
    return "complete", ""


def commit_round(out: Path, payloads: dict[str, bytes], write_model, round_index: int, overwrite: bool) -> None:
    """Write the round's files all or nothing. Each is first written in full under a pending name
    (a failure there removes them and leaves the previous round as it was); then the old manifest
    is removed, the files renamed into place, with --overwrite the files the old manifest lists
    and this round does not write are deleted, and the new manifest is renamed into place last.
    Every file deleted goes through paths.remove_file; a link or special file under a name suggest
    would delete is refused (UnsafePathError) before anything is written."""
    old = read_manifest(out)
    old_written = set(old["written"]) if old else set()
    stale = sorted(old_written - set(payloads) - {MODEL_FILE, MANIFEST_FILE}) if overwrite else []
    leftovers = _pending_names(out)
    for name in [MANIFEST_FILE, *stale]:
        inside(out, name)
    for name in leftovers:
        check_replaceable(out / name)
    staged, staged_manifest = _stage_round(out, payloads, write_model, round_index,
                                           set() if overwrite else old_written)
    try:
        remove_file(out, MANIFEST_FILE)  # from here until the new manifest is in place: not a done round
        for name, path in staged.items():
            os.replace(path, out / name)
        for name in stale:
            remove_file(out, name)
        for name in leftovers:  # pending files an interrupted round left
            if name != staged_manifest.name:
                remove_file(out, name, hidden=True)
        os.replace(staged_manifest, out / MANIFEST_FILE)
    except OSError as error:
        raise WriteError(out / MANIFEST_FILE, "the round's files", error) from None
    _sync_folder(out)


def _stage_round(out: Path, payloads: dict[str, bytes], write_model, round_index: int,
                 kept: set[str]) -> tuple[dict[str, Path], Path]:
    """Every file of the round written in full under its pending name, the new manifest (listing
    them and the earlier files `kept`) last: (pending path by name, the pending manifest). On a
    failure the files staged so far are removed and the error raised (an OSError as a WriteError)."""
    staged: dict[str, Path] = {}
    try:
        for name, payload in payloads.items():
            staged[name] = _pending(out, name)
            atomic_write_bytes(staged[name], payload, name)
        staged[MODEL_FILE] = _pending(out, MODEL_FILE)
        write_model(staged[MODEL_FILE])
        files = {name: _digest(path) for name, path in staged.items()}
        manifest = {"kind": "al_bnn suggest round", "version": 1, "round": int(round_index), "files": files,
                    "written": sorted(set(files) | kept)}
        return staged, atomic_write_bytes(_pending(out, MANIFEST_FILE), json.dumps(manifest, indent=1).encode(),
                                          MANIFEST_FILE)
    except BaseException as error:
        for path in staged.values():
            try:
                remove_file(out, path.name, hidden=True)
            except (OSError, UnsafePathError):
                pass  # the first error is the one to report
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise WriteError(out, "the round's files", error) from None
        raise


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that the renames in it survive a crash."""
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError:
        pass  # the renames are done; a file system that cannot sync a directory still has them


def _check_memory(config: ExperimentConfig, n_labelled: int, n_candidates: int, n_features: int) -> None:
    """Refuse (MemoryEstimateError, exit 2) a round whose training or selection cannot fit in memory,
    before any training: e.g. a huge parms.n_mc_samples or net_config.layer_sizes from --config."""
    from al_bnn.memory import check_fits

    schedule = dataclasses.replace(config.al_schedule, al_iter=0, num_train_init=n_labelled)
    check_fits([dataclasses.replace(config, al_schedule=schedule)], ["suggest"], n_candidates, n_labelled,
               n_features)


def _check_resume_source(resume: Path) -> None:
    """A model.npz inside a folder whose round was not finished is not taken as a round."""
    if resume.name == MODEL_FILE and resume.parent.is_dir():
        state, why = round_state(resume.parent)
        if state == "incomplete":
            raise SuggestInputError(f"--resume-model {resume}: {resume.parent} holds a half-written round ({why}); "
                                    "resume from a finished round, or start over there with --overwrite")


def run_round(args) -> Path:
    from al_bnn.learner import ActiveLearner, load_learner

    out = Path(args.out)
    started = time.perf_counter()
    config = build_config(args)
    with ExitStack() as stack:
        try:
            stack.enter_context(directory_lock(out))
        except WriteError as error:
            if error.path == out and error.cause.errno in BAD_PATH_ERRNOS:  # under a file, in /proc, ...
                raise SuggestInputError(f"--out {out}: cannot be created as a folder ({error.cause.strerror}); give "
                                        "a folder path whose parents are folders you can write to") from None
            raise
        except OSError as error:
            raise WriteError(out / ".lock", "the lock file", error) from None
        resume = Path(args.resume_model) if args.resume_model else None
        state, why = round_state(out)
        if state == "incomplete" and not args.overwrite:
            raise SuggestInputError(f"{out} holds a half-written round ({why}): a suggest stopped while writing it. "
                                    "Pass --overwrite to start over there (it deletes only files suggest wrote), "
                                    "or choose another --out")
        if state == "complete" and resume is None and not args.overwrite:
            raise SuggestInputError(f"{out} already holds a round ({out / MODEL_FILE}); continue with "
                                    f"--resume-model {out / MODEL_FILE}, pass --overwrite to start over, or choose "
                                    "another --out")
        if resume is not None:
            _check_resume_source(resume)
        inputs = Inputs(args)
        if config.parms.sample_policy in ("gpa",) and len(inputs.candidates) > DENSE_SAMPLERS_LIMIT:
            raise SuggestInputError(f"sampler 'gpa' (fast GPA) forms a dense {len(inputs.candidates)}^2 pool "
                                    "covariance; for a pool this large use --sampler lrgpa (the same picks)")
        _check_memory(config, len(inputs.y_labelled), len(inputs.candidates), len(inputs.features))
        previous = load_learner(resume) if resume is not None else None
        metadata, x_mean, x_scale, y_mean, y_scale = _standardise(inputs, previous.metadata if previous else None,
                                                                  resume)
        X = _standardised(inputs.X_labelled, x_mean, x_scale, inputs.features, str(inputs.labelled_path))
        y = (inputs.y_labelled - y_mean) / y_scale
        X_pool = np.empty((len(inputs.candidates), X.shape[1]))
        for start in range(0, len(X_pool), 65536):
            rows = inputs.candidates[start:start + 65536]
            X_pool[start:start + 65536] = _standardised(inputs.X_pool[rows], x_mean, x_scale, inputs.features,
                                                        str(inputs.pool_path))
        inputs.X_pool = None
        root_logger = logging.getLogger("al_bnn")
        appending = resume is not None and resume.parent.resolve() == out.resolve()
        log_handler = attach_log(out, root_logger, append=appending)
        root_logger.setLevel(logging.INFO)
        try:
            logger.info("suggest: %s (%d labelled rows), %s (%d candidate rows), %d features, target %r; model %s, "
                        "sampler %s, seed %d", inputs.labelled_path, len(y), inputs.pool_path, len(X_pool),
                        X.shape[1], inputs.target, config.parms.name_model, config.parms.sample_policy, config.seed)
            settings = {k: v for k, v in dataclasses.asdict(config.parms).items()
                        if k not in ("name_model", "ensemble_size", "sample_policy")}
            if previous is None:
                learner = ActiveLearner(suggest_estimator(config), config.parms.sample_policy, **settings)
                learner.metadata = metadata
                learner.fit(X, y)
            else:
                learner = previous
                learner.metadata = metadata
                learner.sampler, learner.settings = config.parms.sample_policy, settings
                _ = learner.parms
                learner.estimator.set_params(**estimator_keywords(config, ("n_epochs", "n_steps", "min_steps")),
                                                calibration=config.train_schedule.calibration)
                new = _new_rows(learner, X, y)
                if new is None:
                    logger.warning("the labelled rows are not the model's earlier labelled rows plus new ones; "
                                   "training the saved model's next phase on %s as given", inputs.labelled_path)
                    learner.fit(X, y, warm_start=True)
                else:
                    logger.info("%d new labelled row(s) since the saved round", len(new))
                    if len(new):
                        learner.teach(X[new], y[new])
            round_row = learner.history_[-1]
            logger.info("round %d: trained on %d rows in %.1f s (train RMSE %.4g in target units)",
                        round_row["round"], len(y), round_row["training_seconds"], round_row["train_rmse"] * y_scale)
            query = learner.query(X_pool, args.n)
            logger.info("selected %d of %d pool rows in %.2f s", args.n, len(X_pool), query.seconds)
            rows = inputs.candidates[query.indices]
            payloads = _round_files(args, config, inputs, learner, query, rows, y_scale, y_mean)
            commit_round(out, payloads, learner.save, round_row["round"], overwrite=bool(args.overwrite))
            logger.info("wrote %s in %.1f s", out, time.perf_counter() - started)
        finally:
            detach_log(root_logger, log_handler)
    return out


def _new_rows(learner, X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Indices of the rows of (X, y) that the learner has not been taught, if (X, y) holds every row
    it has been taught (as a multiset, any order); None otherwise."""
    keys = np.concatenate([X, y[:, None]], axis=1)
    known = np.concatenate([learner.X_, learner.y_[:, None]], axis=1)
    counts: dict[bytes, int] = {}
    for row in known:
        counts[row.tobytes()] = counts.get(row.tobytes(), 0) + 1
    new = []
    for index, row in enumerate(keys):
        key = row.tobytes()
        if counts.get(key, 0):
            counts[key] -= 1
        else:
            new.append(index)
    return np.asarray(new, dtype=np.int64) if not any(counts.values()) else None


def suggestions_table(inputs: Inputs, query, rows: np.ndarray, y_scale: float, y_mean: float):
    """The suggestions in pick order: suggest's own columns (output_columns), the id, then every
    column of the pool row as written in the pool CSV (found by its place in the file, so blank
    lines cannot shift it); text cells and header cells escaped against formula injection."""
    import pandas as pd

    names = inputs.output_columns
    cells = row_cells(inputs.pool_path, inputs.pool_places, rows)
    table = pd.DataFrame({names["rank"]: np.arange(1, len(rows) + 1)})
    if inputs.pool_ids is not None:
        table[inputs.id_column] = [escape_cell(text) for text in inputs.pool_ids[rows]]
    table[names["pool_row"]] = rows + 1
    table[names["pool_line"]] = inputs.pool_places.lines[rows]
    table[names["score"]] = query.scores * y_scale ** 2
    table[names["score_kind"]] = query.score_kind
    table[names["predicted"]] = query.mean * y_scale + y_mean
    table[names["predicted_std"]] = query.std * y_scale
    for position, column in enumerate(inputs.pool_columns):
        if column != inputs.id_column:
            table[column] = [escape_cell(row[position]) if position < len(row) else "" for row in cells]
    table.columns = [escape_cell(str(column)) for column in table.columns]
    return table


def _round_files(args, config, inputs: Inputs, learner, query, rows: np.ndarray, y_scale: float,
                 y_mean: float) -> dict[str, bytes]:
    """Every file of the round but the model, as bytes (written together by commit_round)."""
    import pandas as pd

    round_index = learner.history_[-1]["round"]
    command = " ".join(sys.argv[1:]).replace("\n", "\\n").replace("\r", "\\r") or "from Python"  # one comment line
    payload = suggestions_table(inputs, query, rows, y_scale, y_mean).to_csv(index=False).encode()
    history = pd.DataFrame(learner.history_)
    first = [c for c in HISTORY_COLUMNS if c in history.columns]
    history = history[first + [c for c in history.columns if c not in first]]
    for column in ("train_rmse", "new_rmse", "validation_rmse", "pool_std_mean", "pool_std_max", "picked_std_mean"):
        if column in history:
            history[column] = history[column] * y_scale  # the target's units
    return {"suggestions.csv": payload, f"suggestions_round_{round_index}.csv": payload,
            HISTORY_FILE: history.to_csv(index=False).encode(),
            CONFIG_FILE: (f"# suggest: {command}\n" + dump_config(config)).encode(),
            PLOT_FILE: _plot(query.pool_std * y_scale, query.std * y_scale, history, inputs.target)}


def _plot(pool_std: np.ndarray, picked_std: np.ndarray, history, target: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.geomspace(max(pool_std.min(), 1e-12), pool_std.max() * 1.0001 + 1e-12, 50)
    left.hist(pool_std, bins=bins, color="0.6", label=f"pool ({len(pool_std)} rows)")
    left.hist(picked_std, bins=bins, color="C3", label=f"suggested ({len(picked_std)})")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel(f"predictive std of {target}")
    left.set_ylabel("rows")
    left.set_title("The model's uncertainty over the pool")
    left.legend()
    n = history["n_labelled"]
    if "pool_std_mean" in history:
        right.plot(n, history["pool_std_mean"], "o-", label="pool: mean predictive std")
        right.plot(n, history["pool_std_max"], "s--", label="pool: max predictive std")
    right.plot(n, history["train_rmse"], "^:", label="RMSE on the labelled rows (trained on)")
    if history["new_rmse"].notna().any():
        right.plot(n, history["new_rmse"], "D-", label="RMSE on new labels, before training on them")
    right.set_xlabel("labelled rows")
    right.set_ylabel(f"{target} units")
    right.set_yscale("log")
    right.set_title("Over rounds: stop when these flatten")
    right.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Suggest which pool rows to label next (active learning).")
    parser.add_argument("--labelled", required=True, help="CSV of labelled rows: feature columns and the target")
    parser.add_argument("--target", required=True, help="the target column of --labelled")
    parser.add_argument("--pool", required=True, help="CSV of unlabelled candidate rows: the same feature columns")
    parser.add_argument("--n", type=int, required=True, help="how many rows to suggest")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None,
                        help="experiment YAML: model, network, training schedule, sampler (keys it does not set: "
                        "the default model recipe and sampler, al_bnn.recipe, then the config defaults)")
    parser.add_argument("--sampler", default=None,
                        help=f"sampler name (default: the config's parms.sample_policy, else {DEFAULT_SAMPLER} on the "
                        "gradient kernel, the study's recommendation: of the recommended set's members that run on "
                        "every model, it had the lowest mean log RMSE; docs/study.md)")
    parser.add_argument("--model", default=None, choices=models_with(lambda entry: entry.estimator is not None),
                        help="a registered model with an estimator (default: the config's, else bnn)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the config's, else 0)")
    parser.add_argument("--id-column", default=None, help="a column of both files holding each row's id")
    parser.add_argument("--resume-model", default=None, help="model.npz of an earlier round: continue from it")
    parser.add_argument("--pool-labelled-ok", action="store_true",
                        help="ignore target values found in the pool instead of refusing")
    parser.add_argument("--overwrite", action="store_true", help="start over in a --out that holds a round")
    return parser


def main(argv=None) -> int:
    """The suggest command: 0 done, 2 bad input (named), 4 --out busy, 5 a file could not be written."""
    from al_bnn.cli import exit_code_for

    args = build_parser().parse_args(argv)
    if args.n < 1:
        print(f"error: --n must be at least 1, got {args.n}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = run_round(args)
    except Exception as error:
        code = exit_code_for(error)
        if code is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return code
    print(f"suggestions: {out / 'suggestions.csv'}")
    return 0


__all__ = ["SuggestInputError", "main", "read_csv", "run_round"]


if __name__ == "__main__":
    sys.exit(main())
