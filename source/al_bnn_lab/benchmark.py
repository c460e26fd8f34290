"""Run a benchmark sweep (datasets x samplers x seeds) and write its tables and plots.

    python source/run_benchmark.py --config configs/benchmark.yaml [--quick]
    python source/run_benchmark.py --config configs/benchmark.yaml --scheduler tcp://host:8786
    python source/run_benchmark.py --config configs/benchmark.yaml --data my.csv --target price

Writes to the output directory: runs/<dataset>/<model>/<sampler>_rs_<seed>.csv (one per
finished run; a rerun skips the complete ones and redoes any other, so an interrupted sweep
resumes), finished_runs.csv (the tidy rows of every run finished so far, each with its key,
rewritten after every task: what an interrupted sweep leaves), benchmark.csv (all rows, tidy, when
the sweep completes, or of the finished runs with --report-only), summary.md and summary.csv,
plots/<dataset>.png, config.yaml (the sweep as run), settings.yaml (every run group's resolved
settings: what the run keys hash, so the tables stay checkable when a default changes) and log.txt
(appended by every invocation).
One sweep at a time writes into a directory (a lock file records the holder). `--reuse` takes
finished runs from other results (a results directory or a tidy table with run keys, e.g. one
committed by an earlier checkout), matched by what determines their numbers. `--report-only
--settings DIR/settings.yaml` keys the runs by stored settings instead of today's defaults: the report
of committed tables after a default changed, naming the keys that differ.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from al_bnn.cli import SIGNAL_NAMES, StoppedEarly, StopSignals, run_reporting_errors
from al_bnn.config import ConfigError, read_yaml
from al_bnn.paths import UnsafePathError, remove_empty_folder, remove_file, repo_file
from al_bnn.plugins import import_plugins
from al_bnn.results import ResultsDirectoryExistsError, ResultsWriter, describe_holder
from al_bnn_lab.sweep import (
    CHECKPOINT_PREFIX,
    CHECKPOINT_TEMPORARY,
    RUN_KEY_COLUMN,
    BenchmarkConfig,
    DatasetEntry,
    collect,
    config_fingerprint,
    execute,
    load_benchmark_config,
    overview_markdown,
    pending_tasks,
    plot_dataset,
    plot_overview,
    reuse_runs,
    run_count,
    run_file,
    run_key,
    summarise,
    summary_markdown,
    task_checkpoints,
)

logger = logging.getLogger("al_bnn.benchmark")
# The workers' own log lines: they reach the log file (a handler on "al_bnn"), not the console.
worker_log = logging.getLogger("al_bnn.worker")
worker_log.setLevel(logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run a benchmark sweep: datasets x samplers x seeds.")
    parser.add_argument("--config", default="configs/benchmark.yaml", help="benchmark YAML (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="apply the config's `quick:` section (a small sweep)")
    parser.add_argument("--out", default=None,
                        help="output directory (default: results_benchmark or results_benchmark_quick)")
    parser.add_argument("--uci-root", default=None, help="folder of UCI datasets (default: config, $UCI_DATA_DIR)")
    parser.add_argument("--data", default=None, help="add a CSV/NPZ dataset file to the sweep")
    parser.add_argument("--target", default=None, help="target column of the --data CSV file")
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets of the config")
    parser.add_argument("--samplers", nargs="+", default=None, help="override the config's samplers")
    parser.add_argument("--models", nargs="+", default=None, help="override the config's models (bnn, dropout, "
                        "ensemble); settings a model needs come from the config's model_settings")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="override the config's seeds")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes, local or of --dask-cluster (default 1)")
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--scheduler", default=None, help="submit the runs to this Dask scheduler (tcp://host:port)")
    engine.add_argument("--dask-cluster", action="store_true",
                        help="start a local Dask cluster (loopback, --workers processes) and submit to it")
    parser.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="give up on an unreachable --scheduler after this long (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in an output directory made by a different config (finished runs "
                             "of the same config are always reused)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the tables and plots of the runs finished so far (e.g. of an "
                             "interrupted sweep), with the --reuse runs copied in first (e.g. to assemble parts)")
    parser.add_argument("--reuse", nargs="+", default=[], metavar="PATH",
                        help="take finished runs from these results directories or tidy tables (e.g. "
                             "docs/benchmark/benchmark.csv) where their settings, dataset and seed equal a run of "
                             "this sweep (labels may differ); the rest are run")
    parser.add_argument("--settings", default=None, metavar="SETTINGS_YAML",
                        help="with --report-only: key the runs by these stored settings (the settings.yaml a sweep "
                             "writes beside its tables, e.g. docs/benchmark/settings.yaml) instead of the settings "
                             "today's defaults give; the report names the keys where today's defaults differ")
    parser.add_argument("--plugins", nargs="*", default=[], help="modules to import first (extra samplers)")
    return parser


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    import_plugins(args.plugins)
    config_path = repo_file(args.config)
    config = load_benchmark_config(config_path, quick=args.quick)
    if args.uci_root:
        config.uci_root = args.uci_root
    if config.uci_root is None and os.environ.get("UCI_DATA_DIR"):
        config.uci_root = os.environ["UCI_DATA_DIR"]
    if args.datasets:
        unknown = sorted(set(args.datasets) - {e.name for e in config.datasets})
        if unknown:
            raise ConfigError(f"--datasets {unknown} are not in {config.source}")
        config.datasets = [e for e in config.datasets if e.name in args.datasets]
    if args.data:
        config.datasets.append(DatasetEntry(Path(args.data).stem, str(Path(args.data).resolve()), args.target))
    config.samplers = args.samplers or config.samplers
    config.models = args.models or config.models
    config.seeds = args.seeds or config.seeds
    from al_bnn_lab.sweep import benchmark_config_from_dict

    config = benchmark_config_from_dict(config.as_dict(), config.source)  # validate the final sweep
    if args.settings:
        from al_bnn_lab.stored_settings import read_stored_settings

        config.stored_settings = read_stored_settings(args.settings)

    output = Path(args.out or ("results_benchmark_quick" if args.quick else "results_benchmark"))
    run_sweep(config, output, workers=args.workers, scheduler=args.scheduler, dask_cluster=args.dask_cluster,
              overwrite=args.overwrite, plugins=args.plugins, connect_timeout=args.connect_timeout, reuse=args.reuse,
              report_only=args.report_only)
    return 0


def run_sweep(config: BenchmarkConfig, output: Path, *, workers: int = 1, scheduler: str | None = None,
              dask_cluster: bool = False, overwrite: bool = False, plugins: Sequence[str] = (),
              connect_timeout: float = 10.0, reuse: Sequence[str | Path] = (),
              report_only: bool = False) -> dict[str, int]:
    """Run every unfinished run of the sweep into `output` and write its tables and plots; complete
    run files of the same config are reused, any other is redone, and a directory of a different
    config is refused unless `overwrite`. Runs finished in `reuse` (results directories or tidy
    tables with run keys) are copied in first; returns how many came from each. With `report_only`
    nothing runs: the tables and plots cover the runs finished so far, the reused ones included (so
    parts of a sweep run apart are assembled into one table). Holds the directory's lock throughout."""
    if report_only and overwrite:
        raise ConfigError("--report-only with --overwrite would delete the finished runs and run none; drop one")
    if config.stored_settings is not None and not report_only:
        raise ConfigError("--settings (stored settings) needs --report-only: runs are trained with the settings "
                          "today's defaults give, so they must be keyed by those; drop --settings to run the sweep")
    fingerprint = config_fingerprint(config)
    with ResultsWriter(output, overwrite=True, lock=True) as writer:
        if refuse_another_sweep(output, config, overwrite):  # another config's runs, --overwrite: start over
            for path in sorted((output / "runs").glob("**/*.csv")):
                remove_file(output, str(path.relative_to(output)))
        writer.write_text("config.yaml", yaml.safe_dump({"fingerprint": fingerprint, **config.as_dict()},
                                                        sort_keys=False))
        return _sweep(config, output, writer, fingerprint, workers, scheduler, dask_cluster, plugins,
                      connect_timeout, reuse, report_only)


