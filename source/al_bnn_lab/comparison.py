"""What the comparison scripts share: arguments, configs, running, and writing the results."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from al_bnn.checkpoint import RunResult, code_version
from al_bnn.cli import (
    EXIT_DIVERGED,
    EXIT_WRITE_FAILED,
    SIGNAL_NAMES,
    Aborted,
    StopSignals,
    interrupted_exit_code,
    run_reporting_errors,
)
from al_bnn.config import ConfigError, config_from_dict, dump_config, load_config, read_yaml, with_overrides
from al_bnn.loop import (
    RunSpec,
    StopRequested,
    TrainingDiverged,
    logger,
    prepare_experiments,
    run_prepared,
)
from al_bnn.paths import repo_file, safe_name
from al_bnn.plugins import import_plugins
from al_bnn.results import ResultsWriter, describe_holder
from al_bnn.safe_arrays import WriteError
from al_bnn_lab.plotting import geometric_mean_and_interval, plot_learning_curves, plt


@dataclass
class Comparison:
    """A script's fixed parts: which configs it compares and how its results are named."""

    description: str
    default_configs: Sequence[str]      # relative to the repository root
    results_prefix: str                  # results directory: <prefix>_rs_<seed>
    plot_file: str
    title: Callable[[list[RunResult]], str]
    summarise: Callable[[list[RunResult]], list[str]] = lambda results: []


def build_parser(comparison: Comparison) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=comparison.description)
    parser.add_argument("configs", nargs="*", default=list(comparison.default_configs),
                        help=f"YAML configs to compare (default: {' '.join(comparison.default_configs)})")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="run seed (default: the configs' seed, 0)")
    seeds.add_argument("--seeds", type=int, nargs="+", default=None,
                       help="several seeds, trained together as one stacked model; the plot shows the mean "
                            "and a 95%% band per sampler")
    parser.add_argument("--size-pool", type=int, default=None,
                        help="subsample the pool to this many points (default: the configs', 0 = full pool)")
    parser.add_argument("--size-test", type=int, default=None,
                        help="subsample the test set to this many points (default: the configs', 0 = all)")
    parser.add_argument("--results-dir", default=None,
                        help=f"where to write results (default: {comparison.results_prefix}_rs_<seed> or, "
                             f"with --seeds, {comparison.results_prefix}_rs_<seed>_<seed>...)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace this run's files in an existing results directory")
    parser.add_argument("--plugins", nargs="*", default=[],
                        help="modules to import first, e.g. to register extra samplers")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, log only to the file")
    parser.add_argument("--resume", metavar="RESULTS_DIR", default=None,
                        help="continue an interrupted run from its results directory (its configs and "
                             "checkpoint; other options are ignored)")
    parser.add_argument("--allow-code-change", action="store_true",
                        help="with --resume: continue even if the package version or its source changed since the "
                             "checkpoint was written (refused otherwise; the change is recorded in log.txt)")
    return parser


def _unique_groups(policies: list[str]) -> list[str]:
    """Plot/file labels for the compared configs: the sampler name, numbered if repeated."""
    groups = []
    for policy in policies:
        label, suffix = policy, 2
        while label in groups:
            label, suffix = f"{policy}_{suffix}", suffix + 1
        groups.append(label)
    return groups


def main(comparison: Comparison, argv: Sequence[str] | None = None) -> int:
    args = build_parser(comparison).parse_args(argv)
    return run_reporting_errors(lambda: _run(comparison, args), lambda error: _hint(error, args))


def _hint(error: BaseException, args: argparse.Namespace) -> str:
    """What to do after an error that struck a run in progress."""
    results_dir = getattr(error, "results_dir", None)
    if results_dir is None:
        return ""
    if isinstance(error, WriteError):
        return (f"Nothing was left half-written and the last checkpoint is untouched; once the problem is fixed, "
                f"continue with:\n  {resume_command(results_dir, args.plugins)}")
    return f"The last checkpoint is kept; continue with:\n  {resume_command(results_dir, args.plugins)}"


