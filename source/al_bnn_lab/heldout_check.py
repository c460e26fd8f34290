"""The study's held-out check, run on datasets the study never used.

    python source/heldout_check.py --uci-root DIR [--datasets NAME ...] [--seeds 0 1 2 3 4] [--out DIR] [--quick]

The study states in advance how a reader checks its recommendation on a new dataset (docs/study.md,
"Checking the default on a new dataset"; source/run_study.py --uci-root DIR runs this check itself):
run the recommended default and random on the same schedule with paired seeds (at least five); the
check fails if the 95% interval of the paired difference in mean log RMSE lies above zero. This
command runs exactly that on every dataset folder of DIR (the UCI layout of data/uci: <name>/data.txt,
index_features.txt, index_target.txt) except the study's own datasets (those of
configs/benchmark.yaml), left out by name and by content (a folder holding the same data as one of
them under another name), and named in the report.

The sweep is an ordinary benchmark sweep (al_bnn_lab.benchmark.run_sweep, so a rerun of the same
command continues where it stopped) built from configs/benchmark.yaml: its `experiment` (the default
model recipe), `schedule.default` and `sampler_settings`, with samplers random and the recommended
default (lcmd on the gradient kernel; lcmd_exact, the second edition's rule pick, with --sampler),
model bnn and seeds 0-4. Then it writes heldout_check.md and heldout_check.csv into --out: per
dataset the paired difference (sampler - random) in mean log RMSE over the AL steps after the
initial one (the same for both samplers of a seed), its mean and 95% interval over seeds, the stated
verdict, and where the difference falls against the study's 95% prediction interval for a new
dataset, computed from the study's committed runs (docs/study_data/q6.csv.gz) on the same statistic.
--out also keeps heldout_datasets.csv, a digest of each checked dataset's data: a rerun into the same
--out whose dataset of that name now holds other data is refused (its finished runs would be reused).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from al_bnn.config import ConfigError, read_yaml, with_quick
from al_bnn.data import DataFileError, housing_arrays, read_uci_folder, uci_dataset_names
from al_bnn.paths import SHIPPED_UCI_ROOT, inside, repo_file
from al_bnn.results import ResultsDirectoryExistsError, ResultsWriter
from al_bnn_lab import command_line, stats
from al_bnn_lab.sweep import BenchmarkConfig, benchmark_config_from_dict, run_file, sweep_runs

BENCHMARK_CONFIG = "configs/benchmark.yaml"
STUDY_QUESTION_CONFIG = "configs/study/q6_methods.yaml"  # where lcmd_exact's settings are declared
STUDY_RUNS = "docs/study_data/q6.csv.gz"  # the study's committed Q6 runs (one row per run and AL step)
BASELINE = "random"
SAMPLERS = ("lcmd", "lcmd_exact")  # the recommended default, and the second edition's rule pick
STATISTIC = "mean_log_rmse_after_initial"  # per run, study_report.run_scalars
STUDY_STATISTIC = "mean_log_rmse"  # the statistic of the study's "What to expect" paragraph (all AL steps)
REPORT_FILE = "heldout_check.md"
TABLE_FILE = "heldout_check.csv"
DIGESTS_FILE = "heldout_datasets.csv"  # per dataset checked in --out: the digest of the data its runs were made on
HOUSING = "housing"  # the study's one dataset not in data/uci: scikit-learn's California housing
HOUSING_CACHE = "cal_housing_py3.pkz"  # its file in scikit-learn's data cache
STUDY_SEEDS = 5  # the study asks for at least five paired seeds
RESERVED_NAMES = ("file",)  # a dataset name the data loader reads as something else than a UCI folder
# --quick: the benchmark's quick training (its `quick: experiment`) and a two-step schedule, for tests
QUICK_SCHEDULE = {"schedule": {"default": {"num_train_init": 0.1, "num_al_incr": 0.05, "al_iter": 2}}}
VERDICTS = {"higher": "fails the check", "lower": "passes (clearly better)",
            "unclear": "passes (not distinguishable from random)"}


def check_verdict(differences: Sequence[float]) -> str:
    """The study's stated verdict on paired differences (sampler - random, lower is better): it
    fails if the 95% interval of their mean lies above zero."""
    return VERDICTS[stats.verdict(differences)]


def against_prediction(mean: float, low: float, high: float) -> str:
    """Where a dataset's mean difference falls against the study's prediction interval."""
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(mean)):
        return "no prediction interval"
    if mean < low:
        return "below it (better than the study predicts)"
    if mean > high:
        return "above it (worse than the study predicts)"
    return "inside it"


# -- the datasets ------------------------------------------------------------------------------------

def study_datasets(config_path: Path | None = None) -> list[str]:
    """The datasets the study used: those of configs/benchmark.yaml."""
    raw = read_yaml(config_path or repo_file(BENCHMARK_CONFIG), "benchmark config", mapping=True)
    return [str(d if isinstance(d, str) else d["name"]) for d in raw.get("datasets") or []]


# Datasets are compared by the arrays read_uci_folder parses from them (features and target, as float64 with
# their shapes), not by the files' bytes: those arrays are exactly what a run trains on, so a copy saved with
# other whitespace, line endings or number spelling (1 / 1.0 / 1e0), or with extra columns its index files do
# not name, is still caught, and a file saved again with the same numbers does not void finished runs. A copy
# with its rows or columns reordered, or its numbers rounded, is other data and is not caught.
def data_digest(features: np.ndarray, target: np.ndarray) -> str:
    """sha256 of a dataset's parsed arrays (shapes and float64 values): equal digests, equal data."""
    digest = hashlib.sha256()
    for array in (features, target):
        values = np.ascontiguousarray(array, dtype="<f8")
        digest.update(repr(values.shape).encode() + values.tobytes())
    return digest.hexdigest()


