"""Benchmark sweeps: datasets x models x samplers x seeds, on local processes or a Dask cluster.

One task is one (dataset, model): all of its unfinished (sampler, seed) runs, trained as one
stacked model (each seed with its own split, all splits the same size). A task returns tidy rows,
one per AL step; the parent process owns the output directory and writes each run's rows
atomically as `runs/<dataset>/<model>/<sampler>_rs_<seed>.csv`, tagged with the run's key (a hash
of what determines its numbers: its resolved settings, dataset and seed), so an interrupted sweep
resumes by skipping the runs whose file is complete (every AL step, the expected columns, the same
key); any other run file is redone. The key does not involve the sampler's label or the sweep's
other runs, so a finished run can be taken from another sweep's results (`reuse_runs`), e.g. the
benchmark's runs for the study's, or runs committed by an earlier checkout.

On local processes a task's stacks also checkpoint after every training phase, into
`checkpoints/<dataset>/<model>/` (named in the directory's manifest before they are written), so a
task cut short (its worker killed, the machine stopped) resumes at its last finished phase; the
parent deletes them once the task's runs are written.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from al_bnn.checkpoint import CALIBRATION_COLUMNS, digest
from al_bnn.cli import StoppedEarly
from al_bnn.config import (
    ConfigError,
    DataConfig,
    check_key,
    check_sections,
    config_from_dict,
    merge_sections,
    read_yaml,
    short_repr,
    short_text,
    with_quick,
)
from al_bnn.data import DataFileError
from al_bnn.plugins import import_plugins
from al_bnn_lab.run_key_baseline import RUN_KEY_BASELINE

logger = logging.getLogger("al_bnn.benchmark")

TIDY_COLUMNS = ["dataset", "model", "sampler", "seed", "al_iter", "n_train", "test_rmse", "test_log_likelihood",
                "selection_seconds", "training_seconds", "pool_size", "runs_in_stack"]
OPTIONAL_COLUMNS = ["test_coverage_90"]  # share of test targets inside the central 90% predictive interval
# Columns of pick comparisons (parms.compare_with): <prefix><reference name>, empty at AL step 0.
COMPARISON_PREFIXES = ("overlap_", "agreed_", "in_order_", "seconds_")
RUN_KEY_COLUMN = "run_key"  # in run files and tidy tables: what determines the run's numbers (run_key)
LEGACY_FINGERPRINT_COLUMN = "sweep_fingerprint"  # run files of older versions: the hash of the whole sweep config
TIE_TOLERANCE = 0.005  # final RMSEs within 0.5% of random's count as a tie
SCHEDULE_KEYS = ("num_train_init", "num_al_incr", "al_iter")
BENCHMARK_KEYS = ("datasets", "models", "model_settings", "samplers", "sampler_settings", "seeds", "uci_root",
                  "test_fraction", "schedule", "experiment", "quick")


@dataclass
class DatasetEntry:
    """A dataset of the sweep: a registry name, or a file (CSV/NPZ) with its target column."""

    name: str
    path: str | None = None
    target: str | None = None

    @property
    def data_section(self) -> dict:
        if self.path is None:
            return {"dataset": self.name}
        return {"dataset": "file", "path": self.path, "target": self.target}


@dataclass
class BenchmarkConfig:
    datasets: list[DatasetEntry]
    samplers: list[str]
    seeds: list[int]
    schedule: dict[str, dict]          # dataset name or "default" -> {num_train_init, num_al_incr, al_iter}
    experiment: dict = field(default_factory=dict)  # ExperimentConfig sections shared by all runs
    uci_root: str | None = None
    models: list[str] = field(default_factory=lambda: ["bnn"])
    model_settings: dict = field(default_factory=dict)  # model name -> ExperimentConfig sections for it
    # sampler label -> ExperimentConfig sections for it; a label is a registry name unless its
    # settings set parms.sample_policy (then it names a variant, e.g. lrgpa with T = 10)
    sampler_settings: dict = field(default_factory=dict)
    test_fraction: float = 0.2
    source: str = "<benchmark config>"
    # a stored-settings file's content (al_bnn_lab.stored_settings): run keys come from it, not from the
    # settings today's defaults resolve to (for reports of committed tables only; not part of as_dict)
    stored_settings: dict | None = None

    def as_dict(self) -> dict:
        return dict(datasets=[e.name if e.path is None else dict(name=e.name, path=e.path, target=e.target)
                              for e in self.datasets],
                    samplers=self.samplers, seeds=self.seeds, uci_root=self.uci_root,
                    test_fraction=self.test_fraction, schedule=self.schedule, experiment=self.experiment,
                    models=self.models, model_settings=self.model_settings, sampler_settings=self.sampler_settings)


def load_benchmark_config(path: str | Path, quick: bool = False) -> BenchmarkConfig:
    """Read a benchmark YAML; with quick=True its `quick:` section overrides the rest."""
    raw = read_yaml(path, "benchmark config", mapping=True)
    unknown = sorted(set(raw) - set(BENCHMARK_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {short_repr(unknown)}; allowed: {', '.join(BENCHMARK_KEYS)}")
    raw = with_quick({str(path): raw}, quick)
    return benchmark_config_from_dict(raw, str(path) + (" (quick)" if quick else ""))


def benchmark_config_from_dict(raw: dict, source: str) -> BenchmarkConfig:
    """A benchmark config from its parsed mapping: the sweep's own keys (datasets, samplers, seeds,
    schedule, ...) checked here, its config sections (experiment, model_settings, sampler_settings)
    and test_fraction/uci_root by the experiment config's schema (al_bnn.config), then every run's
    merged config validated, all before any work."""
    datasets = _dataset_entries(raw.get("datasets") or [], source)
    samplers = raw.get("samplers") or []
    seeds = raw.get("seeds") or []
    if not datasets or not samplers or not seeds:
        raise ConfigError(f"{source}: 'datasets', 'samplers' and 'seeds' must each list at least one value")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: key 'seeds' must be distinct non-negative integers, got {short_repr(seeds)}")
    schedule = _checked_schedule(raw.get("schedule") or {}, source)
    models = raw.get("models") or ["bnn"]
    model_settings, sampler_settings = _checked_settings(raw, source)
    samplers = [str(s) for s in samplers]
    bad_labels = [s for s in samplers if not re.fullmatch(r"[A-Za-z0-9_.-]+", s)]
    if bad_labels or len(set(samplers)) != len(samplers):
        raise ConfigError(f"{source}: key 'samplers' must be distinct labels of letters, digits, '_', '.' or '-' "
                          f"(they name files), got {short_repr(samplers)}")
    experiment = raw.get("experiment") or {}
    for key, sections in [("experiment", experiment), *((f"model_settings.{m}", v) for m, v in model_settings.items()),
                          *((f"sampler_settings.{s}", v) for s, v in sampler_settings.items())]:
        check_sections(sections, source, key)
    config = BenchmarkConfig(datasets=datasets, samplers=samplers, seeds=list(seeds), schedule=schedule,
                             experiment=experiment,
                             uci_root=check_key("data.uci_root", raw.get("uci_root"), f"{source}: key 'uci_root'"),
                             test_fraction=check_key("data.test_fraction",
                                                     raw.get("test_fraction", DataConfig.test_fraction),
                                                     f"{source}: key 'test_fraction'"),
                             source=source, models=[str(m) for m in models], model_settings=model_settings,
                             sampler_settings=sampler_settings)
    for entry in datasets:  # validate every run's config now, before any work
        for model in config.models:
            for sampler in config.samplers:
                experiment_config(config, entry, sampler, seeds[0], pool_size=10**9, model=model)
    return config


def _dataset_entries(items: list, source: str) -> list[DatasetEntry]:
    datasets = []
    for item in items:
        if isinstance(item, str):
            datasets.append(DatasetEntry(item))
        elif isinstance(item, dict) and "name" in item:
            datasets.append(DatasetEntry(str(item["name"]), item.get("path"), item.get("target")))
        else:
            raise ConfigError(f"{source}: key 'datasets': each entry is a name or {{name, path, target}}, got "
                              f"{short_repr(item)}")
    from al_bnn.paths import safe_name

    for entry in datasets:  # a dataset's name names its folder of run files
        safe_name(entry.name, f"{source}: key 'datasets': dataset name")
    return datasets


def _checked_schedule(schedule: dict, source: str) -> dict:
    if "default" not in schedule:
        raise ConfigError(f"{source}: key 'schedule' needs a 'default' entry with {', '.join(SCHEDULE_KEYS)}")
    for name, entry in schedule.items():
        if not isinstance(entry, dict) or set(entry) - set(SCHEDULE_KEYS):
            raise ConfigError(f"{source}: key 'schedule.{name}' must set only {', '.join(SCHEDULE_KEYS)}, "
                              f"got {short_repr(entry)}")
    return schedule


def _checked_settings(raw: dict, source: str) -> tuple[dict, dict]:
    """(model_settings, sampler_settings): config sections per model name and per sampler label,
    neither setting the data or the schedule, which every run of a dataset shares."""
    model_settings = raw.get("model_settings") or {}
    from al_bnn.models import MODEL_NAMES

    if not isinstance(model_settings, dict) or set(model_settings) - set(MODEL_NAMES):
        raise ConfigError(f"{source}: key 'model_settings' maps model names ({', '.join(MODEL_NAMES)}) to config "
                          f"sections, got {short_repr(model_settings)}")
    sampler_settings = raw.get("sampler_settings") or {}
    if not isinstance(sampler_settings, dict) or not all(isinstance(v, dict) for v in sampler_settings.values()):
        raise ConfigError(f"{source}: key 'sampler_settings' maps sampler labels to config sections, e.g. "
                          "{gpa_T10: {parms: {sample_policy: lrgpa, n_mc_samples: 10}}}, "
                          f"got {short_repr(sampler_settings)}")
    for key, settings in [*(("sampler_settings", v) for v in sampler_settings.values()),
                          *(("model_settings", v) for v in model_settings.values() if isinstance(v, dict))]:
        if "data" in settings or "al_schedule" in settings:
            # the runs of a (dataset, model) share one pool, which fractional schedules are resolved on
            raise ConfigError(f"{source}: key '{key}' must not set 'data' or 'al_schedule' (every run of a dataset "
                              "shares its data and schedule); set them in 'experiment' or 'schedule'")
    return model_settings, sampler_settings


def _schedule_counts(schedule: dict, pool_size: int, where: str) -> dict:
    counts = {}
    for key in SCHEDULE_KEYS:
        value = schedule[key]
        if key != "al_iter" and isinstance(value, float) and 0 < value < 1:
            value = max(1, int(round(value * pool_size)))  # a fraction of the pool
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: '{key}' must be an integer or a fraction in (0, 1), got {short_repr(value)}")
        counts[key] = value
    return counts


def schedule_for(config: BenchmarkConfig, dataset: str, pool_size: int) -> dict:
    """The dataset's schedule in points: its own entry or the default, fractions resolved."""
    entry = merge_sections(config.schedule["default"], config.schedule.get(dataset, {}))
    missing = [key for key in SCHEDULE_KEYS if key not in entry]
    if missing:
        raise ConfigError(f"{config.source}: schedule for {short_repr(dataset)} lacks {missing}")
    return _schedule_counts(entry, pool_size, f"{config.source}: schedule.{dataset}")


