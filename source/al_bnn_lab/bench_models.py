"""The model benchmark: training recipes side by side under random selection.

    python source/bench_models.py                    # configs/model_benchmark.yaml: 15 datasets, 5 seeds
    python source/bench_models.py --quick            # two small sets, two seeds, short training
    python source/bench_models.py --datasets kin8nm concrete --workers 2
    python source/bench_models.py --models dropout ensemble --datasets yacht concrete kin8nm --seeds 0 1 2
    python source/bench_models.py --config configs/recipe_selection.yaml --baseline default --validation 0.2

Each recipe is a label of the sweep (`sampler_settings` of configs/model_benchmark.yaml: the
network and training sections, with `sample_policy: random`), so the sweep runner trains every
recipe on identical splits, initial sets and random picks (same seeds), resumable like any sweep.
The report (printed, and `models.md` / `models.csv` in the output directory) gives per dataset and
recipe: test RMSE on the initial set and at the end, mean log RMSE over the AL steps, final test
log-likelihood, the share of test targets inside the central 90% predictive interval (0.90 is
calibrated; below is over-confident), and training seconds per run; then the paired difference of
each recipe's mean log RMSE to the baseline recipe with a 95% interval over seeds. With
--validation F every run is evaluated on a held-out share F of its pool instead of the test set
(data.validation_fraction), so recipes can be chosen without the test set taking part.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from al_bnn.cli import StoppedEarly, exit_code_for
from al_bnn.config import ConfigError
from al_bnn.errors import AlBnnError
from al_bnn.paths import repo_file
from al_bnn.results import ResultsWriter
from al_bnn_lab.benchmark import run_sweep
from al_bnn_lab.sweep import load_benchmark_config, merge_sections

BASELINE = "old"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compare training recipes under random selection.")
    parser.add_argument("--config", default="configs/model_benchmark.yaml", help="(default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the config's quick: section")
    parser.add_argument("--out", default=None, help="output directory (default: results_models[_quick])")
    parser.add_argument("--datasets", nargs="+", default=None, help="only these datasets of the config")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="override the config's seeds")
    parser.add_argument("--models", nargs="+", default=None, choices=("bnn", "dropout", "ensemble"),
                        help="override the config's models (their settings: the config's model_settings)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    parser.add_argument("--baseline", default=BASELINE, help="the recipe label the others are compared with "
                        "(default: %(default)s)")
    parser.add_argument("--validation", type=float, default=0.0, metavar="FRACTION",
                        help="evaluate on this share of each pool, held out by seed, instead of the test set "
                             "(default 0: the test set)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_benchmark_config(repo_file(args.config), quick=args.quick)
        if args.datasets:
            unknown = sorted(set(args.datasets) - {e.name for e in config.datasets})
            if unknown:
                raise ConfigError(f"--datasets {unknown} are not in {config.source}")
            config.datasets = [e for e in config.datasets if e.name in args.datasets]
        config.seeds = args.seeds or config.seeds
        config.models = args.models or config.models
        if args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {args.workers}")
        if args.baseline not in config.samplers:
            raise ConfigError(f"--baseline {args.baseline!r} is not a recipe of {config.source} "
                              f"({', '.join(config.samplers)})")
        if not 0 <= args.validation < 1:
            raise ConfigError(f"--validation must be a fraction in [0, 1), got {args.validation}")
        if args.validation:
            config.experiment = merge_sections(config.experiment, {"data": {"validation_fraction": args.validation}})
        default_out = "results_models" + ("_validation" if args.validation else "") + ("_quick" if args.quick else "")
        output = Path(args.out or default_out)
        run_sweep(config, output, workers=args.workers)
    except AlBnnError as error:  # what a user can fix; anything else is a bug and keeps its traceback
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except StoppedEarly as stopped:  # Ctrl-C: the finished runs are kept, the report waits for the rest
        print(stopped, file=sys.stderr)
        return exit_code_for(stopped)
    table = pd.read_csv(output / "benchmark.csv")
    report = recipe_report(table, baseline=args.baseline)
    markdown = report_markdown(report, baseline=args.baseline)
    evaluated = (f"Evaluated on a held-out {args.validation:g} of each pool (by seed), not on the test set, which "
                 "no run used; the test_* columns and the log-likelihood and coverage are the validation set's.\n\n"
                 if args.validation else "")
    from al_bnn_lab.stored_settings import SETTINGS_FILE, read_stored_settings, settings_markdown

    # the settings the runs were made with (run_sweep stores them beside the tables), against today's defaults
    settings = settings_markdown(read_stored_settings(output / SETTINGS_FILE), config)
    writer = ResultsWriter(output, overwrite=True)
    writer.write_text("models.csv", report.to_csv(index=False))
    writer.write_text("models.md", f"# Model benchmark\n\nConfig: {config.source}\n\n{settings}\n\n{evaluated}"
                                   f"{markdown}\n")
    plot_report(report, output / "models.png", baseline=args.baseline,
                evaluated_on="validation share of the pool" if args.validation else "test set")
    print(markdown)
    return 0


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the Student-t interval of the mean, by al_bnn_lab.stats' conventions
    (nan bounds below two values)."""
    from al_bnn_lab.stats import interval_bounds

    return interval_bounds(values, level)