def refuse_another_sweep(output: Path, config: BenchmarkConfig, overwrite: bool = False) -> bool:
    """Whether `output` holds a sweep of another config; raises if so, unless `overwrite` (then the
    caller starts over). Checked before anything is written there (runs copied in by --reuse included)."""
    previous = output / "config.yaml"
    if not previous.exists():
        return False
    recorded = read_yaml(previous, "sweep config", mapping=True).get("fingerprint")
    fingerprint = config_fingerprint(config)
    if recorded == fingerprint:
        return False
    if not overwrite:
        raise ResultsDirectoryExistsError(
            f"{output} holds a sweep of a different config (fingerprint {recorded}, now {fingerprint}); "
            "pass --overwrite to start over there, or choose another --out")
    return True


def _sweep(config: BenchmarkConfig, output: Path, writer: ResultsWriter, fingerprint: str, workers: int,
           scheduler: str | None, dask_cluster: bool, plugins: Sequence[str], connect_timeout: float,
           reuse: Sequence[str | Path] = (), report_only: bool = False) -> dict[str, int]:
    logger.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    writer.attach_log(logging.getLogger("al_bnn"), append=True)
    started = time.perf_counter()
    stop = threading.Event()
    # Local processes stop gracefully: the first SIGINT / SIGTERM lets the running tasks finish (a Dask
    # cluster's tasks cannot be left half-started, so there the signals keep their default).
    local = not (scheduler or dask_cluster or report_only)
    signals = StopSignals(stop, _announce_stop) if local else contextlib.nullcontext()
    try:
        with signals:
            names = [SIGNAL_NAMES[signum] for signum in signals.handled] if local else []
            hint = (f"{' or '.join(names)} once stops after the running task(s) finish, keeping their runs; twice "
                    "stops at once (they resume at their last finished training phase)" if names else "")
            reused = _sweep_steps(config, output, writer, workers, scheduler, dask_cluster, plugins,
                                  connect_timeout, reuse, report_only, stop, started, hint)
    except StoppedEarly as stopped:
        stopped.signum = signals.received if local else None
        raise
    finally:
        writer.detach_log(logging.getLogger("al_bnn"))
        logger.removeHandler(console)
    if writer.log_failure is not None:
        raise writer.log_failure
    return reused