def experiment_config(config: BenchmarkConfig, entry: DatasetEntry, sampler: str, seed: int, pool_size: int,
                      model: str = "bnn"):
    """The validated ExperimentConfig of one run; `sampler` is a label of config.samplers."""
    raw = merge_sections(config.experiment, config.model_settings.get(model, {}))
    raw = merge_sections(raw, {"parms": {"sample_policy": sampler}})
    raw = merge_sections(raw, config.sampler_settings.get(sampler, {}))
    raw = merge_sections(raw, {
        "seed": seed,
        "al_schedule": schedule_for(config, entry.name, pool_size),
        "parms": {"name_model": model},
        "data": {**entry.data_section, "uci_root": config.uci_root, "test_fraction": config.test_fraction},
    })
    return config_from_dict(raw, f"{config.source} [{entry.name}, {model}, {sampler}, seed {seed}]")


def config_fingerprint(config: BenchmarkConfig) -> str:
    """The sweep config's fingerprint (recorded in config.yaml and in run files of older versions)."""
    return digest(config.as_dict(), length=16)


def run_key(config: BenchmarkConfig, entry: DatasetEntry, model: str, sampler: str, seed: int) -> str:
    """A hash of what determines one run's numbers: its resolved ExperimentConfig (sampler policy
    and settings, model, network, training, seed, dataset and split) with the schedule as
    configured (fractions stay fractions), but not where the data folder is, the sampler's label or
    the sweep's other runs; a file dataset enters by its content's hash, not its path. Two sweeps'
    runs with the same key are the same run (a run's numbers do not depend on the stack it is
    trained in). Only values that differ from the frozen RUN_KEY_BASELINE enter the hash, so a key
    added to the schema later (at its neutral value) leaves the keys of earlier runs as they were,
    and a changed default changes the keys of the runs that use it. The key covers settings, not
    code: a change of the package that changes numbers needs new runs (--overwrite, or a fresh
    results directory). With config.stored_settings the key is the one of the stored settings."""
    if config.stored_settings is not None:
        from al_bnn_lab.stored_settings import stored_run_key

        return stored_run_key(config.stored_settings, entry.name, model, sampler, seed)
    return settings_key(run_settings(config, entry, model, sampler, seed))


def run_settings(config: BenchmarkConfig, entry: DatasetEntry, model: str, sampler: str, seed: int) -> dict:
    """What run_key hashes, resolved (every key, at today's defaults where the config leaves it):
    what a sweep stores beside its tables so their keys can be recomputed whatever the defaults."""
    settings = experiment_config(config, entry, sampler, seed, pool_size=10**9, model=model).to_dict()
    settings["data"].pop("uci_root", None)
    if settings["data"].get("path"):
        settings["data"]["path"] = "sha256:" + _file_digest(settings["data"]["path"])
    configured = merge_sections(config.schedule["default"], config.schedule.get(entry.name, {}))
    settings["al_schedule"] = {key: configured[key] for key in SCHEDULE_KEYS}
    return settings