def dataset_digest(folder: Path) -> tuple[str, int]:
    """(data_digest, rows) of a dataset folder in the UCI layout."""
    features, target = read_uci_folder(folder)
    return data_digest(features, target), len(target)


def _housing_cached() -> bool:
    """Whether California housing can be read without the network: scikit-learn's cache (its own rule for
    where that lies, read here without get_data_home, which would create the folder) holds its file."""
    home = os.path.expanduser(os.environ.get("SCIKIT_LEARN_DATA", os.path.join("~", "scikit_learn_data")))
    return (Path(home) / HOUSING_CACHE).is_file()


def uncompared_study_datasets(study: Sequence[str], study_root: Path | None = None) -> list[str]:
    """The study's datasets whose data cannot be read here to compare by content: housing when it is not in
    scikit-learn's cache (never downloaded for this), any other not in the shipped data/uci."""
    root = study_root or SHIPPED_UCI_ROOT
    return [name for name in study
            if not (_housing_cached() if name == HOUSING else (root / name / "data.txt").is_file())]


def _data_rows(path: Path) -> int:
    """The rows read_uci_folder parses from a data.txt (its non-blank lines), without parsing them."""
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def study_copies(digests: Mapping[str, tuple[str, int]], study: Sequence[str],
                 study_root: Path | None = None) -> dict[str, str]:
    """{name: the study dataset it duplicates} for each of `digests` (name -> (digest, rows)) holding the same
    data as one of the study's: those of the shipped data/uci (or `study_root`) and housing if cached. Only
    a study dataset with a matching row count is parsed."""
    root = study_root or SHIPPED_UCI_ROOT
    rows = {count for _, count in digests.values()}
    skipped = set(uncompared_study_datasets(study, root))
    known: dict[str, str] = {}
    for name in study:
        if name in skipped:
            continue
        if name == HOUSING:
            features, target = housing_arrays()
            if len(target) in rows:
                known.setdefault(data_digest(features, target), name)
        elif _data_rows(root / name / "data.txt") in rows:
            known.setdefault(dataset_digest(root / name)[0], name)
    return {name: known[digest] for name, (digest, _) in digests.items() if digest in known}


def choose_datasets(root: Path, asked: Sequence[str] | None, study: Sequence[str],
                    study_root: Path | None = None) -> tuple[list[str], list[str]]:
    """(the datasets to check, those of `root` left out as the study's: by name, or by content as
    "<name> (the data of <study dataset>)"). Errors a user can cause name the folder or the name and the fix."""
    chosen, left_out, _ = choose_datasets_with_digests(root, asked, study, study_root)
    return chosen, left_out


