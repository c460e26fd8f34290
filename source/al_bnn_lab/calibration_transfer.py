"""Does the calibration fitted on the copy transfer to the final model? A diagnosis, per dataset.

    python source/calibration_transfer_report.py [--datasets NAME ...] [--models bnn] [--seeds 0 1] [--out DIR]

A calibrated fit (models.estimators, `calibration="holdout"`) trains a copy of the model without a
keyed share of the rows, fits two variance scales on the copy's held-out residuals (std^2 =
a epistemic^2 + b aleatoric^2, models.calibration) and applies them to the final model, trained on
all rows. That is right only if the final model's raw stds relate to its errors as the copy's did.
Where one part's raw std shrinks faster with more rows than the error does, and its scale is large,
the final model's intervals come out too narrow. This measures it, on the AL benchmark's datasets
and split at the size of the benchmark's final AL step (configs/benchmark.yaml's schedule; the
training rows a keyed random subset of the pool, as random selection would pick them):

- the estimator's own recipe replayed in the open (the same held-out rows, copy and final model; a
  test checks the scales equal the estimator's `calibration_`), its 90% coverage on the held-out
  rows and on the test rows;
- the same with one scale on the total variance (a = b; the maximum-likelihood s on the same
  held-out rows), as an alternative that does not lean on either part;
- the final model's median raw epistemic and aleatoric std on the test rows over the copy's on its
  held-out rows, and the ratio of their RMSEs (the error's shrinkage, for comparison).

Nothing here changes the package's calibration; it says where it transfers and where not. Runs
resume: every finished (dataset, model, seed) is a row of runs.csv in --out, and settings.yaml there
records the --set keywords, so a rerun with other settings into the same folder is refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from al_bnn.config import ConfigError, parse_yaml, read_yaml
from al_bnn.data import load_dataset, uci_root
from al_bnn.models.calibration import fit_variance_scales, holdout_positions
from al_bnn.paths import repo_file
from al_bnn.randomness import numpy_generator
from al_bnn.results import ResultsWriter
from al_bnn_lab import command_line, stats
from al_bnn_lab.uci_protocol import MODELS, make_estimator, parse_settings, score

BENCHMARK_CONFIG = "configs/benchmark.yaml"
RUNS_FILE = "runs.csv"
REPORT_FILE = "calibration_transfer.md"
SETTINGS_FILE = "settings.yaml"
RUN_COLUMNS = ("dataset", "model", "seed", "n_train", "n_held", "ll_two_scales", "coverage_90_two_scales")


def final_step_rows(schedule: dict, name: str, n_pool: int) -> int:
    """Training rows at the final AL step of the benchmark's schedule for this dataset (points, or
    fractions of the pool as the sweep reads them)."""
    step = {**schedule.get("default", {}), **schedule.get(name, {})}

    def size(value: float) -> int:
        return int(value) if value >= 1 else int(round(value * n_pool))

    return min(n_pool, size(step["num_train_init"]) + int(step["al_iter"]) * size(step["num_al_incr"]))


def one_scale(residual: np.ndarray, total_std: np.ndarray) -> float:
    """The maximum-likelihood s for std^2 = s total^2 on held-out residuals: mean(r^2 / total^2)."""
    return float(np.mean(np.asarray(residual, np.float64) ** 2 / np.asarray(total_std, np.float64) ** 2))


def _scores(residual: np.ndarray, std: np.ndarray) -> tuple[float, float]:
    """(90% coverage, mean Gaussian log-likelihood), as the UCI protocol scores them (uci_protocol.score)."""
    scores = score(residual, np.zeros_like(residual), std)
    return scores["coverage_90"], scores["log_likelihood"]


def transfer_row(model: str, x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 seed: int, parameters: dict | None = None) -> dict[str, float]:
    """The estimator's holdout calibration replayed (copy without the held-out rows, final model on
    all rows; the held-out rows keyed as the estimator keys its first fit), scored on the test rows
    with its two scales and with one scale on the total variance."""
    settings = {**(parameters or {}), "calibration": "none"}
    fraction = make_estimator(model, seed, parameters).calibration_fraction
    held = holdout_positions(len(y), fraction, seed, 0)
    kept = np.setdiff1d(np.arange(len(y)), held)
    copy = make_estimator(model, seed, settings).fit(x[kept], y[kept])
    mean, epistemic, aleatoric = copy._raw_predict(x[held])
    residual = y[held] - mean
    scales = fit_variance_scales(residual, epistemic, aleatoric)
    single = one_scale(residual, np.hypot(epistemic, aleatoric))
    final = make_estimator(model, seed, settings).fit(x, y)
    test_mean, test_epistemic, test_aleatoric = final._raw_predict(test_x)
    test_residual = test_y - test_mean
    two = np.hypot(*scales.apply(test_epistemic, test_aleatoric))
    raw = np.hypot(test_epistemic, test_aleatoric)
    held_coverage, _ = _scores(residual, np.hypot(*scales.apply(epistemic, aleatoric)))
    coverage_two, ll_two = _scores(test_residual, two)
    coverage_one, ll_one = _scores(test_residual, np.sqrt(single) * raw)
    coverage_raw, ll_raw = _scores(test_residual, raw)
    return {"n_train": len(y), "n_held": len(held), "scale_epistemic": scales.epistemic,
            "scale_aleatoric": scales.aleatoric, "scale_total": single, "held_coverage_90": held_coverage,
            "coverage_90_two_scales": coverage_two, "coverage_90_one_scale": coverage_one,
            "coverage_90_raw": coverage_raw, "ll_two_scales": ll_two, "ll_one_scale": ll_one, "ll_raw": ll_raw,
            "epistemic_ratio": float(np.median(test_epistemic) / np.median(epistemic)),
            "aleatoric_ratio": float(np.median(test_aleatoric) / np.median(aleatoric)),
            "rmse_ratio": float(np.sqrt(np.mean(test_residual**2)) / np.sqrt(np.mean(residual**2)))}


def check_inputs(datasets: Sequence[str], models: Sequence[str], parameters: dict | None,
                 root: str | Path | None = None, seeds: Sequence[int] = ()) -> None:
    """Refuse, before anything is read or trained, an unknown model or dataset, a negative seed and
    a --set keyword an asked model's estimator does not take (or random_state: the seeds key the runs)."""
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    negative = [seed for seed in seeds if int(seed) < 0]
    if negative:
        raise ConfigError(f"--seeds {' '.join(map(str, negative))}: seeds are non-negative integers")
    if "random_state" in (parameters or {}):
        raise ConfigError("--set random_state: the runs' seeds come from --seeds (each keys its held-out rows "
                          "and its training rows); drop random_state from --set")
    for model in models:
        try:
            make_estimator(model, 0, parameters)._validated_config()
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:  # an unknown keyword, or normalize_y/warm_start not a bool
            raise ConfigError(f"--set: {error} (model {model}); the estimators' keywords are in "
                              "docs/models.md") from None
    folder = uci_root(root)
    for name in datasets:
        if name == "file":
            raise ConfigError("dataset 'file' has no benchmark split or schedule; name the benchmark's datasets "
                              f"({BENCHMARK_CONFIG})")
        if name != "housing" and (folder is None or not (folder / name).is_dir()):
            load_dataset(name, uci_root_dir=root)  # raises DataFileError, naming the known datasets