def settings_key(settings: dict) -> str:
    """The run key of resolved settings: a hash of the values that differ from the frozen
    RUN_KEY_BASELINE (a key the settings lack counts as at its baseline value)."""
    changed = _changed_values(settings, RUN_KEY_BASELINE)
    return digest(changed, length=16)


_digests: dict[tuple, str] = {}


def _file_digest(path: str) -> str:
    stat = os.stat(path)
    identity = (path, stat.st_mtime_ns, stat.st_size)
    if identity not in _digests:
        _digests[identity] = digest(Path(path))
    return _digests[identity]


def _changed_values(settings: dict, defaults: dict) -> dict:
    changed = {}
    for key, value in settings.items():
        default = defaults.get(key)
        if isinstance(value, dict) and isinstance(default, dict):
            nested = _changed_values(value, default)
            if nested:
                changed[key] = nested
        elif key not in defaults or value != default:
            changed[key] = value
    return changed


def expected_steps(config: BenchmarkConfig, dataset: str) -> list[int]:
    return list(range(schedule_for(config, dataset, 10**9)["al_iter"] + 1))


def run_rows_problem(table: pd.DataFrame, steps: list[int]) -> str | None:
    """Why `table` (one run's rows) is not a finished run with these AL steps, or None."""
    found = pd.to_numeric(table["al_iter"], errors="coerce").tolist()
    if found != steps:
        return f"has AL steps {found}, not {steps[0]}..{steps[-1]}"
    if not np.isfinite(pd.to_numeric(table["test_rmse"], errors="coerce")).all():
        return "has a missing or non-finite test_rmse"
    return None


# -- tasks -----------------------------------------------------------------------------------------

def sweep_runs(config: BenchmarkConfig) -> Iterable[tuple[DatasetEntry, str, str, int]]:
    """Every run of the sweep as (dataset entry, model, sampler, seed), in the sweep's order."""
    for entry in config.datasets:
        for model in config.models:
            for seed in config.seeds:
                for sampler in config.samplers:
                    yield entry, model, sampler, seed


def run_count(config: BenchmarkConfig) -> int:
    return len(config.datasets) * len(config.models) * len(config.samplers) * len(config.seeds)


def run_file(output: Path, dataset: str, model: str, sampler: str, seed: int) -> Path:
    from al_bnn.paths import safe_name  # names from the config become folders: no '/', '..' or absolute names

    return (output / "runs" / safe_name(dataset, "dataset name") / safe_name(model, "model name")
            / safe_name(f"{sampler}_rs_{seed}.csv", "sampler label"))