def _announce_stop(signum: int) -> None:
    logger.warning("%s: stopping once the running task(s) finish (their runs are kept), starting no other; send it "
                   "again to stop at once (the running tasks then resume at their last finished training phase)",
                   SIGNAL_NAMES.get(signum, signum))


def _sweep_steps(config: BenchmarkConfig, output: Path, writer: ResultsWriter, workers: int, scheduler: str | None,
                 dask_cluster: bool, plugins: Sequence[str], connect_timeout: float, reuse: Sequence[str | Path],
                 report_only: bool, stop: threading.Event, started: float, stop_hint: str) -> dict[str, int]:
    logger.info("---- sweep started %s: %s", datetime.datetime.now().isoformat(timespec="seconds"),
                " ".join(sys.argv))
    if writer.lock is not None and writer.lock.taken_over:
        logger.warning("took over the lock of %s, left by a sweep that is no longer running (%s)", output,
                       describe_holder(writer.lock.taken_over))
    taken: list[tuple] = []
    reused = reuse_runs(config, output, reuse, writer, taken)  # also with report_only: parts assembled, none trained
    for source, count in reused.items():
        logger.info("reused %d finished run(s) from %s", count, source)
    redo: list[str] = []
    tasks = pending_tasks(config, output, plugins, redo)
    for line in redo if not report_only else []:
        logger.warning("redoing %s", line)
    total_runs = run_count(config)
    pending_runs = sum(len(t["runs"]) for t in tasks)
    engine = (f"Dask scheduler {scheduler}" if scheduler else
              f"local Dask cluster ({workers} workers)" if dask_cluster else
              f"{workers} local process(es)")
    logger.info("%s: %d runs, %d already finished, %d to do in %d task(s) on %s", config.source, total_runs,
                total_runs - pending_runs, pending_runs, len(tasks), "none (--report-only)" if report_only
                else engine)
    if report_only:
        tasks = []
    if tasks and stop_hint:
        logger.info(stop_hint)
    try:
        _run_tasks(tasks, config, output, writer, workers, scheduler, dask_cluster, plugins, connect_timeout, stop,
                   drop_stale=not report_only)
    except StoppedEarly as stopped:
        logger.warning("stopped as asked: %d task(s) not started; writing the tables of the finished runs",
                       stopped.not_started)
        write_reports(writer, config, output, finished_only=True, reused=(reused, taken))
        raise
    write_reports(writer, config, output, finished_only=report_only, reused=(reused, taken))
    logger.info("sweep done in %.1f s; summary in %s", time.perf_counter() - started, output / "summary.md")
    return reused


