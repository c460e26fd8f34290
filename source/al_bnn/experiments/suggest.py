"""Which rows to label next: active learning on a labelled CSV and an unlabelled pool CSV.

    python source/suggest.py --labelled L.csv --target y --pool P.csv --n 20 --out DIR
    python source/suggest.py ... --out DIR --resume-model DIR/model.npz     # the next round

Features are matched by column name (every column of L except the target and --id-column must be
in P, and P may have no others; the order may differ). They are standardised on the labelled and
pool rows together and the target on the labelled rows (a resumed round keeps the first round's
scaling, so the model sees the same units). Pool rows whose --id-column value is in L are taken as
labelled and skipped. A target column in P with values is refused unless --pool-labelled-ok, which
ignores those values (every pool row stays a candidate; for simulations).

Writes to DIR (one writer at a time: DIR/.lock; every file atomically): suggestions.csv (and a
copy per round), model.npz (the learner: model, labelled rows, history, scaling; no pickle),
history.csv, uncertainty.png, config.yaml and log.txt. Every input problem is reported, naming
file, column and row, before any training.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from al_bnn.config import ConfigError, ExperimentConfig, config_from_dict, dump_config, read_yaml, with_overrides
from al_bnn.recipe import on_default_recipe
from al_bnn.results import DirectoryLock, LogFile, ResultsDirectoryBusyError
from al_bnn.safe_arrays import ArrayFileError, WriteError, atomic_write_bytes

logger = logging.getLogger("al_bnn.suggest")
MODEL_FILE, HISTORY_FILE, PLOT_FILE, CONFIG_FILE, LOG_FILE = (
    "model.npz", "history.csv", "uncertainty.png", "config.yaml", "log.txt")
DENSE_SAMPLERS_LIMIT = 20000
MISSING = ["", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"]  # cells read as missing values
HISTORY_COLUMNS = ("round", "n_labelled", "n_added", "train_rmse", "new_rmse", "new_log_likelihood", "n_pool",
                   "pool_std_mean", "pool_std_max", "picked_std_mean", "n_queried", "training_seconds",
                   "selection_seconds")  # fast GPA forms a dense n x n pool covariance


class SuggestInputError(ValueError):
    """A problem with suggest's input; the message names the file, column and row, and the fix."""


# -- reading the CSVs ---------------------------------------------------------------------------------
def _check_is_csv(path: Path, what: str) -> list[str]:
    import pandas as pd

    if not path.is_file():
        raise SuggestInputError(f"{path}: {what} file not found")
    if path.stat().st_size == 0:
        raise SuggestInputError(f"{path}: the {what} file is empty; it needs a header row of column names and "
                                "data rows")
    with open(path, "rb") as stream:
        head = stream.read(65536)
    if b"\x00" in head:
        raise SuggestInputError(f"{path}: not a CSV file (it holds binary data); give a comma-separated text file "
                                "with a header row")
    try:
        header = next(csv.reader(io.StringIO(head.decode("utf-8", errors="strict").splitlines()[0])))
        columns = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, StopIteration, IndexError,
            csv.Error) as error:
        raise SuggestInputError(f"{path}: not a readable CSV file ({type(error).__name__}: {error})") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise SuggestInputError(f"{path}: column name(s) {repeated} appear more than once in the header; give every "
                                "column its own name")
    return [str(c) for c in columns]