def choose_datasets_with_digests(root: Path, asked: Sequence[str] | None, study: Sequence[str],
                                 study_root: Path | None = None) -> tuple[list[str], list[str], dict[str, str]]:
    """choose_datasets, plus the data_digest of each dataset to check (each folder is read once)."""
    layout = "a folder of <name>/data.txt, index_features.txt and index_target.txt (the layout of data/uci)"
    if not root.is_dir():
        raise DataFileError(f"--uci-root {str(root)!r}: no such folder; point it at {layout}")
    found = uci_dataset_names(root)
    left_out = [name for name in found if name in study]
    if asked:
        missing = [name for name in asked if name not in found]
        if missing:
            raise DataFileError(f"--datasets {', '.join(missing)}: not in {root} (its datasets: "
                                f"{', '.join(found) or 'none'}); name folders of {root} that hold data.txt")
        used = [name for name in asked if name in study]
        if used:
            raise DataFileError(f"--datasets {', '.join(used)}: the study used {'it' if len(used) == 1 else 'them'}, "
                                "so a check on it is not held out; name datasets the study did not use")
        chosen = list(dict.fromkeys(asked))
    else:
        chosen = [name for name in found if name not in study]
    reserved = [name for name in chosen if name in RESERVED_NAMES]
    if reserved:
        raise DataFileError(f"{root / reserved[0]}: the name {reserved[0]!r} is reserved for data files "
                            "(data.dataset: file); rename the folder")
    digests = {name: dataset_digest(root / name) for name in chosen}
    copies = study_copies(digests, study, study_root)
    if asked and copies:
        named = ", ".join(f"{name} (the data of the study's {copies[name]})" for name in copies)
        raise DataFileError(f"--datasets {named}: the same data the study used, so a check on it is not held out; "
                            "name datasets the study did not use")
    chosen = [name for name in chosen if name not in copies]
    if not chosen:
        raise DataFileError(f"--uci-root {str(root)!r}: no dataset the study did not use (found: "
                            f"{', '.join(found) or 'none'}; the study's are left out, by name or by content); add "
                            f"{layout}")
    return (chosen, left_out + [f"{name} (the data of {study_name})" for name, study_name in copies.items()],
            {name: digests[name][0] for name in chosen})


# -- the sweep ---------------------------------------------------------------------------------------

def sweep_config(root: Path, datasets: Sequence[str], seeds: Sequence[int], sampler: str = "lcmd",
                 quick: bool = False) -> BenchmarkConfig:
    """The check's sweep: the benchmark's recipe, default schedule and sampler settings, on bnn,
    random against `sampler`, on these datasets of `root`."""
    path = repo_file(BENCHMARK_CONFIG)
    bench = read_yaml(path, "benchmark config", mapping=True)
    settings = dict(bench.get("sampler_settings") or {})
    if sampler not in settings:
        question = read_yaml(repo_file(STUDY_QUESTION_CONFIG), "study config", mapping=True)
        settings.update(question.get("sampler_settings") or {})
    samplers = [BASELINE, sampler]
    layer = {"datasets": list(datasets), "uci_root": str(root), "test_fraction": bench.get("test_fraction", 0.2),
             "samplers": samplers, "models": ["bnn"], "seeds": list(seeds),
             "schedule": {"default": bench["schedule"]["default"]}, "experiment": bench.get("experiment") or {},
             "sampler_settings": {s: settings[s] for s in samplers if s in settings},
             "quick": {"experiment": (bench.get("quick") or {}).get("experiment") or {}}}
    raw = with_quick({str(path): layer, "held-out check": {"quick": QUICK_SCHEDULE}}, quick)
    return benchmark_config_from_dict(raw, f"{path} (held-out check{', quick' if quick else ''})")


# -- the data a folder's runs were made on ------------------------------------------------------------

def read_digests(output: Path) -> dict[str, str]:
    """{dataset: digest} as recorded in `output`/DIGESTS_FILE (empty if there is none); read as text only."""
    path = inside(output, DIGESTS_FILE, "the held-out check's dataset digests")
    if not path.is_file():
        return {}
    fix = f"choose a new --out, or delete that file and {output / 'runs'} to start over"
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:
        raise DataFileError(f"{path}: unreadable ({error}); {fix}") from None
    if list(table.columns) != ["dataset", "sha256"]:
        raise DataFileError(f"{path}: not a table of dataset digests (columns dataset, sha256); {fix}")
    return dict(zip(table["dataset"], table["sha256"], strict=True))