def resume_command(results_dir: Path, plugins: Sequence[str] = ()) -> str:
    script = sys.argv[0] if sys.argv[0].endswith(".py") else "source/<script>.py"
    extra = f" --plugins {' '.join(plugins)}" if plugins else ""
    return f"python {script} --resume {shlex.quote(str(results_dir))}{extra}"


def _run(comparison: Comparison, args: argparse.Namespace) -> int:
    import_plugins(args.plugins)
    if args.resume:
        results_dir = Path(args.resume)
        if not (results_dir / MANIFEST).is_file():  # checked before the lock: nothing is created
            raise ConfigError(f"{results_dir} has no {MANIFEST}; --resume needs a results directory written by "
                              "this script")
        with ResultsWriter(results_dir, overwrite=True, lock=True) as writer:
            specs = _specs_from_manifest(results_dir, args.plugins)
            return _start(comparison, args, specs, results_dir, writer)
    specs, results_dir = _specs_from_arguments(comparison, args)
    with ResultsWriter(results_dir, overwrite=args.overwrite, lock=True) as writer:
        try:
            return _start(comparison, args, specs, results_dir, writer)
        except (ConfigError, ValueError, WriteError, RuntimeError):
            # failed before anything was trained (no checkpoint): leave no directory behind, so the
            # same command works once the problem is fixed
            if writer.created and not any(results_dir.glob("checkpoint_*")):
                writer.discard()
            raise


def _start(comparison: Comparison, args: argparse.Namespace, specs: list[RunSpec], results_dir: Path,
           writer: ResultsWriter) -> int:
    """Prepare, record, train and write one comparison in `results_dir`, stopping cleanly on the
    first SIGINT or SIGTERM; the exit code."""
    console = _start_logging(args, results_dir, writer)
    stop = threading.Event()
    resumable = bool(args.resume)  # whether `--resume` can continue from here (run.yaml written)
    try:
        with StopSignals(stop, _announce_stop) as signals:
            started = time.perf_counter()
            stacks = _prepare_directory(args, specs, results_dir, writer)
            if not args.resume:
                _write_manifest(writer, args, specs)
                resumable = True
            for spec in specs:
                writer.write_text(f"config_{spec.label}.yaml", dump_config(spec.config))
            seeds = sorted({spec.config.seed for spec in specs})
            logger.info("%s %d run(s), seeds %s; results in %s", "resuming" if args.resume else "starting",
                        len(specs), seeds, results_dir)
            stopped_with = _train_and_write(comparison, args, stacks, specs, results_dir, writer, stop, signals)
            if stopped_with is not None:
                return stopped_with
            logger.info("done in %.1f s; results in %s", time.perf_counter() - started, results_dir)
            if signals.received is not None:
                logger.info("(%s arrived after the last phase; the run was finished instead)",
                            SIGNAL_NAMES[signals.received])
    except (WriteError, Aborted) as error:
        if resumable:
            error.results_dir = results_dir  # for the resume command in the message
        raise
    finally:
        writer.detach_log(logger)
        if console is not None:
            logger.removeHandler(console)
    if writer.log_failure is not None:
        print(f"error: {writer.log_failure}; every other file was written", file=sys.stderr)
        return EXIT_WRITE_FAILED
    return 0


def _start_logging(args: argparse.Namespace, results_dir: Path, writer: ResultsWriter) -> logging.Handler | None:
    """Log to the results directory's log.txt (appended to on --resume) and, unless --quiet, to the
    console; the console handler, for _start to remove."""
    logger.setLevel(logging.INFO)
    console = None
    if not args.quiet:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
    writer.attach_log(logger, append=bool(args.resume))
    if writer.lock is not None and writer.lock.taken_over:
        logger.warning("took over the lock of %s, left by a run that is no longer running (%s)", results_dir,
                       describe_holder(writer.lock.taken_over))
    return console