def read_csv(path: str | os.PathLike, what: str, id_column: str | None = None, optional: tuple[str, ...] = ()):
    """(frame of float64 columns, ids or None, columns in file order). The id column is read as
    text; every other column must be numeric (cells in `optional` columns may be empty)."""
    import pandas as pd

    path = Path(path)
    columns = _check_is_csv(path, what)
    if id_column is not None and id_column not in columns:
        raise SuggestInputError(f"{path}: no id column {id_column!r} (--id-column); columns are {columns}")
    numeric = [c for c in columns if c != id_column]
    dtypes = {c: np.float64 for c in numeric}
    if id_column is not None:
        dtypes[id_column] = str
    try:
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={c: MISSING for c in numeric},
                            engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:  # both are ValueErrors: first
        raise SuggestInputError(f"{path}: not a well-formed CSV file ({error})") from None
    except ValueError:  # a cell that is not a number: find it (slow path, only on error)
        _raise_first_non_numeric(path, numeric)
        raise
    if frame.empty:
        raise SuggestInputError(f"{path}: the {what} file has a header but no data rows")
    for column in numeric:
        values = frame[column].to_numpy()
        bad = ~np.isfinite(values)
        if column in optional or not bad.any():
            continue
        row = int(np.flatnonzero(bad)[0])
        kind = "an empty or NaN (missing) cell" if np.isnan(values[row]) else f"the value {values[row]}"
        raise SuggestInputError(f"{path}: column {column!r}, row {row + 1} (line {row + 2}) has {kind}; every "
                                f"{'target' if what == 'labelled' and column in optional else 'feature'} cell must "
                                "be a finite number: fill it in or remove the row")
    ids = None
    if id_column is not None:
        ids = frame.pop(id_column).to_numpy(dtype=object)
        empty = np.flatnonzero(pd.isna(ids) | (ids == ""))
        if len(empty):
            raise SuggestInputError(f"{path}: column {id_column!r} (the id column), row {empty[0] + 1} (line "
                                    f"{empty[0] + 2}) is empty; every row needs an id")
        ids = ids.astype(str)
        unique, first, counts = np.unique(ids, return_index=True, return_counts=True)
        if (counts > 1).any():
            repeated = str(unique[counts > 1][0])
            rows = np.flatnonzero(ids == repeated)[:3] + 1
            raise SuggestInputError(f"{path}: id {repeated!r} in column {id_column!r} is repeated (rows "
                                    f"{', '.join(map(str, rows))}); ids must be unique")
    return frame, ids, columns


def _raise_first_non_numeric(path: Path, columns: list[str]) -> None:
    import pandas as pd

    text = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=columns)
    for column in columns:
        cells = text[column]
        converted = pd.to_numeric(cells.where(~cells.isin(MISSING), "nan"), errors="coerce")
        bad = np.flatnonzero(converted.isna() & ~cells.isin(MISSING))
        if len(bad):
            row = int(bad[0])
            raise SuggestInputError(f"{path}: column {column!r}, row {row + 1} (line {row + 2}) holds "
                                    f"{cells.iloc[row]!r}, which is not a number; every feature and target cell "
                                    "must be numeric (encode categories as numbers or drop the column)")