def _run_tasks(tasks: list[dict], config: BenchmarkConfig, output: Path, writer: ResultsWriter, workers: int,
               scheduler: str | None, dask_cluster: bool, plugins: Sequence[str], connect_timeout: float,
               stop: threading.Event, drop_stale: bool = True) -> None:
    """Run the tasks, writing each run's file and the finished_runs.csv snapshot as each task ends.
    Local tasks checkpoint after every phase (named in the manifest first) and their checkpoints
    are deleted once their runs are written; a Dask worker may not see this folder, so there none.
    With drop_stale, checkpoints no task of this run will read (another config's, a task whose runs
    were all reused, a stack that no longer exists) are deleted first, so none can block a resume."""
    entries = {entry.name: entry for entry in config.datasets}
    checkpoints: dict[tuple[str, str], list[str]] = {}
    if not (scheduler or dask_cluster):
        checkpoints = {(task["dataset"], task["model"]): task_checkpoints(task) for task in tasks}
    if drop_stale:
        _drop_stale_checkpoints(writer, checkpoints)
    for task in tasks:
        names = checkpoints.get((task["dataset"], task["model"]))
        if names:
            writer.record(names)
            task.update(checkpoint_dir=str(writer.folder_for(names[0]).parent), checkpoints=len(names),
                        root=str(output))
    try:
        _run_and_write(tasks, config, output, writer, workers, scheduler, dask_cluster, plugins, connect_timeout,
                       stop, entries, checkpoints)
    finally:  # tasks not finished keep their checkpoints; folders made for tasks never started go
        for names in checkpoints.values():
            _remove_empty_folders(writer, names)


def _run_and_write(tasks: list[dict], config: BenchmarkConfig, output: Path, writer: ResultsWriter, workers: int,
                   scheduler: str | None, dask_cluster: bool, plugins: Sequence[str], connect_timeout: float,
                   stop: threading.Event, entries: dict, checkpoints: dict[tuple[str, str], list[str]]) -> None:
    with tqdm(total=len(tasks), unit="task", disable=None) as progress:
        for result in execute(tasks, scheduler, dask_cluster, workers, plugins, connect_timeout, stop):
            for line in result["log"]:
                worker_log.info(line)
            for (dataset, model, sampler, seed), rows in result["runs"].items():
                path = run_file(output, dataset, model, sampler, seed)
                key = run_key(config, entries[dataset], model, sampler, seed)
                writer.write_csv(str(path.relative_to(output)), [{**row, RUN_KEY_COLUMN: key} for row in rows])
                logger.info("finished %s / %s / %s / seed %d: final test RMSE %.4f", dataset, model, sampler,
                            seed, rows[-1]["test_rmse"])
            # what has finished so far, as one table (an interrupted sweep leaves it behind)
            writer.write_text("finished_runs.csv", collect(output, config, finished_only=True).to_csv(index=False))
            for dataset, model in {key[:2] for key in result["runs"]}:
                _remove_checkpoints(writer, checkpoints.pop((dataset, model), []))
            progress.update(1)