def _read_runs(path: Path, option: str) -> pd.DataFrame | None:
    """A runs table of this report (None where there is none): a regular file with its columns."""
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file() or path.is_symlink():
        raise ConfigError(f"{option}: {path} is not a regular file (a symlink or a folder is not read); "
                          "remove it or choose another folder")
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError) as error:  # pandas' parser and empty-file errors are ValueErrors
        raise ConfigError(f"{option}: {path} is not a runs table of this report ({error})") from None
    missing = [column for column in RUN_COLUMNS if column not in table.columns]
    if missing:
        raise ConfigError(f"{option}: {path} is not a runs table of this report (no column {', '.join(missing)})")
    return table


def _check_settings(output: Path, settings: dict) -> None:
    """Refuse a folder whose settings.yaml records other --set keywords than `settings`."""
    path = output / SETTINGS_FILE
    if not path.exists() and not path.is_symlink():
        return  # a new folder, or one made before settings were recorded
    if not path.is_file() or path.is_symlink():
        raise ConfigError(f"--out: {path} is not a regular file; choose another --out")
    recorded = parse_yaml(path.read_text(), str(path))
    if recorded != settings:
        raise ConfigError(f"--out {output} holds runs made with other settings ({path}: {recorded!r}, now "
                          f"{settings!r}); choose another --out, or delete that folder to start over")