class Inputs:
    """The checked, matched inputs of one round (raw units)."""

    def __init__(self, args):
        labelled_path, pool_path, target = Path(args.labelled), Path(args.pool), args.target
        self.labelled_path, self.pool_path, self.target, self.id_column = labelled_path, pool_path, target, \
            args.id_column
        columns = _check_is_csv(labelled_path, "labelled")
        if target not in columns:
            raise SuggestInputError(f"{labelled_path}: no target column {target!r} (--target); columns are {columns}")
        labelled, self.labelled_ids, _ = read_csv(labelled_path, "labelled", args.id_column, optional=(target,))
        bad = ~np.isfinite(labelled[target].to_numpy())
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SuggestInputError(f"{labelled_path}: column {target!r} (the target), row {row + 1} (line "
                                    f"{row + 2}) is empty, NaN or inf; every labelled row needs a finite target "
                                    "value: fill it in, or move the row to the pool")
        self.features = [c for c in labelled.columns if c != target]
        if not self.features:
            raise SuggestInputError(f"{labelled_path}: no feature columns besides the target {target!r}"
                                    + (f" and the id column {args.id_column!r}" if args.id_column else ""))
        pool_columns = _check_is_csv(pool_path, "pool")
        pool_features = [c for c in pool_columns if c not in (target, args.id_column)]
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
        pool, self.pool_ids, _ = read_csv(pool_path, "pool", args.id_column, optional=(target,))
        if pool_features != self.features:
            logger.info("%s: feature columns in another order than in %s; matched by name", pool_path, labelled_path)
        if target in pool.columns:
            given = np.flatnonzero(~np.isnan(pool[target].to_numpy()))
            if len(given) and not args.pool_labelled_ok:
                raise SuggestInputError(
                    f"{pool_path}: column {target!r} (the target) has values in {len(given)} row(s) (first: row "
                    f"{given[0] + 1}, line {given[0] + 2}); the pool should hold unlabelled rows. Move labelled rows "
                    "to the labelled file, or pass --pool-labelled-ok to ignore these values (every pool row stays "
                    "a candidate)")
            if len(given):
                logger.warning("%s: ignoring the %d target value(s) in the pool (--pool-labelled-ok)", pool_path,
                               len(given))
        self.X_labelled = labelled[self.features].to_numpy(np.float64)
        self.y_labelled = labelled[target].to_numpy(np.float64)
        self.X_pool = np.ascontiguousarray(pool[self.features].to_numpy(np.float64))
        del pool, labelled
        self.candidates = np.arange(len(self.X_pool))  # pool rows (0-based) that may be suggested
        if self.pool_ids is not None:
            known = np.isin(self.pool_ids, self.labelled_ids)
            if known.any():
                logger.info("%d pool row(s) have ids in %s and are skipped as labelled", int(known.sum()),
                            labelled_path)
                self.candidates = np.flatnonzero(~known)
        if len(self.y_labelled) < 2:
            raise SuggestInputError(f"{labelled_path}: {len(self.y_labelled)} labelled row(s); the model needs at "
                                    "least 2 to fit (a few dozen to be useful): label more rows first")
        if np.ptp(self.y_labelled) == 0:
            raise SuggestInputError(f"{labelled_path}: column {target!r} (the target) has the same value in every "
                                    "row; a model cannot learn from that: label rows with differing outcomes")
        if args.n > len(self.candidates):
            raise SuggestInputError(f"--n {args.n} is larger than the pool: {pool_path} has {len(self.candidates)} "
                                    "unlabelled row(s); ask for at most that many")


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


def build_config(args) -> ExperimentConfig:
    # The default model recipe (al_bnn.recipe) under whatever --config sets, the schema's defaults elsewhere.
    raw = read_yaml(args.config, mapping=True) if args.config else {}
    config = config_from_dict(on_default_recipe(raw), str(args.config) if args.config else "suggest defaults")
    parms, net = {}, {}
    if args.sampler or not args.config:
        parms["sample_policy"] = args.sampler or "lrgpa"
    if args.model:
        parms["name_model"] = args.model
        if args.model == "dropout" and config.net_config.dropout_rate == 0.0:
            net["dropout_rate"] = 0.1
        if args.model != "dropout":
            net["dropout_rate"] = 0.0
    sections = {"parms": parms, "net_config": net}
    if args.seed is not None:
        sections["seed"] = args.seed
    return with_overrides(config, "suggest command line", **{k: v for k, v in sections.items() if v != {}})


def _standardise(inputs: Inputs, metadata: dict | None):
    if metadata and "x_mean" in metadata:
        if metadata.get("features") != inputs.features:
            raise SuggestInputError(f"--resume-model: the model was trained on features {metadata.get('features')}, "
                                    f"but {inputs.labelled_path} has {inputs.features}")
        x_mean, x_scale = np.asarray(metadata["x_mean"]), np.asarray(metadata["x_scale"])
        y_mean, y_scale = float(metadata["y_mean"]), float(metadata["y_scale"])
    else:
        count = len(inputs.X_labelled) + len(inputs.X_pool)
        x_mean = (inputs.X_labelled.sum(0) + inputs.X_pool.sum(0)) / count
        x_var = (((inputs.X_labelled - x_mean) ** 2).sum(0) + _chunked_square_sum(inputs.X_pool, x_mean)) / count
        x_scale = np.where(x_var > 0, np.sqrt(x_var), 1.0)
        y_mean, y_scale = float(inputs.y_labelled.mean()), float(inputs.y_labelled.std())
    metadata = {"features": inputs.features, "target": inputs.target, "x_mean": x_mean.tolist(),
                "x_scale": x_scale.tolist(), "y_mean": y_mean, "y_scale": y_scale}
    return metadata, x_mean, x_scale, y_mean, y_scale