def record_digests(output: Path, config: BenchmarkConfig, digests: Mapping[str, str]) -> None:
    """Add `digests` (dataset: data_digest) to `output`/DIGESTS_FILE, the first time a dataset is run there.
    A run key names a dataset, not its data, so a dataset changed under the same name would have its
    finished runs reused: a digest differing from the recorded one while runs of that dataset are in
    `output` is refused, naming the fix; with none there (deleted), the new digest replaces the old."""
    with ResultsWriter(output, overwrite=True, lock=True) as writer:
        recorded = read_digests(output)
        for name, digest in digests.items():
            if recorded.get(name, digest) == digest:
                continue
            if any(run_file(output, entry.name, model, sampler, seed).exists()
                   for entry, model, sampler, seed in sweep_runs(config) if entry.name == name):
                raise ResultsDirectoryExistsError(
                    f"dataset {name!r}: its data in {config.uci_root} differ from the data its runs in {output} were "
                    f"made on (sha256 {recorded[name][:12]}... in {DIGESTS_FILE}, now {digest[:12]}...), and those "
                    f"runs would be reused as if unchanged; choose a new --out, or delete {output / 'runs' / name} "
                    "to run that dataset again")
        merged = {**recorded, **digests}
        if merged != recorded:
            writer.write_csv(DIGESTS_FILE, [{"dataset": name, "sha256": merged[name]} for name in sorted(merged)])


# -- the check ---------------------------------------------------------------------------------------

@dataclass
class PredictionInterval:
    """The study's 95% prediction interval of `sampler` - random for a new dataset, on one statistic."""

    low: float
    high: float
    datasets: int
    source: str


def study_prediction_interval(sampler: str, statistic: str = STATISTIC, runs: Path | None = None,
                              datasets: Sequence[str] | None = None) -> PredictionInterval | None:
    """Computed as the study computes the one it states (study_methods.recommend): per dataset the
    mean over seeds of the paired difference on `statistic`, then mean +- t x sd x sqrt(1 + 1/n)
    over its datasets; from the committed runs. None where the runs or the sampler are not there."""
    path = runs or repo_file(STUDY_RUNS)
    if not path.is_file():
        return None
    return prediction_interval_from(pd.read_csv(path), sampler, statistic, datasets, str(path))


def prediction_interval_from(table: pd.DataFrame, sampler: str, statistic: str = STATISTIC,
                             datasets: Sequence[str] | None = None, source: str = "") -> PredictionInterval | None:
    """study_prediction_interval on a table of runs already read (one row per run and AL step)."""
    from al_bnn_lab.study_report import run_scalars

    names = list(datasets) if datasets is not None else study_datasets()
    table = table[table["sampler"].isin([BASELINE, sampler]) & table["dataset"].isin(names)]
    return interval_of(paired_differences(run_scalars(table), sampler, statistic), source)


def dataset_means(differences: Mapping[str, Sequence[float]]) -> list[float]:
    """Per dataset, the mean over its seeds of the paired differences (paired_differences' values)."""
    return [float(stats.finite(values).mean()) for values in differences.values()]


def interval_of(differences: Mapping[str, Sequence[float]], source: str = "") -> PredictionInterval | None:
    """The prediction interval over the datasets of paired_differences' result (None if it is empty)."""
    if not differences:
        return None
    means = dataset_means(differences)
    low, high = stats.prediction_interval(means)
    return PredictionInterval(low, high, len(means), source)


def paired_differences(scalars: pd.DataFrame, sampler: str, statistic: str = STATISTIC) -> dict[str, list[float]]:
    """Per dataset: `sampler` - random on `statistic`, one value per seed both have run."""
    wide = scalars.pivot_table(index=["dataset", "seed"], columns="sampler", values=statistic)
    if sampler == BASELINE or sampler not in wide or BASELINE not in wide:
        return {}
    both = wide[[sampler, BASELINE]].dropna()
    difference = both[sampler] - both[BASELINE]
    return {str(dataset): part.tolist() for dataset, part in difference.groupby(level="dataset", sort=True)}