def _drop_stale_checkpoints(writer: ResultsWriter, needed: dict[tuple[str, str], list[str]]) -> None:
    """Delete the checkpoints the manifest lists that no pending task will read, and the temporary
    files a save cut short left in the needed folders (no worker runs yet: the sweep holds the lock)."""
    keep = {name for names in needed.values() for name in names}
    stale = [name for name in writer.written() if name.startswith(CHECKPOINT_PREFIX) and name not in keep]
    writer.remove_written(stale)
    for name in stale:
        _remove_empty_folders(writer, [name])
    for names in needed.values():
        folder = writer.file(names[0]).parent
        if folder.is_dir():
            for entry in folder.iterdir():
                if CHECKPOINT_TEMPORARY.fullmatch(entry.name):
                    remove_file(folder, entry.name, hidden=True)


def _remove_checkpoints(writer: ResultsWriter, names: list[str]) -> None:
    """Delete a finished task's checkpoints (only files the manifest lists), then its folders if
    that left them empty."""
    writer.remove_written(names)
    _remove_empty_folders(writer, names)


def _remove_empty_folders(writer: ResultsWriter, names: list[str]) -> None:
    """Remove checkpoints/<dataset>/<model>/ and the folders above it up to checkpoints/, each only if
    empty and a real folder inside the sweep's (paths.remove_empty_folder)."""
    if not names:
        return
    parts = Path(names[0]).parts[:-1]  # ("checkpoints", dataset, model)
    for depth in range(len(parts), 0, -1):
        try:
            if not remove_empty_folder(writer.path, Path(*parts[:depth])):
                return  # not empty (another task's checkpoints, a user's file), gone, or not a real folder
        except UnsafePathError:
            return  # a link on the way: not ours to touch


def write_reports(writer: ResultsWriter, config, output: Path, finished_only: bool = False,
                  reused: tuple[dict[str, int], list[tuple]] = ({}, [])) -> None:
    """The tables, summary.md and plots of the finished runs, and settings.yaml: the resolved
    settings of every run group (the stored ones with --settings), which summary.md compares with
    what today's defaults give, naming the keys that differ. `reused`: reuse_runs' counts and the
    runs it took, stated in summary.md."""
    from al_bnn_lab.stored_settings import (
        SETTINGS_FILE,
        reuse_markdown,
        settings_markdown,
        settings_yaml,
        stored_settings,
    )

    table = collect(output, config, finished_only=finished_only)
    if table.empty:
        logger.info("no finished runs yet: no tables or plots written")
        return
    stored = config.stored_settings if config.stored_settings is not None else stored_settings(config)
    writer.write_text(SETTINGS_FILE, settings_yaml(stored))
    settings = settings_markdown(stored, config)
    reuse = reuse_markdown(*reused, config)
    total = run_count(config)
    finished = len(table.groupby(["dataset", "model", "sampler", "seed"]))
    partial = (f"**Partial: {finished} of {total} runs finished** (the sweep has not completed; rerun it to "
               "finish; runs reused from tables made with other settings count only under their stored settings: "
               "--report-only --settings THEIR/settings.yaml).\n\n" if finished < total else "")
    writer.write_text("benchmark.csv", table.to_csv(index=False))
    summary = summarise(table)
    writer.write_text("summary.csv", summary.to_csv(index=False))
    markdown = summary_markdown(summary)
    overview = overview_markdown(summary)
    writer.write_text("summary.md",
                      f"# Benchmark summary\n\nConfig: {config.source}\n\n{settings}\n\n"
                      + (f"{reuse}\n\n" if reuse else "") + f"{partial}{overview}\n\n{markdown}\n")
    from al_bnn_lab.plotting import plt

    figure = plot_overview(summary)
    if figure is not None:
        writer.save_figure("plots/overview.png", figure)
        plt.close(figure)
    for dataset in table["dataset"].unique():
        figure = plot_dataset(table, dataset)
        writer.save_figure(f"plots/{dataset}.png", figure)
        plt.close(figure)
    logger.info("\n%s", markdown)