def _chunked_square_sum(X: np.ndarray, mean: np.ndarray, chunk: int = 65536) -> np.ndarray:
    return sum((((X[s:s + chunk] - mean) ** 2).sum(0) for s in range(0, len(X), chunk)), np.zeros(X.shape[1]))


def run_round(args) -> Path:
    from al_bnn.learner import ActiveLearner, estimator_for_config, load_learner

    out = Path(args.out)
    started = time.perf_counter()
    config = build_config(args)
    with directory_lock(out):
        resume = Path(args.resume_model) if args.resume_model else None
        if (out / MODEL_FILE).exists() and resume is None and not args.overwrite:
            raise SuggestInputError(f"{out} already holds a round ({out / MODEL_FILE}); continue with "
                                    f"--resume-model {out / MODEL_FILE}, pass --overwrite to start over, or choose "
                                    "another --out")
        inputs = Inputs(args)
        if config.parms.sample_policy in ("gpa",) and len(inputs.candidates) > DENSE_SAMPLERS_LIMIT:
            raise SuggestInputError(f"sampler 'gpa' (fast GPA) forms a dense {len(inputs.candidates)}^2 pool "
                                    "covariance; for a pool this large use --sampler lrgpa (the same picks)")
        previous = load_learner(resume) if resume is not None else None
        metadata, x_mean, x_scale, y_mean, y_scale = _standardise(inputs, previous.metadata if previous else None)
        X = (inputs.X_labelled - x_mean) / x_scale
        y = (inputs.y_labelled - y_mean) / y_scale
        X_pool = np.empty((len(inputs.candidates), X.shape[1]))
        for start in range(0, len(X_pool), 65536):
            rows = inputs.candidates[start:start + 65536]
            X_pool[start:start + 65536] = (inputs.X_pool[rows] - x_mean) / x_scale
        inputs.X_pool = None
        log_handler = _attach_log(out, append=previous is not None and resume.parent.resolve() == out.resolve())
        try:
            logger.info("suggest: %s (%d labelled rows), %s (%d candidate rows), %d features, target %r; model %s, "
                        "sampler %s, seed %d", inputs.labelled_path, len(y), inputs.pool_path, len(X_pool),
                        X.shape[1], inputs.target, config.parms.name_model, config.parms.sample_policy, config.seed)
            settings = {k: v for k, v in dataclasses.asdict(config.parms).items()
                        if k not in ("name_model", "ensemble_size", "sample_policy")}
            if previous is None:
                learner = ActiveLearner(estimator_for_config(config), config.parms.sample_policy, **settings)
                learner.metadata = metadata
                learner.fit(X, y)
            else:
                learner = previous
                learner.sampler, learner.settings = config.parms.sample_policy, settings
                _ = learner.parms
                learner.estimator.set_params(n_epochs=config.train_schedule.num_epochs,
                                             n_steps=config.train_schedule.num_steps,
                                             min_steps=config.train_schedule.min_steps)
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
            _write_outputs(out, args, config, inputs, learner, query, rows, y_scale, y_mean)
            learner.save(out / MODEL_FILE)
            logger.info("wrote %s in %.1f s", out, time.perf_counter() - started)
        finally:
            logging.getLogger("al_bnn").removeHandler(log_handler)
            log_handler.close()
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