def read_run_file(path: Path, config: BenchmarkConfig, entry: DatasetEntry, model: str, sampler: str, seed: int,
                  fingerprint: str) -> tuple[pd.DataFrame | None, str | None]:
    """(the table, None) if the run file at `path` holds this finished run of this sweep config, else
    (None, why not): unreadable or empty, columns missing, written for other settings or another
    run, or not every AL step present. A file of an older version, tagged with the whole sweep's
    `fingerprint` instead of the run's key, counts if that fingerprint matches. The table returned
    carries the run's key."""
    try:
        table = pd.read_csv(path, dtype={RUN_KEY_COLUMN: str, LEGACY_FINGERPRINT_COLUMN: str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        return None, f"unreadable ({type(error).__name__}: {error})"
    key = run_key(config, entry, model, sampler, seed)
    tag_column = RUN_KEY_COLUMN if RUN_KEY_COLUMN in table else LEGACY_FINGERPRINT_COLUMN
    missing = [column for column in [*TIDY_COLUMNS, tag_column] if column not in table]
    if missing:
        return None, f"lacks the columns {missing}"
    if set(table[tag_column].astype(str)) != {key if tag_column == RUN_KEY_COLUMN else fingerprint}:
        return None, "written for other settings"
    identity = table[["dataset", "model", "sampler", "seed"]].astype(str).drop_duplicates()
    if identity.values.tolist() != [[entry.name, model, sampler, str(seed)]]:
        return None, f"holds rows of other runs ({identity.values.tolist()})"
    problem = run_rows_problem(table, expected_steps(config, entry.name))
    if problem:
        return None, problem
    return table.drop(columns=[LEGACY_FINGERPRINT_COLUMN], errors="ignore").assign(**{RUN_KEY_COLUMN: key}), None


# what pandas.read_csv raises on a file that is not a readable CSV table (EOFError and zlib.error: a
# truncated or corrupt .csv.gz)
UNREADABLE_TABLE_ERRORS = (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error)


def reuse_runs(config: BenchmarkConfig, output: Path, sources: Sequence[str | Path], writer,
               taken: list | None = None) -> dict[str, int]:
    """Write into `output` each run of this sweep that is not finished there but is finished in one
    of `sources`: tidy tables with a run_key column (a sweep's benchmark.csv, a study's CSV, also
    gzip-compressed as .csv.gz) or
    folders searched for them (another results directory). Runs match by key, so a label may differ
    (the benchmark's lrgpa is the study's gpa); the rows get this sweep's labels. Returns the count
    taken from each source (and appends (dataset, model, sampler, seed, source) of each run taken to
    `taken`, for the report). Only CSV text is read, nothing that could run code."""
    wanted = _runs_to_reuse(config, output)
    counts = {}
    for source in sources:
        source = Path(source)
        files = _reuse_files(source)
        counts[str(source)] = 0
        for file in files:
            table = _read_reuse_table(file, in_folder=source.is_dir())
            if table is None:
                continue
            for run in _take_runs(config, output, table, wanted, writer):
                counts[str(source)] += 1
                if taken is not None:
                    taken.append((*run, str(source)))
    return counts


def _runs_to_reuse(config: BenchmarkConfig, output: Path) -> dict[str, tuple[str, str, str, int]]:
    """The runs of this sweep not finished in `output`, by run key: (dataset, model, sampler, seed).
    Runs of identical settings share a key, so only the last of them is taken (with a warning)."""
    fingerprint = config_fingerprint(config)
    wanted: dict[str, tuple[str, str, str, int]] = {}
    for entry, model, sampler, seed in sweep_runs(config):
        path = run_file(output, entry.name, model, sampler, seed)
        if path.exists() and read_run_file(path, config, entry, model, sampler, seed, fingerprint)[1] is None:
            continue
        key = run_key(config, entry, model, sampler, seed)
        if key in wanted:
            logger.warning("%s / %s / %s / seed %d has the same settings as %s: only one of them is taken from "
                           "other results", entry.name, model, sampler, seed, " / ".join(map(str, wanted[key])))
        wanted[key] = (entry.name, model, sampler, seed)
    return wanted


def _reuse_files(source: Path) -> list[Path]:
    """The tables a --reuse source names: the file itself, or each CSV table in the folder."""
    if not source.exists():
        raise ConfigError(f"--reuse {source}: no such file or folder")
    if not source.is_dir():
        return [source]
    # compressed copies first: the study replaces a q<N>.csv by its .csv.gz, so a .csv beside one is stale
    return [*sorted(source.glob("**/*.csv.gz")), *sorted(source.glob("**/*.csv"))]


def _read_reuse_table(file: Path, in_folder: bool) -> pd.DataFrame | None:
    """`file` as a tidy table of runs with run keys; None for a file found in a folder that is not
    one (e.g. summary.csv), a ConfigError for a file named on its own."""
    try:
        table = pd.read_csv(file, dtype={RUN_KEY_COLUMN: str})
    except (pd.errors.EmptyDataError, *UNREADABLE_TABLE_ERRORS) as error:
        if in_folder:
            return None
        raise ConfigError(f"--reuse {file}: not a readable CSV table ({type(error).__name__}: {error})") from error
    if RUN_KEY_COLUMN not in table or any(column not in table for column in TIDY_COLUMNS):
        if in_folder:
            return None
        raise ConfigError(f"--reuse {file}: not a tidy table of runs with a {RUN_KEY_COLUMN} column (tables "
                          "written before run keys existed cannot be matched to settings)")
    return table


def _take_runs(config: BenchmarkConfig, output: Path, table: pd.DataFrame,
               wanted: dict[str, tuple[str, str, str, int]], writer) -> Iterable[tuple[str, str, str, int]]:
    """Write the complete runs of `table` that are `wanted` into their run files under this sweep's
    labels, removing each from `wanted`; yields (dataset, model, sampler, seed) of each as it is written."""
    for key, rows in table.groupby(RUN_KEY_COLUMN, sort=False):
        if key not in wanted:
            continue
        dataset, model, sampler, seed = wanted[key]
        rows = rows.sort_values("al_iter", kind="stable")
        if run_rows_problem(rows, expected_steps(config, dataset)) is not None:
            continue
        rows = rows.assign(dataset=dataset, model=model, sampler=sampler, seed=seed)
        # columns of other runs in the source table (e.g. their pick comparisons) stay behind
        rows = rows[[c for c in rows if c in TIDY_COLUMNS or c == RUN_KEY_COLUMN or rows[c].notna().any()]]
        path = run_file(output, dataset, model, sampler, seed)
        writer.write_text(str(path.relative_to(output)), rows.to_csv(index=False))
        del wanted[key]
        yield dataset, model, sampler, seed


CHECKPOINT_FOLDER = "checkpoints"
CHECKPOINT_PREFIX = CHECKPOINT_FOLDER + "/"
CHECKPOINT_TEMPORARY = re.compile(r"\.checkpoint_\d+\.npz\..+\.tmp")  # a save cut short (atomic_write_bytes)


def task_checkpoints(task: dict) -> list[str]:
    """The checkpoint files (relative to the sweep's folder) of a local task's stacks, one per
    stack: its runs stack by their training settings (the task's runs share one dataset and one
    split size), checkpoint_<i>.npz as the loop numbers them."""
    from al_bnn.paths import safe_name  # names from the config become folders

    config = benchmark_config_from_dict(task["config"], task["source"])
    entry = next(e for e in config.datasets if e.name == task["dataset"])
    signatures = {experiment_config(config, entry, sampler, seed, pool_size=10**9, model=task["model"])
                  .training_signature() for sampler, seed in task["runs"]}
    folder = (f"{CHECKPOINT_FOLDER}/{safe_name(task['dataset'], 'dataset name')}/"
              f"{safe_name(task['model'], 'model name')}")
    return [f"{folder}/checkpoint_{index}.npz" for index in range(len(signatures))]


def pending_tasks(config: BenchmarkConfig, output: Path, plugins: Sequence[str] = (),
                  redo: list[str] | None = None) -> list[dict]:
    """One task per (dataset, model) with its unfinished (sampler, seed) runs: those without a
    complete run file of this config. With `redo`, each incomplete file found is appended to it
    with the reason."""
    fingerprint = config_fingerprint(config)
    tasks = []
    for entry in config.datasets:
        for model in config.models:
            runs = []
            for seed in config.seeds:
                for sampler in config.samplers:
                    path = run_file(output, entry.name, model, sampler, seed)
                    problem = (read_run_file(path, config, entry, model, sampler, seed, fingerprint)[1]
                               if path.exists() else "missing")
                    if problem is None:
                        continue
                    runs.append((sampler, seed))
                    if problem != "missing" and redo is not None:
                        redo.append(f"{path}: {problem}")
            if runs:
                tasks.append(dict(config=config.as_dict(), source=config.source, dataset=entry.name, model=model,
                                  runs=runs, plugins=list(plugins)))
    return tasks


class _ThisThread(logging.Filter):
    """Passes only the records of the thread that made it: a threaded worker (Dask's default) runs
    several tasks in one process, whose loggers they share, so a task's handlers would otherwise
    take the other tasks' lines too, under its own name."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread


class _LogCollector(logging.Handler):
    """Keeps a worker's log lines so the parent can write them to the sweep's log (but those of the
    logger named `skip`, written at once by the live handler instead); only this thread's."""

    def __init__(self, skip: str = ""):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.skip = skip
        self.addFilter(_ThisThread())

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != self.skip:
            self.lines.append(record.getMessage())


def _live_progress(prefix: str) -> logging.Handler:
    """A handler that writes the loop's phase lines of this thread's task to this process's stderr as
    they come (a local worker shares the sweep's), so a task that trains for hours shows it is alive."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prefix} %(message)s"))
    handler.addFilter(_ThisThread())  # only this task's lines, under its prefix
    return handler


def run_task(task: dict, threads: int | None = None) -> dict:
    """Run one (dataset, model)'s runs as one stack, in a worker process. Returns
    {"runs": {(dataset, model, sampler, seed): tidy rows}, "log": the task's log lines}."""
    import_plugins(task.get("plugins", ()), "in a worker process")  # before anything reads sampler names
    from al_bnn.models.tensorflow_setup import tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # this worker already ran a task; its thread pools keep their size
    from al_bnn.loop import PROGRESS_LOGGER, RunSpec, load_run_data

    config = benchmark_config_from_dict(task["config"], task["source"])
    entry = next(e for e in config.datasets if e.name == task["dataset"])
    model = task["model"]
    probe = experiment_config(config, entry, task["runs"][0][0], task["runs"][0][1], pool_size=10**9, model=model)
    pool_size = len(load_run_data(RunSpec("probe", probe)).pool_x)
    specs = [RunSpec(f"{sampler}_rs_{seed}", experiment_config(config, entry, sampler, seed, pool_size, model),
                     sampler) for sampler, seed in task["runs"]]
    stack_sizes = Counter(spec.config.training_signature() for spec in specs)  # runs per stack
    collector, live = _LogCollector(skip=PROGRESS_LOGGER), _live_progress(f"[{entry.name} / {model}]")
    loop_logger, progress_logger = logging.getLogger("al_bnn"), logging.getLogger(PROGRESS_LOGGER)
    loop_logger.addHandler(collector)
    progress_logger.addHandler(live)
    previous_level = loop_logger.level
    loop_logger.setLevel(logging.INFO)
    try:
        results = _run_resuming(specs, task.get("checkpoint_dir"), task.get("checkpoints", 0), task.get("root"))
    finally:
        loop_logger.removeHandler(collector)
        progress_logger.removeHandler(live)
        loop_logger.setLevel(previous_level)
    runs = {(entry.name, model, spec.group, spec.config.seed):
            tidy_rows(entry.name, model, spec.group, result, pool_size, stack_sizes[spec.config.training_signature()])
            for spec, result in zip(specs, results, strict=True)}
    return {"runs": runs, "log": [f"[{entry.name} / {model}] {line}" for line in collector.lines]}


def _run_resuming(specs: list, checkpoint_dir: str | None, expected_stacks: int, root: str | None = None) -> list:
    """Run the task's specs, with checkpoint_dir from the checkpoints found there: a checkpoint
    refused (other runs, data or code; unreadable; weights that do not fit) is logged and the task
    starts afresh, since the parent redoes the whole task anyway. Each save checks again that no
    folder below `root` (the sweep's folder) has become a link. Without checkpoints when the stacks
    are not the ones the parent named in the manifest (it counted them from the settings) or no
    folder was given."""
    from al_bnn.checkpoint import CheckpointError, ResumeMismatchError
    from al_bnn.loop import prepare_experiments, run_prepared

    folder = Path(checkpoint_dir) if checkpoint_dir else None
    if folder is None:
        return run_prepared(prepare_experiments(specs), specs, show_progress=False)
    for resume in (True, False):
        try:
            stacks = prepare_experiments(specs, checkpoint_dir=folder, resume=resume)
            counted = len(stacks) == expected_stacks
            if not counted:
                logger.warning("%d stacks, not the %d counted from the settings: running without checkpoints",
                               len(stacks), expected_stacks)
            for stack in stacks:
                if counted:
                    stack.checkpoint_root = Path(root) if root else None
                else:  # the same prepared data, without the checkpoints it may have read
                    stack.checkpoint, stack.state = None, None
            return run_prepared(stacks, specs, show_progress=False)
        except (CheckpointError, ResumeMismatchError) as error:
            if not resume:
                raise
            # the refusal's own advice is for a single run's --resume; a sweep task just starts again
            logger.warning("the task's checkpoint in %s is refused, so the task starts afresh: %s", folder, error)
    raise AssertionError("unreachable: the second pass returns or raises")


def tidy_rows(dataset: str, model: str, sampler: str, result, pool_size: int, runs_in_stack: int) -> list[dict]:
    """One row per AL step: the last evaluation of each training phase, the step's selection and
    training seconds (training: the whole stack's, shared by its runs_in_stack runs) and any pick
    comparisons."""
    last_of_phase = {}
    for row in result.metrics:
        last_of_phase[row["al_iter"]] = row
    rows = []
    for acquisition in result.acquisitions:
        metrics = last_of_phase[acquisition["al_iter"]]
        rows.append(dict(dataset=dataset, model=model, sampler=sampler, seed=result.config.seed,
                         al_iter=acquisition["al_iter"], n_train=metrics["n_train"], test_rmse=metrics["test_rmse"],
                         test_log_likelihood=metrics["test_log_likelihood"],
                         test_coverage_90=metrics["test_coverage_90"],
                         selection_seconds=acquisition["selection_seconds"],
                         training_seconds=acquisition["training_seconds"], pool_size=pool_size,
                         runs_in_stack=runs_in_stack,
                         **{key: metrics[key] for key in CALIBRATION_COLUMNS if key in metrics},
                         **{key: value for key, value in acquisition.items() if key.startswith(COMPARISON_PREFIXES)}))
    return rows


class SchedulerUnreachableError(ConfigError):
    """The Dask scheduler did not answer within the connect timeout, or what answered is not one."""


class WorkerDiedError(ConfigError):
    """A task's worker process died every time the task ran (killed, e.g. by the kernel's
    out-of-memory killer); the other tasks' runs are kept."""


def _watch_parent(parent_pid: int, every: float = 1.0) -> None:
    """In a worker process: exit as soon as `parent_pid`, the process that started it, is gone
    (killed with -9, say; the worker is then re-parented), instead of computing on and idling as an
    orphan. The pid comes from the parent: read here, it would already be the new parent's when the
    sweep died while this worker was still starting."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="al_bnn-parent-watch", daemon=True).start()


CONNECT_GRACE_S = 2.0  # connecting gives up at most this long after --connect-timeout
MAX_HANDSHAKE_BYTES = 1 << 20  # a Dask scheduler's first message (its handshake) is a few hundred bytes


def connect(scheduler: str, timeout: float, check_answer: bool = True):
    """A Dask client for `scheduler`, or SchedulerUnreachableError naming it: when nothing accepts the
    connection within `timeout` s, when what accepts it does not answer like a Dask scheduler (an
    HTTP server, a silent one), and whatever phase of connecting hangs, within `timeout` +
    CONNECT_GRACE_S s (the connecting runs in a thread that is abandoned then). `check_answer`
    reads the first bytes a tcp:// scheduler sends before Dask does (Dask would read a length there
    and allocate that much)."""
    deadline = time.monotonic() + timeout
    outcome: dict = {}
    lock = threading.Lock()

    def attempt() -> None:
        try:
            if check_answer:
                _check_answers_like_dask(scheduler, deadline, timeout)
            from distributed import Client

            client = Client(scheduler, timeout=max(0.1, deadline - time.monotonic()))
        except BaseException as error:  # handed to the waiting thread
            outcome["error"] = error
            return
        with lock:
            if outcome.get("abandoned"):
                client.close()
            else:
                outcome["client"] = client

    thread = threading.Thread(target=attempt, name="al_bnn-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + CONNECT_GRACE_S)
    with lock:
        if "client" in outcome:
            return outcome["client"]
        outcome["abandoned"] = True
    error = outcome.get("error")
    if isinstance(error, SchedulerUnreachableError):
        raise error
    if error is None:
        raise _unreachable(scheduler, timeout, "connecting did not finish")
    if isinstance(error, (OSError, TimeoutError, ValueError)):
        raise _unreachable(scheduler, timeout, f"{type(error).__name__}: {short_text(str(error))}")
    if isinstance(error, Exception):  # e.g. MemoryError from a length read out of another protocol's bytes
        raise SchedulerUnreachableError(
            f"{scheduler} answered, but not as a Dask scheduler does ({type(error).__name__}: "
            f"{short_text(str(error))}); check the address and port (a scheduler listens on 8786 by default)")
    raise error


def _unreachable(scheduler: str, timeout: float, why: str) -> SchedulerUnreachableError:
    return SchedulerUnreachableError(
        f"could not reach the Dask scheduler at {scheduler} within {timeout:g} s ({why}); check the address and "
        "that a scheduler runs there (`dask scheduler`), or run locally without --scheduler")


def _check_answers_like_dask(scheduler: str, deadline: float, timeout: float) -> None:
    """For a tcp:// address: connect (retrying a refusal until `deadline`, as Dask does) and read the
    8-byte length that a Dask scheduler sends first; SchedulerUnreachableError when nothing accepts,
    nothing answers before `deadline` (`timeout` s from the start), or the length is not a handshake's. Other schemes (tls://,
    ...) are left to Dask, under connect's overall limit."""
    import socket
    import struct

    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(scheduler, strict=False)
    if scheme != "tcp":
        return
    host, port = parse_host_port(location, 8786)
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=max(0.01, deadline - time.monotonic()))
            break
        except ConnectionRefusedError:
            if time.monotonic() + 0.2 >= deadline:
                raise
            time.sleep(0.2)
    header = b""
    with sock:
        try:
            while len(header) < 8:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(8 - len(header))
                if not chunk:
                    break
                header += chunk
        except TimeoutError:
            raise SchedulerUnreachableError(
                f"{scheduler} accepted the connection but sent nothing within {timeout:g} s, where a Dask "
                "scheduler greets at once; check the address and port (a scheduler listens on 8786 by "
                "default), or raise --connect-timeout if the scheduler is overloaded") from None
    length = struct.unpack("Q", header)[0] if len(header) == 8 else 0
    if not 0 < length <= MAX_HANDSHAKE_BYTES:
        raise SchedulerUnreachableError(
            f"{scheduler} answered, but not as a Dask scheduler does (its first bytes: {short_repr(header)}); "
            "check the address and port (a scheduler listens on 8786 by default; 8787 is its dashboard)")