def measure(output: str | Path, datasets: Sequence[str], models: Sequence[str], seeds: Sequence[int],
            root: str | Path | None = None, progress: Callable[[str], None] = print,
            parameters: dict | None = None) -> pd.DataFrame:
    """Every (dataset, model, seed) not already in `output`/runs.csv; returns the asked ones."""
    check_inputs(datasets, models, parameters, root, seeds)
    schedule = read_yaml(repo_file(BENCHMARK_CONFIG))["schedule"]
    output = Path(output)
    settings = {"set": dict(parameters or {})}
    with ResultsWriter(output, overwrite=True, lock=True) as writer:
        _check_settings(output, settings)
        writer.write_text(SETTINGS_FILE, yaml.safe_dump(settings, sort_keys=True))
        table = _read_runs(output / RUNS_FILE, "--out")
        rows = [] if table is None else table.to_dict("records")
        done = {(r["dataset"], r["model"], int(r["seed"])) for r in rows}
        for name in datasets:
            for seed in seeds:
                todo = [m for m in models if (name, m, int(seed)) not in done]
                if not todo:
                    continue
                data = load_dataset(name, seed=int(seed), uci_root_dir=root)
                n_rows = final_step_rows(schedule, name, len(data.pool_y))
                order = numpy_generator(int(seed), "transfer-train").permutation(len(data.pool_y))[:n_rows]
                x, y = np.asarray(data.pool_x[order], np.float64), np.asarray(data.pool_y[order], np.float64)
                test_x, test_y = np.asarray(data.test_x, np.float64), np.asarray(data.test_y, np.float64)
                for model in todo:
                    row = {"dataset": name, "model": model, "seed": int(seed),
                           **transfer_row(model, x, y, test_x, test_y, int(seed), parameters)}
                    rows.append(row)
                    writer.write_csv(RUNS_FILE, rows)
                    progress(f"{name} {model} seed {seed}: test 90% coverage {row['coverage_90_two_scales']:.2f} "
                             f"(two scales), {row['coverage_90_one_scale']:.2f} (one scale)")
    table = pd.DataFrame(rows)
    keep = table["dataset"].isin(datasets) & table["model"].isin(models) & table["seed"].isin(seeds)
    return table[keep].reset_index(drop=True)


COLUMNS = ("held_coverage_90", "coverage_90_two_scales", "coverage_90_one_scale", "ll_two_scales", "ll_one_scale",
           "scale_epistemic", "scale_aleatoric", "epistemic_ratio", "aleatoric_ratio", "rmse_ratio")