def _announce_stop(signum: int) -> None:
    """What the first SIGINT or SIGTERM says: the run stops at its next evaluation point."""
    logger.warning("%s: stopping at the next evaluation point and saving a checkpoint (send it again to "
                   "abort without saving)", SIGNAL_NAMES[signum])


def _prepare_directory(args: argparse.Namespace, specs: list[RunSpec], results_dir: Path,
                       writer: ResultsWriter) -> list:
    """Everything that can fail before training (data, memory, the checkpoints to resume), then the
    results directory made ready for the checkpoints: the prepared stacks."""
    stacks = prepare_experiments(specs, checkpoint_dir=results_dir, resume=bool(args.resume),
                                 allow_code_change=args.allow_code_change)
    if not args.resume:
        # checkpoints of an earlier run being overwritten: only those the directory's manifest says
        # this package wrote (a user's own checkpoint_*.npz is never touched)
        writer.remove_written([name for name in writer.written() if name.startswith("checkpoint_")])
    writer.record([stack.checkpoint.name for stack in stacks])  # before the first is written
    return stacks


def _write_manifest(writer: ResultsWriter, args: argparse.Namespace, specs: list[RunSpec]) -> None:
    """run.yaml: what --resume reads back (the runs' labels, groups and configs)."""
    writer.write_text(MANIFEST, yaml.safe_dump(
        {"plugins": list(args.plugins), "code version": code_version(),
         "runs": [{"label": s.label, "group": s.group, "config": s.config.to_dict()} for s in specs]},
        sort_keys=False))


def _train_and_write(comparison: Comparison, args: argparse.Namespace, stacks: list, specs: list[RunSpec],
                     results_dir: Path, writer: ResultsWriter, stop: threading.Event,
                     signals: StopSignals) -> int | None:
    """Train the prepared stacks and write their results and summary: None once finished, else the
    exit code of a stop (its metrics so far written) or of a diverged run."""
    try:
        results = run_prepared(stacks, specs, show_progress=False if args.quiet else None, stop=stop)
    except StopRequested as stopped:
        _write_tables(writer, stopped.results)
        logger.warning("stopped: checkpoint and metrics so far are in %s. Resume with:\n  %s", results_dir,
                       resume_command(results_dir, args.plugins))
        return interrupted_exit_code(signals.received)
    except TrainingDiverged as error:
        logger.error("%s Checkpoint: %s", error, results_dir)
        return EXIT_DIVERGED
    _write_results(writer, comparison, results)
    for line in comparison.summarise(results):
        logger.info(line)
    return None


MANIFEST = "run.yaml"