def execute(tasks: Sequence[dict], scheduler: str | None = None, local_cluster: bool = False,
            workers: int = 1, plugins: Sequence[str] = (), connect_timeout: float = 10.0,
            stop: threading.Event | None = None) -> Iterable[dict]:
    """Run tasks on local processes (default) or a Dask cluster; yields each task's result as it ends.
    Every worker imports `plugins` before its first task (a Dask cluster's workers are checked
    before any task is submitted); local workers exit when this process dies."""
    if not tasks:
        return
    if scheduler or local_cluster:
        from distributed import LocalCluster, as_completed

        cluster = None
        if local_cluster:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
        try:
            client = connect(cluster.scheduler_address if cluster is not None else scheduler, connect_timeout,
                             check_answer=cluster is None)  # a cluster started here is Dask's own
        except BaseException:
            if cluster is not None:
                cluster.close()
            raise
        threads = threads_per_worker(workers) if local_cluster else None
        try:
            if plugins:
                client.run(import_plugins, list(plugins), "on a Dask worker")
            if local_cluster:  # its worker processes are this process's children: they exit with it
                client.run(_watch_parent, os.getpid())
            futures = [client.submit(run_task, task, threads, pure=False) for task in tasks]
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    yield from _execute_locally(tasks, workers, stop)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS keeps one (set by `taskset`
    or a batch scheduler), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks on this OS
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """TensorFlow threads for each of `workers` local workers: the usable CPUs shared out, at least
    one, so that two sweeps pinned to separate cores do not each start threads for the whole machine."""
    return max(1, usable_cpus() // workers)


def _start_local_worker(sweep_pid: int) -> None:
    """Initialiser of a local worker: stopping is the sweep process's decision (the first signal
    lets the running tasks finish), so a worker ignores the SIGINT and SIGTERM that a terminal or a
    batch scheduler sends to the whole process group; it still exits with its parent."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    _watch_parent(sweep_pid)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


MAX_TASK_RETRIES = 2  # a task whose worker process dies is run again at most this many times


def _execute_locally(tasks: Sequence[dict], workers: int, stop: threading.Event | None = None) -> Iterable[dict]:
    """Run tasks on `workers` spawned processes, at most one task each at a time, so that a stop
    (`stop` set, e.g. by the sweep's first SIGINT or SIGTERM) leaves the waiting tasks unstarted
    while the running ones finish and are yielded; then StoppedEarly is raised. An exception on the
    way (a second signal: Aborted) kills the workers at once, losing the running tasks.

    Each worker is a pool of its own, so a worker that dies (SIGKILL, the out-of-memory killer)
    breaks only its own pool: the other workers' running tasks go on, finished ones were yielded
    already, and its task is logged and run again on a fresh worker, at most MAX_TASK_RETRIES times;
    a task that has killed its worker more often is logged and skipped, and WorkerDiedError is
    raised once the other tasks are done."""
    from concurrent.futures import FIRST_COMPLETED, wait

    stop = stop or threading.Event()
    local = _LocalWorkers(tasks, workers)
    finished = False
    try:
        while local.waiting or local.running:
            free = local.free_slots()
            local.make_pools(free)
            replaced = local.hand_out(free, stop)
            if not local.running:
                if replaced and local.waiting and not stop.is_set():
                    continue
                break
            done, _ = wait(local.running, return_when=FIRST_COMPLETED)
            for future in done:
                result = local.settle(future)
                if result is not _TASK_RETRIED:
                    yield result
        finished = True
    finally:
        local.close(finished)
    local.raise_if_unfinished()


_TASK_RETRIED = object()  # what _LocalWorkers.settle returns for a task whose worker died


class _LocalWorkers:
    """The state of _execute_locally: one single-process pool per worker slot (None until needed or
    after its process died), the tasks waiting (in order, with their index) and running, and how
    often each task's worker died."""

    def __init__(self, tasks: Sequence[dict], workers: int):
        import multiprocessing

        self.workers = workers
        self.threads = threads_per_worker(workers)
        # a fresh interpreter per worker: TF's thread settings apply
        self.context = multiprocessing.get_context("spawn")
        self.waiting = list(enumerate(tasks))
        self.deaths: Counter = Counter()  # task index -> how often its worker died
        self.given_up: list[str] = []
        self.pools: list = [None] * workers  # slot -> its ProcessPoolExecutor, or None
        self.processes: dict[int, object] = {}  # slot -> its worker process (for its exit status)
        self.running: dict = {}  # future -> (slot, task index, task)

    def free_slots(self) -> list[int]:
        busy = {slot for slot, _, _ in self.running.values()}
        return [slot for slot in range(self.workers) if slot not in busy]

    def make_pools(self, free: list[int]) -> None:
        """A pool for each free slot that a waiting task will take. Pools are made before the stop
        signals are blocked: making the first one starts multiprocessing's resource tracker, which
        unblocks SIGINT and SIGTERM when it is up."""
        from concurrent.futures import ProcessPoolExecutor

        for slot in free[:len(self.waiting)]:
            if self.pools[slot] is None:
                self.pools[slot] = ProcessPoolExecutor(max_workers=1, mp_context=self.context,
                                                       initializer=_start_local_worker, initargs=(os.getpid(),))

    def hand_out(self, free: list[int], stop: threading.Event) -> bool:
        """Start waiting tasks on the `free` slots unless `stop` is set; whether the pool of an idle
        worker that had died was dropped (a new one is made next round). Stop signals wait while
        tasks are handed out: a worker started now inherits them blocked until its initialiser
        ignores them, and a stop cannot fall between the check and the start."""
        from concurrent.futures.process import BrokenProcessPool

        replaced = False
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            while self.waiting and free and not stop.is_set():
                slot = free.pop(0)
                try:
                    future = self.pools[slot].submit(run_task, self.waiting[0][1], self.threads)
                except BrokenProcessPool:  # its worker died while idle: a new one is made next round
                    logger.warning("an idle worker process%s; starting a new one",
                                   _how_it_ended(self.processes.pop(slot, None)))
                    self.pools[slot].shutdown(wait=True)
                    self.pools[slot], replaced = None, True
                    continue
                index, task = self.waiting.pop(0)
                self.running[future] = (slot, index, task)
                self.processes[slot] = next(iter((getattr(self.pools[slot], "_processes", None)
                                                  or {0: None}).values()))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return replaced

    def settle(self, future) -> object:
        """The result of a finished task, or _TASK_RETRIED when its worker died: the task then waits
        first in line for a new worker, or is given up after MAX_TASK_RETRIES retries."""
        from concurrent.futures.process import BrokenProcessPool

        slot, index, task = self.running.pop(future)
        try:
            return future.result()
        except BrokenProcessPool:
            pool, self.pools[slot] = self.pools[slot], None
            pool.shutdown(wait=True)  # broken: its only process has ended
        self.deaths[index] += 1
        what = (f"the worker process running task {task.get('dataset')} / {task.get('model')} "
                f"({len(task.get('runs', ()))} run(s)){_how_it_ended(self.processes.pop(slot, None))}")
        if self.deaths[index] <= MAX_TASK_RETRIES:
            logger.warning("%s; running the task again on a new worker (retry %d of %d); the other "
                           "tasks go on", what, self.deaths[index], MAX_TASK_RETRIES)
            self.waiting.insert(0, (index, task))
        else:
            logger.error("%s, the %s time in a row; giving the task up (its runs stay unfinished: the "
                         "next start of the sweep runs them again)", what, _ordinal(self.deaths[index]))
            self.given_up.append(f"{task.get('dataset')} / {task.get('model')}")
        return _TASK_RETRIED

    def close(self, finished: bool) -> None:
        """Shut every pool down: after their tasks when `finished`, else (an error or a second
        signal) at once, killing the workers rather than waiting for their tasks."""
        if not finished:
            for pool in self.pools:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.kill()  # not terminate(): the workers ignore SIGTERM
        for pool in self.pools:
            if pool is not None:
                pool.shutdown(wait=finished, cancel_futures=True)

    def raise_if_unfinished(self) -> None:
        """StoppedEarly if tasks were left waiting (a stop), else WorkerDiedError if any was given up."""
        if self.waiting:
            raise StoppedEarly(len(self.waiting))
        if self.given_up:
            raise WorkerDiedError(
                f"the worker processes of {len(self.given_up)} task(s) ({', '.join(self.given_up)}) died "
                f"{MAX_TASK_RETRIES + 1} times each (see log.txt); the other tasks' runs are written. If the system "
                "ran out of memory, use fewer --workers or smaller settings, then run the same command again to "
                "finish")


def _how_it_ended(process) -> str:
    """How a worker process ended, for the log: its pid and the signal that killed it, or its exit code."""
    code = getattr(process, "exitcode", None)
    if code is None:
        return " ended"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f", pid {process.pid}, was killed by {name}"
    return f", pid {process.pid}, exited with code {code}"


def _ordinal(count: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(count, f"{count}th")


# -- aggregation -------------------------------------------------------------------------------------

def collect(output: Path, config: BenchmarkConfig, finished_only: bool = False) -> pd.DataFrame:
    """The tidy table of every finished run of this config, each with its run key; a run file that
    is there but not complete is an error naming it (a finished sweep has redone every such file),
    or with `finished_only` (a snapshot while the sweep runs) left out."""
    fingerprint = config_fingerprint(config)
    frames = []
    for entry, model, sampler, seed in sweep_runs(config):
        path = run_file(output, entry.name, model, sampler, seed)
        if not path.exists():
            continue
        table, problem = read_run_file(path, config, entry, model, sampler, seed, fingerprint)
        if problem and finished_only:
            continue
        if problem:
            raise DataFileError(f"{path}: not a finished run of this sweep: {problem}; rerun the sweep to redo it")
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=[*TIDY_COLUMNS, RUN_KEY_COLUMN])
    table = pd.concat(frames, ignore_index=True)
    comparisons = sorted(c for c in table if c.startswith(COMPARISON_PREFIXES))
    optional = [c for c in OPTIONAL_COLUMNS if c in table]  # absent from run files of older versions
    calibration = [c for c in CALIBRATION_COLUMNS if c in table]  # calibrated runs only
    return table[TIDY_COLUMNS + optional + calibration + comparisons + [RUN_KEY_COLUMN]]


def summarise(table: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Per dataset, model and sampler: final RMSE mean and standard error over seeds, mean log
    RMSE over the AL steps, ratio of final RMSE to the baseline's (same dataset and model), paired
    wins/ties/losses against it, and the final step's test log-likelihood and 90% interval
    coverage (means over seeds; coverage NaN for run files of versions that did not record it)."""
    rows = []
    keys = ["dataset", "model", "sampler"]
    final = table.loc[table.groupby([*keys, "seed"])["al_iter"].idxmax()]
    mean_log = table.assign(log_rmse=np.log(table["test_rmse"])).groupby([*keys, "seed"])["log_rmse"].mean()
    for (dataset, model, sampler), group in final.groupby(keys, sort=False):
        values = group.set_index("seed")["test_rmse"]
        base = final[(final["dataset"] == dataset) & (final["model"] == model)
                     & (final["sampler"] == baseline)].set_index("seed")["test_rmse"]
        paired = values.index.intersection(base.index)
        difference = (values[paired] - base[paired]) / base[paired]
        log_values = mean_log.loc[dataset, model, sampler]
        part = table[(table["dataset"] == dataset) & (table["model"] == model) & (table["sampler"] == sampler)]
        rows.append(dict(
            dataset=dataset, model=model, sampler=sampler, seeds=len(values),
            final_rmse_mean=values.mean(),
            final_rmse_se=values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan"),
            mean_log_rmse=log_values.mean(),
            ratio_to_random=values.mean() / base.mean() if len(base) else float("nan"),
            **dict(zip(("wins", "ties", "losses"), wins_ties_losses(difference.to_numpy()), strict=True)),
            final_log_likelihood=group["test_log_likelihood"].mean(),
            final_coverage_90=group["test_coverage_90"].mean() if "test_coverage_90" in group else float("nan"),
            selection_seconds=per_run_total(part, "selection_seconds"),
            training_seconds=per_run_total(part, "training_seconds")))
    return pd.DataFrame(rows)


def wins_ties_losses(relative_differences: np.ndarray) -> tuple[int, int, int]:
    """Paired wins/ties/losses of a lower-is-better metric (e.g. RMSE) from relative differences
    to the baseline; a difference within TIE_TOLERANCE is a tie."""
    d = np.asarray(relative_differences)
    return int((d < -TIE_TOLERANCE).sum()), int((np.abs(d) <= TIE_TOLERANCE).sum()), int((d > TIE_TOLERANCE).sum())


def per_run_total(part: pd.DataFrame, column: str) -> float:
    """Mean over seeds of the per-run total of `column`."""
    return float(part.groupby("seed")[column].sum().mean())


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = ["| dataset | model | sampler | seeds | final test RMSE (mean +- SE) | mean log RMSE over AL steps | "
             "ratio to random | W/T/L vs random | final test log-lik | final 90% coverage | selection s / run | "
             "training s / run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        se = "" if math.isnan(row.final_rmse_se) else f" +- {row.final_rmse_se:.4f}"
        coverage = "-" if math.isnan(row.final_coverage_90) else f"{row.final_coverage_90:.3f}"
        lines.append(f"| {row.dataset} | {row.model} | {row.sampler} | {row.seeds} | {row.final_rmse_mean:.4f}{se} | "
                     f"{row.mean_log_rmse:.4f} | {row.ratio_to_random:.3f} | {row.wins}/{row.ties}/{row.losses} | "
                     f"{row.final_log_likelihood:.3f} | {coverage} | "
                     f"{row.selection_seconds:.2f} | {row.training_seconds:.1f} |")
    return "\n".join(lines)


def difference_grids(summary: pd.DataFrame, baseline: str = "random") -> dict[str, pd.DataFrame]:
    """Per model (that ran the baseline), a dataset x sampler grid of mean log RMSE over the AL
    steps minus the baseline's on the same dataset (negative: better), the baseline's column left
    out: what the overview table and the overview figure show."""
    grids = {}
    for model, part in summary.groupby("model", sort=False):
        grid = part.pivot(index="dataset", columns="sampler", values="mean_log_rmse")
        if baseline not in grid.columns:
            continue
        samplers = [name for name in grid.columns if name != baseline]
        if samplers:  # a sweep of the baseline alone has nothing to compare
            grids[model] = grid[samplers].sub(grid[baseline], axis=0)
    return grids


def overview_markdown(summary: pd.DataFrame, baseline: str = "random") -> str:
    """Per model, a dataset x sampler grid of mean log RMSE over the AL steps minus the baseline's
    (negative: better than the baseline), with the mean over datasets and the number of datasets
    where the sampler is lower, as one glance at what the long table says."""
    blocks = []
    for model, difference in difference_grids(summary, baseline).items():
        samplers = list(difference.columns)
        lines = [f"Model `{model}`: mean log RMSE over the AL steps minus {baseline}'s (negative = better)",
                 "", "| dataset | " + " | ".join(samplers) + " |", "|---|" + "---|" * len(samplers)]
        for dataset, row in difference.iterrows():
            lines.append(f"| {dataset} | " + " | ".join(f"{row[name]:+.3f}" for name in samplers) + " |")
        lines.append("| **mean over datasets** | "
                     + " | ".join(f"**{difference[name].mean():+.3f}**" for name in samplers) + " |")
        lines.append(f"| datasets below {baseline} | "
                     + " | ".join(f"{int((difference[name] < 0).sum())} of {int(difference[name].notna().sum())}"
                                  for name in samplers) + " |")
        blocks.append("\n".join(lines))
    calibration = calibration_markdown(summary, baseline)
    return "\n\n".join([*blocks, calibration] if calibration else blocks)


def calibration_markdown(summary: pd.DataFrame, baseline: str = "random") -> str:
    """A dataset x model table of the baseline's 90% interval coverage after the last acquisition
    (mean over seeds), with the mean over datasets: a lower RMSE with over-confident intervals is
    not a win for active learning, so the grid above comes with how honest each model's std is.
    Empty when no run recorded coverage."""
    if "final_coverage_90" not in summary:
        return ""
    part = summary[(summary["sampler"] == baseline) & summary["final_coverage_90"].notna()]
    if part.empty:
        return ""
    grid = part.pivot(index="dataset", columns="model", values="final_coverage_90")
    models = list(dict.fromkeys(part["model"]))
    lines = [f"Share of test targets inside the central 90% predictive interval after the last acquisition, "
             f"{baseline} selection, mean over seeds (0.90 is calibrated, lower is over-confident; in brackets, how "
             "many datasets the mean is over)", "",
             "| dataset | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for dataset, row in grid[models].iterrows():
        lines.append(f"| {dataset} | " + " | ".join("-" if math.isnan(row[m]) else f"{row[m]:.3f}" for m in models)
                     + " |")
    lines.append("| **mean over datasets** | " + " | ".join(
        f"**{grid[m].mean():.3f}** ({int(grid[m].notna().sum())})" for m in models) + " |")
    return "\n".join(lines)


def plot_overview(summary: pd.DataFrame, baseline: str = "random"):
    """The overview grids as heatmaps, one panel per model (datasets down, samplers across, a last
    row with the mean over datasets), on one colour scale symmetric about zero, blue where a sampler's
    learning curve is below the baseline's; the scale saturates at the 95th percentile of the absolute
    differences so that one extreme dataset does not wash out the rest (the cells print the values).
    None when no model ran the baseline."""
    from al_bnn_lab.plotting import plt

    grids = difference_grids(summary, baseline)
    if not grids:
        return None
    datasets = sorted(set().union(*(grid.index for grid in grids.values())))
    grids = {model: grid.reindex(datasets) for model, grid in grids.items()}
    values = {model: np.vstack([grid.to_numpy(), grid.mean(axis=0).to_numpy()]) for model, grid in grids.items()}
    finite = np.abs(np.concatenate([v[np.isfinite(v)] for v in values.values()]))
    limit = float(np.percentile(finite, 95)) if finite.size and finite.max() > 0 else 1.0
    widths = [grid.shape[1] for grid in grids.values()]
    figure, axes = plt.subplots(1, len(grids), figsize=(0.6 * sum(widths) + 4.0, 0.32 * len(datasets) + 2.2),
                                squeeze=False, sharey=True, gridspec_kw={"width_ratios": widths},
                                layout="constrained")
    for axis, (model, grid) in zip(axes[0], grids.items(), strict=True):
        shown = values[model]
        image = axis.imshow(shown, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        for i, j in np.argwhere(np.isfinite(shown)):
            dark = abs(shown[i, j]) > 0.6 * limit  # white text on the darkest cells, to stay legible
            axis.text(j, i, f"{shown[i, j]:+.2f}", ha="center", va="center", fontsize=6.5,
                      fontweight="bold" if i == len(datasets) else "normal", color="white" if dark else "black")
        axis.axhline(len(datasets) - 0.5, color="black", linewidth=1.0)
        axis.set_xticks(np.arange(grid.shape[1]), list(grid.columns), rotation=45, ha="right", fontsize=8)
        axis.set_title(f"model {model}", fontsize=9)
    axes[0][0].set_yticks(np.arange(len(datasets) + 1), [*datasets, "mean over datasets"], fontsize=8)
    figure.colorbar(image, ax=list(axes[0]), label=f"mean log RMSE over the AL steps\nminus {baseline}'s", shrink=0.8,
                    extend="both")
    return figure


def plot_dataset(table: pd.DataFrame, dataset: str):
    """Test RMSE against labelled points: geometric mean and 95% interval over seeds (on log RMSE,
    so the band stays above zero), one panel per model and one line per sampler (the same colour
    for a sampler in every panel)."""
    from al_bnn_lab.plotting import BAND_TEXT, geometric_mean_and_interval, plt

    part = table[table["dataset"] == dataset]
    models = list(dict.fromkeys(part["model"]))
    samplers = list(dict.fromkeys(part["sampler"]))
    colours = {sampler: f"C{index}" for index, sampler in enumerate(samplers)}
    figure, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.2), sharey=True, squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for sampler, group in part[part["model"] == model].groupby("sampler", sort=False):
            curves = group.pivot_table(index="seed", columns="n_train", values="test_rmse")
            centre, low, high = geometric_mean_and_interval(curves.to_numpy())
            n_train = curves.columns.to_numpy()
            axis.plot(n_train, centre, marker="o", markersize=3, color=colours[sampler],
                      label=f"{sampler} ({len(curves)} seeds)")
            axis.fill_between(n_train, low, high, color=colours[sampler], alpha=0.2, linewidth=0)
        axis.set_xlabel("labelled points")
        axis.set_title(f"{dataset}, model {model}")
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0][0].set_ylabel(f"test RMSE (target units)\n{BAND_TEXT}")
    figure.tight_layout()
    return figure
