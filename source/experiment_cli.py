"""What the comparison scripts share: arguments, configs, running, and writing the results."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the log

from active_learning import RunResult, RunSpec, logger, run_experiments  # noqa: E402
from experiment_config import ConfigError, dump_config, load_config, with_overrides  # noqa: E402
from plotting import plot_learning_curves  # noqa: E402
from regression_data import DataUnavailableError, load_dataset  # noqa: E402
from results_writer import ResultsDirectoryExistsError, ResultsWriter  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    parser.add_argument("--seed", type=int, default=None, help="run seed (default: the configs' seed, 0)")
    parser.add_argument("--size-pool", type=int, default=None,
                        help="subsample the pool to this many points (default: the configs', 0 = full pool)")
    parser.add_argument("--size-test", type=int, default=None,
                        help="subsample the test set to this many points (default: the configs', 0 = all)")
    parser.add_argument("--results-dir", default=None,
                        help=f"where to write results (default: {comparison.results_prefix}_rs_<seed>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace this run's files in an existing results directory")
    parser.add_argument("--plugins", nargs="*", default=[],
                        help="modules to import first, e.g. to register extra samplers")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, log only to the file")
    return parser


def _label_for(config, used: set[str]) -> str:
    label = config.parms.sample_policy
    suffix = 2
    while label in used:
        label, suffix = f"{config.parms.sample_policy}_{suffix}", suffix + 1
    used.add(label)
    return label


def main(comparison: Comparison, argv: Sequence[str] | None = None) -> int:
    args = build_parser(comparison).parse_args(argv)
    try:
        return _run(comparison, args)
    except (ConfigError, DataUnavailableError, ResultsDirectoryExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(comparison: Comparison, args: argparse.Namespace) -> int:
    for module in args.plugins:
        importlib.import_module(module)
    specs, used = [], set()
    for path in args.configs:
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = REPO_ROOT / path
        config = load_config(path)
        overrides = {}
        if args.seed is not None:
            overrides["seed"] = args.seed
        data_overrides = {k: v for k, v in (("size_pool", args.size_pool), ("size_test", args.size_test))
                          if v is not None}
        if overrides or data_overrides:
            config = with_overrides(config, f"{path} with command-line options",
                                    **({"data": data_overrides} if data_overrides else {}), **overrides)
        specs.append(RunSpec(_label_for(config, used), config))
    seeds = {spec.config.seed for spec in specs}
    data_settings = {repr(spec.config.data) for spec in specs}
    if len(seeds) != 1 or len(data_settings) != 1:
        raise ConfigError("the compared configs must share seed and data settings to be comparable; got "
                          f"seeds {sorted(seeds)} and data {sorted(data_settings)}")
    seed = seeds.pop()
    results_dir = Path(args.results_dir or f"{comparison.results_prefix}_rs_{seed}")
    writer = ResultsWriter(results_dir, overwrite=args.overwrite)
    logger.setLevel(logging.INFO)
    console = None
    if not args.quiet:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
    writer.attach_log(logger)
    try:
        started = time.perf_counter()
        for spec in specs:
            writer.write_text(f"config_{spec.label}.yaml", dump_config(spec.config))
        data_config = specs[0].config.data
        data = load_dataset(data_config.dataset, data_config.size_pool, data_config.size_test, seed)
        logger.info("data %s: pool %s, test %s; results in %s", data.name, data.pool_x.shape, data.test_x.shape,
                    results_dir)
        results = run_experiments(specs, data, show_progress=False if args.quiet else None)
        _write_results(writer, comparison, results)
        for line in comparison.summarise(results):
            logger.info(line)
        logger.info("done in %.1f s; results in %s", time.perf_counter() - started, results_dir)
    finally:
        writer.detach_log(logger)
        if console is not None:
            logger.removeHandler(console)
    return 0


def _write_results(writer: ResultsWriter, comparison: Comparison, results: list[RunResult]) -> None:
    for result in results:
        writer.write_csv(f"metrics_{result.label}.csv", result.metrics)
        writer.write_csv(f"acquisitions_{result.label}.csv", result.acquisitions)
        selected = ([dict(al_iter=0, rank=i, pool_index=int(p)) for i, p in enumerate(result.initial_indices)]
                    + result.selected)
        writer.write_csv(f"selected_{result.label}.csv", selected)
    num_epochs = results[0].config.train_schedule.num_epochs
    acquisition_epochs = [phase * num_epochs for phase in range(1, results[0].config.al_schedule.al_iter + 1)]
    figure = plot_learning_curves({r.label: r.metrics for r in results}, comparison.title(results),
                                  acquisition_epochs)
    writer.save_figure(comparison.plot_file, figure)


def shared_selection_count(first: RunResult, second: RunResult) -> int:
    """How many actively selected pool points (initial set excluded) two runs have in common."""
    return len({row["pool_index"] for row in first.selected} & {row["pool_index"] for row in second.selected})