def check_table(table: pd.DataFrame, sampler: str, interval: PredictionInterval | None) -> pd.DataFrame:
    """One row per dataset: both samplers' mean log RMSE after the initial step, the paired difference
    with its 95% interval over seeds, the verdict and its place against the prediction interval."""
    from al_bnn_lab.study_report import run_scalars

    scalars = run_scalars(table)
    means = scalars.groupby(["dataset", "sampler"])[STATISTIC].mean()
    pools = scalars.groupby("dataset")["pool_size"].first()
    low, high = (interval.low, interval.high) if interval else (math.nan, math.nan)
    rows = []
    for dataset, differences in paired_differences(scalars, sampler).items():
        mean, half = stats.mean_interval(differences)
        rows.append(dict(dataset=dataset, pool_size=int(pools[dataset]), paired_seeds=len(differences),
                         random_mean_log_rmse=means[dataset, BASELINE], sampler=sampler,
                         sampler_mean_log_rmse=means[dataset, sampler], difference=mean, half_width=half,
                         low=mean - half, high=mean + half, verdict=check_verdict(differences),
                         prediction_low=low, prediction_high=high,
                         against_prediction=against_prediction(mean, low, high)))
    return pd.DataFrame(rows)


def _interval_text(mean: float, half: float) -> str:
    return f"{mean:+.3f} ± {half:.3f}" if math.isfinite(half) else f"{mean:+.3f}"


def render(rows: pd.DataFrame, sampler: str, left_out: Sequence[str], interval: PredictionInterval | None,
           stated: PredictionInterval | None, seeds: Sequence[int], command: str, quick: bool,
           rule_pick: PredictionInterval | None = None, uncompared: Sequence[str] = ()) -> str:
    """heldout_check.md: the check as the study states it, per dataset."""
    kernel = "the gradient kernel" if sampler == "lcmd" else "the bnn's exact last-layer kernel"
    lines = [f"# Held-out check of the study's recommendation: {sampler} against random\n",
             f"Made by `{command}`. The check the study states in advance (docs/study.md, \"Checking the "
             "default on a new dataset\"): run "
             f"the recommended default and random on the same schedule with paired seeds (at least {STUDY_SEEDS}); "
             "it fails if the 95% interval of the paired difference in mean log RMSE lies above zero. Here: "
             f"{sampler} (on {kernel}) and random on bnn with the default model recipe and the benchmark's default "
             f"schedule (configs/benchmark.yaml), seeds {', '.join(map(str, seeds))} (the same seed: the same split "
             f"and initial set for both samplers); difference = {sampler} - random in the mean log test RMSE over "
             "the AL steps after the initial one (negative: more accurate than random), mean over seeds with its "
             "95% interval.\n"]
    if quick:
        lines.append("**--quick:** tiny training and a two-step schedule; these numbers test the command, they do "
                     "not check the study.\n")
    if len(seeds) < STUDY_SEEDS:
        lines.append(f"**Only {len(seeds)} seeds**, fewer than the {STUDY_SEEDS} the study asks for.\n")
    lines.append("Left out (the study's own datasets): " + (", ".join(left_out) if left_out else "none found") + ".\n")
    if uncompared:
        lines.append(f"Not compared by content, so a renamed copy would not be caught: {', '.join(uncompared)} (its "
                     "data could not be read here: housing is read only from scikit-learn's data cache, never "
                     "downloaded for this; the others from the shipped data/uci).\n")
    lines += ["| dataset | pool | paired seeds | random | " + sampler + " | difference [95%] | verdict | against the "
              "study's prediction interval |", "|---|---|---|---|---|---|---|---|"]
    for row in rows.itertuples():
        lines.append(f"| {row.dataset} | {row.pool_size:,} | {row.paired_seeds} | {row.random_mean_log_rmse:.3f} | "
                     f"{row.sampler_mean_log_rmse:.3f} | {_interval_text(row.difference, row.half_width)} | "
                     f"{row.verdict} | {row.against_prediction} |")
    failed = rows.loc[rows["verdict"] == VERDICTS["higher"], "dataset"].tolist()
    lines += ["", f"**{len(failed)} of {len(rows)} dataset(s) fail the check**"
              + (f" ({', '.join(failed)})." if failed else ".")]
    if interval is None:
        lines.append("\nThe study's runs (" + STUDY_RUNS + ") were not found, so no prediction interval is given.")
    else:
        lines.append(f"\nThe study's 95% prediction interval of {sampler} - random for a new dataset on this statistic "
                     f"is {interval.low:+.3f} to {interval.high:+.3f} (mean ± t × sd × sqrt(1 + 1/{interval.datasets}) "
                     f"over its {interval.datasets} datasets, from {STUDY_RUNS}).")
        if stated is not None:
            lines.append("On the mean log RMSE over all AL steps, the statistic of the second edition's \"What to "
                         f"expect\" paragraph, it is {stated.low:+.3f} to {stated.high:+.3f}; leaving out the "
                         "initial step, the same for both samplers of a seed, makes each difference larger "
                         "without changing its sign.")
        if rule_pick is not None:
            lines.append(f"The paragraph states it for the second edition's rule pick, {SAMPLERS[1]}: "
                         f"{rule_pick.low:+.3f} to {rule_pick.high:+.3f} (`--sampler {SAMPLERS[1]}` runs that check).")
    return "\n".join(lines) + "\n"