def _write_outputs(out: Path, args, config, inputs: Inputs, learner, query, rows: np.ndarray, y_scale: float,
                   y_mean: float) -> None:
    import pandas as pd

    round_index = learner.history_[-1]["round"]
    picked = set(rows.tolist())
    original = pd.read_csv(inputs.pool_path, dtype=str, keep_default_na=False,
                           skiprows=lambda line: line != 0 and line - 1 not in picked)
    original.index = np.sort(rows)
    original = original.loc[rows]
    table = pd.DataFrame({"rank": np.arange(1, len(rows) + 1)})
    if inputs.pool_ids is not None:
        table[inputs.id_column] = inputs.pool_ids[rows]
    table["pool_row"] = rows + 1
    table["score"] = query.scores * y_scale ** 2
    table["score_kind"] = query.score_kind
    table[f"predicted_{inputs.target}"] = query.mean * y_scale + y_mean
    table["predicted_std"] = query.std * y_scale
    for column in original.columns:
        if column not in table.columns:
            table[column] = original[column].to_numpy()
    payload = table.to_csv(index=False).encode()
    atomic_write_bytes(out / "suggestions.csv", payload)
    atomic_write_bytes(out / f"suggestions_round_{round_index}.csv", payload)
    history = pd.DataFrame(learner.history_)
    first = [c for c in HISTORY_COLUMNS if c in history.columns]
    history = history[first + [c for c in history.columns if c not in first]]
    for column in ("train_rmse", "new_rmse", "validation_rmse", "pool_std_mean", "pool_std_max", "picked_std_mean"):
        if column in history:
            history[column] = history[column] * y_scale  # the target's units
    atomic_write_bytes(out / HISTORY_FILE, history.to_csv(index=False).encode())
    atomic_write_bytes(out / CONFIG_FILE, (f"# suggest: {' '.join(sys.argv[1:]) or 'from Python'}\n"
                                           + dump_config(config)).encode())
    _plot(out, query.pool_std * y_scale, query.std * y_scale, history, inputs.target)


def _plot(out: Path, pool_std: np.ndarray, picked_std: np.ndarray, history, target: str) -> None:
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
    atomic_write_bytes(out / PLOT_FILE, buffer.getvalue())