def _specs_from_manifest(results_dir: Path, plugins: Sequence[str]) -> list[RunSpec]:
    """The runs recorded in run.yaml, validated like a config (a malformed file is a ConfigError
    naming it). Plugins it names are never imported from there (anyone who can write to the
    directory could edit it): the same --plugins must be given again."""
    manifest = results_dir / MANIFEST
    raw = read_yaml(manifest, "run manifest", mapping=True)
    runs = raw.get("runs")
    if (not isinstance(runs, list) or not runs
            or any(not isinstance(run, dict) or set(run) != {"label", "group", "config"} for run in runs)):
        raise ConfigError(f"{manifest}: not a run manifest of this script: expected 'runs:', a list of "
                          "{label, group, config} entries")
    missing = [name for name in raw.get("plugins") or [] if name not in plugins]
    if missing:
        raise ConfigError(f"{manifest}: this run was started with --plugins {' '.join(raw['plugins'])}; pass the same "
                          "--plugins to resume it (modules are never imported on the word of a results directory)")
    # labels and groups name files (config_<label>.yaml, ...): checked before anything else is read
    labels = [safe_name(run["label"], f"{manifest}: run label") for run in runs]
    groups = [safe_name(run["group"], f"{manifest}: run group") for run in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{manifest}: run labels must be distinct (they name files), got {labels}")
    return [RunSpec(label, config_from_dict(run["config"], f"{manifest} [{label}]"), group)
            for label, group, run in zip(labels, groups, runs, strict=True)]


def _specs_from_arguments(comparison: Comparison, args: argparse.Namespace) -> tuple[list[RunSpec], Path]:
    configs = []
    for path in args.configs:
        path = repo_file(path)
        config = load_config(path)
        data_overrides = {k: v for k, v in (("size_pool", args.size_pool), ("size_test", args.size_test))
                          if v is not None}
        if data_overrides:
            config = with_overrides(config, f"{path} with command-line options", data=data_overrides)
        configs.append((path, config))
    seeds = args.seeds or [args.seed if args.seed is not None else configs[0][1].seed]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds has repeated values: {seeds}")
    if args.seeds is None and args.seed is None and len({c.seed for _, c in configs}) != 1:
        raise ConfigError("the compared configs have different seeds; set the same `seed` in each or pass --seed")
    if len({repr(c.data) for _, c in configs}) != 1:
        raise ConfigError("the compared configs must share their data settings to be comparable; got "
                          + "; ".join(f"{path}: {c.data}" for path, c in configs))
    groups = [safe_name(group, "sampler name (sample_policy)")
              for group in _unique_groups([c.parms.sample_policy for _, c in configs])]
    specs = []
    for seed in seeds:
        for (path, config), group in zip(configs, groups, strict=False):
            if seed != config.seed:
                config = with_overrides(config, f"{path} with --seed {seed}", seed=seed)
            label = group if len(seeds) == 1 else f"{group}_rs_{seed}"
            specs.append(RunSpec(label, config, group))
    results_dir = Path(args.results_dir or f"{comparison.results_prefix}_rs_{'_'.join(map(str, seeds))}")
    return specs, results_dir


def _write_results(writer: ResultsWriter, comparison: Comparison, results: list[RunResult]) -> None:
    _write_tables(writer, results)
    _plot(writer, comparison, results)


def _write_tables(writer: ResultsWriter, results: Sequence[RunResult]) -> None:
    """Metrics, acquisitions and selected points of every run (as far as each got)."""
    for result in results:
        if not result.metrics:
            continue
        writer.write_csv(f"metrics_{result.label}.csv", result.metrics)
        if result.acquisitions:  # none yet when stopped during the first phase
            writer.write_csv(f"acquisitions_{result.label}.csv", result.acquisitions)
        selected = ([dict(al_iter=0, rank=i, pool_index=int(p)) for i, p in enumerate(result.initial_indices)]
                    + result.selected)
        writer.write_csv(f"selected_{result.label}.csv", selected)


def _plot(writer: ResultsWriter, comparison: Comparison, results: list[RunResult]) -> None:
    acquisition_epochs = np.cumsum(results[0].config.phase_epochs())[:-1].tolist()
    curves: dict[str, list[list[dict]]] = {}
    for result in results:
        curves.setdefault(result.group, []).append(result.metrics)
    figure = plot_learning_curves(curves, comparison.title(results), acquisition_epochs)
    writer.save_figure(comparison.plot_file, figure)
    plt.close(figure)  # scripts called in one process (tests, notebooks) would otherwise keep every figure


def by_group(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
    """Results per compared config (sampler), each list ordered by seed."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    return groups


def final_test_rmse_summary(runs: Sequence[RunResult]) -> str:
    """'0.6842' for one run; for several, the statistic the plots' bands show: '0.7012 [0.6801,
    0.7230] (5 seeds)', the geometric mean and its 95% interval on log RMSE."""
    values = np.array([run.metrics[-1]["test_rmse"] for run in runs])
    if len(values) == 1:
        return f"{values[0]:.4f}"
    centre, low, high = geometric_mean_and_interval(values[:, None])
    return f"{centre[0]:.4f} [{low[0]:.4f}, {high[0]:.4f}] ({len(values)} seeds)"


def shared_selection_count(first: RunResult, second: RunResult) -> int:
    """How many actively selected pool points (initial set excluded) two runs have in common."""
    return len({row["pool_index"] for row in first.selected} & {row["pool_index"] for row in second.selected})