# -- the command -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Check the study's recommendation on datasets it did not use: "
                                                 "the recommended default against random, paired by seed.")
    parser.add_argument("--uci-root", required=True, help="folder of datasets in the UCI layout (<name>/data.txt, "
                                                          "index_features.txt, index_target.txt)")
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets of --uci-root "
                                                                    "(default: every one the study did not use)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="paired seeds (default 0-4)")
    parser.add_argument("--sampler", choices=SAMPLERS, default=SAMPLERS[0],
                        help="checked against random: lcmd (the recommended default) or lcmd_exact (the second "
                             "edition's rule pick, named in the study's \"What to expect\")")
    parser.add_argument("--out", default=None, help="output folder (default: results_heldout_check[_quick]); a "
                                                    "rerun continues the sweep there")
    parser.add_argument("--quick", action="store_true", help="tiny training and schedule (tests the command)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="start over in an --out made with other settings")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from al_bnn.cli import run_reporting_errors

    args = build_parser().parse_args(argv)
    command = command_line("source/heldout_check.py", argv)
    return run_reporting_errors(lambda: run_check(args, command.strip()))


def run_check(args: argparse.Namespace, command: str) -> int:
    """Choose the datasets, run (or continue) the sweep, then write the check's report."""
    from al_bnn_lab.benchmark import run_sweep
    from al_bnn_lab.sweep import collect

    if len(set(args.seeds)) < 2:
        raise ConfigError(f"--seeds {' '.join(map(str, args.seeds))}: the check needs at least two distinct paired "
                          f"seeds for an interval (the study asks for {STUDY_SEEDS}), e.g. --seeds 0 1 2 3 4")
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    root = Path(args.uci_root).resolve()
    study = study_datasets()
    datasets, left_out, digests = choose_datasets_with_digests(root, args.datasets, study)
    uncompared = uncompared_study_datasets(study)
    print(f"checking {', '.join(datasets)}; left out (the study's): {', '.join(left_out) or 'none'}")
    config = sweep_config(root, datasets, args.seeds, args.sampler, args.quick)
    output = Path(args.out or ("results_heldout_check_quick" if args.quick else "results_heldout_check"))
    record_digests(output, config, digests)
    run_sweep(config, output, workers=args.workers, overwrite=args.overwrite)
    interval = study_prediction_interval(args.sampler)
    rows = check_table(collect(output, config), args.sampler, interval)
    stated = study_prediction_interval(args.sampler, STUDY_STATISTIC) if interval else None
    rule_pick = study_prediction_interval(SAMPLERS[1], STUDY_STATISTIC) if interval and args.sampler != SAMPLERS[1] \
        else None
    text = render(rows, args.sampler, left_out, interval, stated, config.seeds, command, args.quick, rule_pick,
                  uncompared)
    with ResultsWriter(output, overwrite=True, lock=True) as writer:
        writer.write_csv(TABLE_FILE, rows.to_dict("records"))
        writer.write_text(REPORT_FILE, text)
    print(text)
    return 0