def _attach_log(out: Path, append: bool) -> logging.Handler:
    # opened without following a symbolic link; a FIFO, device or hard-linked log.txt is refused
    handler = LogFile(out / LOG_FILE, mode="a" if append else "w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("al_bnn")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Suggest which pool rows to label next (active learning).")
    parser.add_argument("--labelled", required=True, help="CSV of labelled rows: feature columns and the target")
    parser.add_argument("--target", required=True, help="the target column of --labelled")
    parser.add_argument("--pool", required=True, help="CSV of unlabelled candidate rows: the same feature columns")
    parser.add_argument("--n", type=int, required=True, help="how many rows to suggest")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None,
                        help="experiment YAML: model, network, training schedule, sampler (keys it does not set: "
                        "the default model recipe, al_bnn.recipe, then the config defaults)")
    parser.add_argument("--sampler", default=None, help="sampler name (default: the config's, else lrgpa)")
    parser.add_argument("--model", default=None, choices=("bnn", "dropout", "ensemble"),
                        help="model (default: the config's, else bnn)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the config's, else 0)")
    parser.add_argument("--id-column", default=None, help="a column of both files holding each row's id")
    parser.add_argument("--resume-model", default=None, help="model.npz of an earlier round: continue from it")
    parser.add_argument("--pool-labelled-ok", action="store_true",
                        help="ignore target values found in the pool instead of refusing")
    parser.add_argument("--overwrite", action="store_true", help="start over in a --out that holds a round")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1:
        print(f"error: --n must be at least 1, got {args.n}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = run_round(args)
    except (SuggestInputError, ConfigError, ArrayFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"suggestions: {out / 'suggestions.csv'}")
    return 0


# -- the README's walk-through: split a shipped dataset, then "label" suggestions by looking them up --
COLUMN_NAMES = {"airfoil": ["frequency", "angle", "chord", "velocity", "thickness", "sound_pressure"]}


def split_example(dataset: str, n_labelled: int, directory: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write DIR/labelled.csv (n_labelled random rows with the target), DIR/pool.csv (the other rows,
    without it) and DIR/answers.csv (every row's id and target: the "lab" to look labels up in)."""
    import pandas as pd

    from al_bnn.data import read_uci_folder, uci_root

    features, target = read_uci_folder(uci_root() / dataset)
    names = COLUMN_NAMES.get(dataset, [f"x{i}" for i in range(features.shape[1])] + ["y"])
    frame = pd.DataFrame(features, columns=names[:-1])
    frame.insert(0, "id", [f"{dataset}-{i}" for i in range(len(frame))])
    frame[names[-1]] = target
    if not 2 <= n_labelled < len(frame):
        raise SuggestInputError(f"--labelled {n_labelled}: choose between 2 and {len(frame) - 1} for {dataset}")
    from al_bnn.randomness import numpy_generator

    chosen = np.zeros(len(frame), dtype=bool)
    chosen[numpy_generator(seed, "suggest_example").choice(len(frame), n_labelled, replace=False)] = True
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"labelled.csv": frame[chosen], "pool.csv": frame[~chosen].drop(columns=names[-1]),
             "answers.csv": frame[["id", names[-1]]]}
    for name, table in files.items():
        atomic_write_bytes(directory / name, table.to_csv(index=False).encode())
    return [directory / name for name in files]


def label_example(directory: str | os.PathLike, suggestions: str | os.PathLike) -> int:
    """Look the suggested ids up in DIR/answers.csv and append those rows to DIR/labelled.csv."""
    import pandas as pd

    directory = Path(directory)
    labelled = pd.read_csv(directory / "labelled.csv", dtype={"id": str})
    answers = pd.read_csv(directory / "answers.csv", dtype={"id": str}).set_index("id")
    picked = pd.read_csv(suggestions, dtype={"id": str})
    if "id" not in picked.columns:
        raise SuggestInputError(f"{suggestions}: no id column; run suggest with --id-column id")
    new = picked[[c for c in labelled.columns if c in picked.columns]].copy()
    target = [c for c in labelled.columns if c not in picked.columns]
    new[target[0]] = answers.loc[new["id"], target[0]].to_numpy()
    new = new[~new["id"].isin(labelled["id"])]
    combined = pd.concat([labelled, new[labelled.columns]], ignore_index=True)
    atomic_write_bytes(directory / "labelled.csv", combined.to_csv(index=False).encode())
    return len(new)


def example_main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The suggest walk-through: split a shipped dataset into "
                                                 "labelled.csv, pool.csv and answers.csv, or label suggestions.")
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="write DIR/labelled.csv, DIR/pool.csv and DIR/answers.csv")
    split.add_argument("--dataset", default="airfoil", help="a UCI set shipped in data/uci (default: airfoil)")
    split.add_argument("--labelled", type=int, default=30, help="labelled rows to start with (default: 30)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--dir", required=True)
    label = commands.add_parser("label", help="append the suggested rows, with their answers, to DIR/labelled.csv")
    label.add_argument("--dir", required=True)
    label.add_argument("--suggestions", required=True, help="a suggestions.csv written by suggest")
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            for path in split_example(args.dataset, args.labelled, args.dir, args.seed):
                print(f"wrote {path}")
        else:
            print(f"appended {label_example(args.dir, args.suggestions)} labelled row(s) to "
                  f"{Path(args.dir) / 'labelled.csv'}")
    except (SuggestInputError, OSError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


__all__ = ["SuggestInputError", "example_main", "label_example", "main", "read_csv", "run_round", "split_example"]


if __name__ == "__main__":
    sys.exit(main())