def batch_layout(n: int, batch_size: int, batching: str = "padded") -> str:
    """The minibatch sizes of an epoch on n rows, e.g. "3x256 + 16" (padded) or "4x196" (balanced)."""
    count = -(-int(n) // batch_size)
    if batching == "balanced":
        low, extra = divmod(int(n), count)
        parts = [f"{extra}x{low + 1}"] * bool(extra) + [f"{count - extra}x{low}"] * bool(count - extra)
    else:
        last = int(n) - (count - 1) * batch_size
        parts = [f"{count - 1}x{batch_size}"] * (count > 1) + [str(last)]
    return " + ".join(parts)


def dataset_table(runs: pd.DataFrame, batch_size: int = 256, batching: str = "padded") -> pd.DataFrame:
    """Per (model, dataset): the mean over seeds of each measured column, the number of seeds, and
    the minibatches of the copy and of the final model (their training-set sizes are the seeds')."""
    grouped = runs.groupby(["model", "dataset"], sort=True)
    table = grouped[list(COLUMNS)].mean()
    table.insert(0, "seeds", grouped.size())
    sizes = grouped[["n_train", "n_held"]].first()
    table["copy_batches"] = [batch_layout(n - held, batch_size, batching) for n, held in sizes.itertuples(index=False)]
    table["final_batches"] = [batch_layout(n, batch_size, batching) for n, _ in sizes.itertuples(index=False)]
    return table.reset_index()


def summary_lines(table: pd.DataFrame) -> list[str]:
    """Per model: mean test coverage with each recipe, the datasets below 0.75, and the paired LL
    difference (one scale - two scales) over datasets."""
    lines = []
    for model, part in table.groupby("model", sort=True):
        n = len(part)
        cells = []
        for column, label in (("coverage_90_two_scales", "two scales (the package's)"),
                              ("coverage_90_one_scale", "one scale")):
            below = part.loc[part[column] < 0.75, "dataset"].tolist()
            cells.append(f"{label} {part[column].mean():.2f} (below 0.75 on: {', '.join(below) or 'none'})")
        difference = (part["ll_one_scale"] - part["ll_two_scales"]).to_numpy()
        mean, half = stats.mean_interval(difference)
        better = int(np.sum(difference > 0))
        lines.append(f"- {model}, {n} datasets: mean test 90% coverage {cells[0]}; {cells[1]}. Test LL, one scale "
                     f"minus two scales: {mean:+.3f} ± {half:.3f} (95% interval over datasets), one scale higher on "
                     f"{better} of {n}.")
    return lines


def render(table: pd.DataFrame, command: str) -> str:
    header = ["model", "dataset", "seeds", "held-out coverage", "test coverage, two scales", "one scale",
              "test LL, two scales", "one scale", "scale a (epistemic)", "scale b (aleatoric)",
              "epistemic std final/copy", "aleatoric std final/copy", "RMSE final/copy", "copy's batches",
              "final model's batches"]
    lines = ["# Does the calibration transfer from the copy to the final model?", "",
             f"Made by `{command}`. Training rows: the benchmark's final AL step, a keyed random subset of the "
             "pool; test rows: the benchmark's split. Means over seeds; LL in standardised target units. "
             "Two scales: the package's recipe (std^2 = a epistemic^2 + b aleatoric^2 fitted on the copy's "
             "held-out rows); one scale: std^2 = s (epistemic^2 + aleatoric^2) on the same rows. The ratios: "
             "the final model's median raw std on the test rows over the copy's on its held-out rows, and the "
             "same for the RMSE. Batches: an epoch's minibatch sizes (the copy trains on the rows not held out).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.model} | {row.dataset} | {row.seeds} | {row.held_coverage_90:.2f} | "
                     f"{row.coverage_90_two_scales:.2f} | {row.coverage_90_one_scale:.2f} | {row.ll_two_scales:.3f} | "
                     f"{row.ll_one_scale:.3f} | {row.scale_epistemic:.3g} | {row.scale_aleatoric:.3g} | "
                     f"{row.epistemic_ratio:.2f} | {row.aleatoric_ratio:.2f} | {row.rmse_ratio:.2f} | "
                     f"{row.copy_batches} | {row.final_batches} |")
    return "\n".join([*lines, "", *summary_lines(table), ""])


def paired_lines(runs: pd.DataFrame, baseline: pd.DataFrame, name: str) -> list[str]:
    """This setting against another folder's runs on the same (dataset, model, seed) and training-set
    size: per dataset the test coverage and LL (two scales) of each, and the LL difference over datasets."""
    keys = ["dataset", "model", "seed", "n_train"]
    columns = ["coverage_90_two_scales", "ll_two_scales"]
    paired = runs[keys + columns].merge(baseline[keys + columns], on=keys, suffixes=("", "_base"))
    if paired.empty:
        return [f"## Paired with {name}", "", "No (dataset, model, seed) in common at the same training-set size.", ""]
    means = paired.groupby(["model", "dataset"], sort=True).mean(numeric_only=True).reset_index()
    lines = [f"## Paired with {name}", "",
             "The same datasets, rows and seeds; test coverage and LL with the package's two scales, means over "
             "seeds.", "",
             f"| model | dataset | test coverage, {name} | test coverage | test LL, {name} | test LL | LL difference |",
             "|---|---|---|---|---|---|---|"]
    for row in means.itertuples(index=False):
        lines.append(f"| {row.model} | {row.dataset} | {row.coverage_90_two_scales_base:.2f} | "
                     f"{row.coverage_90_two_scales:.2f} | {row.ll_two_scales_base:.3f} | {row.ll_two_scales:.3f} | "
                     f"{row.ll_two_scales - row.ll_two_scales_base:+.3f} |")
    lines.append("")
    for model, part in means.groupby("model", sort=True):
        difference = (part["ll_two_scales"] - part["ll_two_scales_base"]).to_numpy()
        mean, half = stats.mean_interval(difference)
        lines.append(f"- {model}: test LL minus {name}'s {mean:+.3f} ± {half:.3f} (95% interval over "
                     f"{len(part)} datasets), higher on {int(np.sum(difference > 0))}; mean test 90% coverage "
                     f"{part['coverage_90_two_scales_base'].mean():.2f} -> {part['coverage_90_two_scales'].mean():.2f},"
                     f" lowest {part['coverage_90_two_scales_base'].min():.2f} -> "
                     f"{part['coverage_90_two_scales'].min():.2f}.")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    from al_bnn.cli import run_reporting_errors

    parser = argparse.ArgumentParser(description="Whether the holdout calibration fitted on the copy transfers to "
                                                 "the final model, per dataset (two scales against one).")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="datasets (default: the benchmark's 15, configs/benchmark.yaml)")
    parser.add_argument("--models", nargs="+", default=["bnn"], choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--uci-root", default=None, help="folder of the UCI datasets (default: the shipped data/uci)")
    parser.add_argument("--out", default="results_calibration_transfer", help="output folder (default: %(default)s)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="settings",
                        help="estimator keywords for the copy and the final model alike (e.g. batching=balanced); "
                             "an --out holds one setting's runs")
    parser.add_argument("--compare-with", default=None,
                        help="another report's folder (e.g. the default setting's): a paired section")
    args = parser.parse_args(argv)
    command = command_line("source/calibration_transfer_report.py", argv)

    def run() -> int:
        datasets = args.datasets or list(read_yaml(repo_file(BENCHMARK_CONFIG))["datasets"])
        parameters = parse_settings(args.settings)
        check_inputs(datasets, args.models, parameters, args.uci_root, args.seeds)
        baseline = None
        if args.compare_with:  # read before any training: a bad folder is refused at once
            other = Path(args.compare_with)
            baseline = _read_runs(other / RUNS_FILE, "--compare-with")
            if baseline is None:
                raise ConfigError(f"--compare-with: {other / RUNS_FILE} does not exist; name a folder this report "
                                  "wrote")
        runs = measure(args.out, datasets, args.models, args.seeds, args.uci_root, parameters=parameters)
        # the batches each model trains on (every asked model's estimator takes the same --set keywords)
        estimator = make_estimator(args.models[0], 0, parameters)
        text = render(dataset_table(runs, estimator.batch_size, estimator.batching), command)
        if baseline is not None:
            name = Path(args.compare_with).name or Path(args.compare_with).resolve().name
            text += "\n" + "\n".join(paired_lines(runs, baseline, name))
        with ResultsWriter(Path(args.out), overwrite=True, lock=True) as writer:
            writer.write_text(REPORT_FILE, text)
        print(text)
        return 0

    return run_reporting_errors(run)