def recipe_report(table: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """One row per (dataset, recipe): means over seeds, and the paired difference of the mean log
    RMSE to the baseline recipe with its 95% interval ("clearly worse" when the interval is above 0)."""
    rows = []
    if "model" in table and table["model"].nunique() > 1:  # one row per dataset and model
        table = table.assign(dataset=table["dataset"] + " / " + table["model"])
    table = table.reset_index(drop=True).assign(log_rmse=np.log(table["test_rmse"].to_numpy()))
    per_run = table.groupby(["dataset", "sampler", "seed"])
    first = table.loc[per_run["al_iter"].idxmin()].set_index(["dataset", "sampler", "seed"]).sort_index()
    last = table.loc[per_run["al_iter"].idxmax()].set_index(["dataset", "sampler", "seed"]).sort_index()
    mean_log = per_run["log_rmse"].mean()
    training = per_run.apply(lambda g: (g["training_seconds"] / g["runs_in_stack"]).sum(), include_groups=False)
    final_log_likelihood = last["test_log_likelihood"]
    for (dataset, recipe), group in last.groupby(level=["dataset", "sampler"], sort=False):
        seeds = group.index.get_level_values("seed")
        difference = (mean_log.loc[dataset, recipe].loc[seeds] - mean_log.loc[dataset, baseline].loc[seeds]).to_numpy()
        change, low, high = t_interval(difference)
        verdict = ("baseline" if recipe == baseline else "clearly better" if high < 0 else "clearly worse" if low > 0
                   else "within noise")
        likelihood_gain, gain_low, gain_high = t_interval(
            (final_log_likelihood.loc[dataset, recipe].loc[seeds]
             - final_log_likelihood.loc[dataset, baseline].loc[seeds]).to_numpy())
        likelihood_verdict = ("baseline" if recipe == baseline else "clearly better" if gain_low > 0
                              else "clearly worse" if gain_high < 0 else "within noise")
        rows.append(dict(
            dataset=dataset, recipe=recipe, seeds=len(seeds),
            initial_rmse=first.loc[(dataset, recipe)]["test_rmse"].mean(),
            final_rmse=group["test_rmse"].mean(), mean_log_rmse=mean_log.loc[dataset, recipe].mean(),
            final_log_likelihood=group["test_log_likelihood"].mean(),
            coverage_90=group["test_coverage_90"].mean() if "test_coverage_90" in group else float("nan"),
            training_seconds=training.loc[dataset, recipe].mean(),
            mean_log_rmse_change=change, change_low=low, change_high=high, verdict=verdict,
            log_likelihood_change=likelihood_gain, log_likelihood_low=gain_low, log_likelihood_high=gain_high,
            log_likelihood_verdict=likelihood_verdict))
    report = pd.DataFrame(rows)
    baseline_seconds = report[report["recipe"] == baseline].set_index("dataset")["training_seconds"]
    report["cost_ratio"] = report["training_seconds"].to_numpy() / baseline_seconds.loc[report["dataset"]].to_numpy()
    return report


def report_markdown(report: pd.DataFrame, baseline: str = BASELINE) -> str:
    lines = ["| dataset | recipe | seeds | initial RMSE | final RMSE | mean log RMSE | "
             f"change vs {baseline} [95% CI] | final test log-lik | 90% interval coverage | training s / run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in report.itertuples():
        change = ("" if row.recipe == baseline else
                  f"{row.mean_log_rmse_change:+.3f} [{row.change_low:+.3f}, {row.change_high:+.3f}] {row.verdict}")
        lines.append(f"| {row.dataset} | {row.recipe} | {row.seeds} | {row.initial_rmse:.4g} | {row.final_rmse:.4g} | "
                     f"{row.mean_log_rmse:.4f} | {change} | {row.final_log_likelihood:.3f} | {row.coverage_90:.3f} | "
                     f"{row.training_seconds:.1f} |")
    others = report[report["recipe"] != baseline]
    order = ("clearly better", "within noise", "clearly worse")
    for recipe, part in others.groupby("recipe", sort=False):
        rmse, likelihood = part["verdict"].value_counts(), part["log_likelihood_verdict"].value_counts()
        lines.append(f"\n{recipe} against {baseline} (datasets; paired 95% intervals over seeds): mean log RMSE over "
                     "the AL steps " + ", ".join(f"{rmse.get(v, 0)} {v}" for v in order)
                     + "; final test log-likelihood " + ", ".join(f"{likelihood.get(v, 0)} {v}" for v in order)
                     + f"; training seconds per run {part['cost_ratio'].median():.2f}x the {baseline} recipe's "
                     f"(median over datasets; {part['cost_ratio'].min():.2f}x-{part['cost_ratio'].max():.2f}x)")
    return "\n".join(lines)


def plot_report(report: pd.DataFrame, path: Path, baseline: str = BASELINE, evaluated_on: str = "test set") -> None:
    """Per dataset: each recipe's 90% interval coverage (0.90 is calibrated) and its mean log RMSE
    change against the baseline with the 95% interval over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(report["dataset"]))
    recipes = list(dict.fromkeys(report["recipe"]))
    figure, (coverage_axis, change_axis) = plt.subplots(1, 2, figsize=(12, 0.38 * len(datasets) + 1.6), sharey=True)
    height = 0.8 / len(recipes)
    for k, recipe in enumerate(recipes):
        part = report[report["recipe"] == recipe].set_index("dataset").reindex(datasets)
        positions = np.arange(len(datasets)) + (k - (len(recipes) - 1) / 2) * height
        coverage_axis.barh(positions, part["coverage_90"].to_numpy(), height=height, label=recipe)
        if recipe != baseline:
            change, low, high = (part[c].to_numpy() for c in ("mean_log_rmse_change", "change_low", "change_high"))
            change_axis.errorbar(change, positions, xerr=[change - low, high - change],
                                 fmt="o", capsize=3, label=recipe, color=f"C{k}")
    coverage_axis.axvline(0.9, color="black", linestyle="--", linewidth=1)
    coverage_axis.set(yticks=np.arange(len(datasets)), yticklabels=datasets, xlim=(0, 1),
                      xlabel="share of targets in the central 90% interval (0.90 = calibrated)")
    coverage_axis.invert_yaxis()
    handles, labels = coverage_axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(recipes), 8), frameon=False)
    change_axis.axvline(0.0, color="black", linewidth=1)
    change_axis.set(xlabel=f"mean log RMSE over the AL steps, change vs {baseline} (< 0 better; 95% CI)")
    figure.suptitle(f"Model benchmark: random selection at the benchmark's schedule, evaluated on the {evaluated_on}")
    figure.tight_layout(rect=(0, 0.07 if len(datasets) > 4 else 0.12, 1, 1))
    ResultsWriter(path.parent, overwrite=True).save_figure(path.name, figure, dpi=110, bbox_inches=None)
    plt.close(figure)
