"""Does active learning get worse under a changed model recipe? A benchmark sweep run with the
changed recipe, paired run by run (dataset, model, sampler, seed) with the committed benchmark tables
made with the recipe before:

    python source/recipe_change_report.py --new results_al_new \\
        --baseline docs/benchmark/benchmark.csv --out docs/recipe_change

Per run: the mean log test RMSE over the AL steps after the initial one (the study's statistic),
the final step's log RMSE, and the final step's 90% coverage and test log-likelihood. Per (dataset,
model, sampler): the paired change new - old over seeds with its 95% interval and verdict ("worse"
when the whole interval is above zero), uncorrected (the issue's criterion) and Holm-corrected over
all the (dataset, sampler) tests; and, for each recipe on its own, a sampler against random (lcmd -
random by default), so a reader sees whether the recommendation still holds on the new model.

A run of the new sweep without its counterpart in the baseline is an error naming it; baseline
runs the new sweep did not (yet) run are left out, and the report says how many datasets it covers.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from al_bnn.data import DataFileError
from al_bnn.results import ResultsWriter
from al_bnn_lab import command_line, stats
from al_bnn_lab.al_calibration import read_table

KEYS = ["dataset", "model", "sampler", "seed"]
STATISTICS = ["mean_log_rmse", "final_log_rmse", "final_coverage_90", "final_log_likelihood"]
TABLE_FILE = "changes.csv"
REPORT_FILE = "report.md"
RUNS_FILE = "new_runs.csv"
VERDICT_WORDS = {"higher": "worse", "lower": "better", "unclear": "not distinguishable"}
AGAINST_RANDOM_WORDS = {"higher": "worse than random", "lower": "better than random", "unclear": "not distinguishable"}


def run_statistics(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run: mean log RMSE over AL steps >= 1, final log RMSE, final coverage and LL
    (NaN where the table has no coverage column)."""
    table = table.assign(log_rmse=np.log(table["test_rmse"].astype(float)))
    grouped = table.groupby(KEYS, sort=True)
    last = table[table["al_iter"] == grouped["al_iter"].transform("max")].set_index(KEYS)
    after_initial = table[table["al_iter"] >= 1].groupby(KEYS, sort=True)["log_rmse"].mean()
    coverage = last["test_coverage_90"] if "test_coverage_90" in last else pd.Series(np.nan, index=last.index)
    frame = pd.DataFrame({"mean_log_rmse": after_initial, "final_log_rmse": last["log_rmse"],
                          "final_coverage_90": coverage, "final_log_likelihood": last["test_log_likelihood"],
                          "final_step": last["al_iter"]})
    return frame.reset_index()


def paired_runs(new: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """The new runs' statistics beside the same runs' in the baseline (suffixes _new and _old)."""
    merged = run_statistics(new).merge(run_statistics(baseline), on=KEYS, how="left", suffixes=("_new", "_old"),
                                       validate="one_to_one")
    missing = merged[merged["mean_log_rmse_old"].isna()]
    if len(missing):
        first = missing.iloc[0]
        raise DataFileError(f"{len(missing)} run(s) of the new sweep are not in the baseline tables, e.g. "
                            f"{first.dataset} / {first.model} / {first.sampler} / seed {first.seed}")
    steps = merged[merged["final_step_new"] != merged["final_step_old"]]
    if len(steps):
        first = steps.iloc[0]
        raise DataFileError(f"{first.dataset} / {first.model} / {first.sampler} / seed {first.seed}: the new run ends "
                            f"at AL step {first.final_step_new}, the baseline's at {first.final_step_old}: not the "
                            "same schedule")
    return merged


def change_table(paired: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, sampler): the paired change of each statistic (new - old) over seeds,
    with the 95% half-width for the mean log RMSE and its verdicts, uncorrected and Holm-corrected."""
    rows, differences = [], {}
    for (dataset, model, sampler), part in paired.groupby(["dataset", "model", "sampler"], sort=True):
        row = dict(dataset=dataset, model=model, sampler=sampler, runs=len(part))
        for statistic in STATISTICS:
            row[f"{statistic}_old"] = part[f"{statistic}_old"].mean()
            row[f"{statistic}_new"] = part[f"{statistic}_new"].mean()
        change = (part["mean_log_rmse_new"] - part["mean_log_rmse_old"]).to_numpy()
        final_change = (part["final_log_rmse_new"] - part["final_log_rmse_old"]).to_numpy()
        row["change"], row["half_width"] = stats.mean_interval(change)
        row["final_change"], row["final_half_width"] = stats.mean_interval(final_change)
        rows.append(row)
        differences[(f"{model}/{sampler}", dataset)] = change
    table = pd.DataFrame(rows)
    tests = stats.paired_tests(differences)
    table["verdict"] = tests["verdict"].map(VERDICT_WORDS).to_numpy()
    table["verdict_holm"] = tests["verdict_holm_all"].map(VERDICT_WORDS).to_numpy()
    return table


def against_random(runs: pd.DataFrame, sampler: str) -> pd.DataFrame:
    """Per (dataset, model): `sampler` - random in mean log RMSE, paired by seed, with its interval."""
    rows = []
    for (dataset, model), part in runs.groupby(["dataset", "model"], sort=True):
        wide = part.pivot(index="seed", columns="sampler", values="mean_log_rmse")
        if sampler not in wide or "random" not in wide:
            continue
        difference = (wide[sampler] - wide["random"]).to_numpy()
        mean, half = stats.mean_interval(difference)
        rows.append(dict(dataset=dataset, model=model, mean=mean, half_width=half,
                         verdict=AGAINST_RANDOM_WORDS[stats.verdict(difference)]))
    return pd.DataFrame(rows, columns=["dataset", "model", "mean", "half_width", "verdict"])


def _interval(mean: float, half: float) -> str:
    return f"{mean:+.3f} ± {half:.3f}" if np.isfinite(half) else f"{mean:+.3f}"


def render(table: pd.DataFrame, paired: pd.DataFrame, sampler: str, command: str, datasets_total: int | None,
           change: str = "") -> str:
    covered = table["dataset"].nunique()
    of_total = f" of {datasets_total}" if datasets_total else ""
    lines = [f"# Active learning under a changed model recipe\n\nMade by `{command}`. Each run of the new sweep "
             f"(the changed recipe{': ' + change if change else ''}) is paired with the same run (dataset, model, "
             "sampler, seed: the same split and "
             "initial set) of the committed benchmark, made with the recipe before. Change = new - old in the mean log "
             "test RMSE over the AL steps after the initial one (negative: the changed recipe is more accurate), mean "
             "over seeds with its 95% interval; verdicts uncorrected (the issue's criterion: not clearly worse on "
             f"any dataset) and Holm-corrected over all {len(table)} tests. {covered}{of_total} datasets so far.\n",
             "| dataset | model | sampler | runs | mean log RMSE, old | new | change [95%] | verdict | Holm | final "
             "log RMSE change | final 90% coverage, old -> new | final test LL, old -> new |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.dataset} | {row.model} | {row.sampler} | {row.runs} | {row.mean_log_rmse_old:.3f} | "
                     f"{row.mean_log_rmse_new:.3f} | {_interval(row.change, row.half_width)} | {row.verdict} | "
                     f"{row.verdict_holm} | {_interval(row.final_change, row.final_half_width)} | "
                     f"{row.final_coverage_90_old:.2f} -> {row.final_coverage_90_new:.2f} | "
                     f"{row.final_log_likelihood_old:.3g} -> {row.final_log_likelihood_new:.3g} |")
    lines += ["", "## Summary", ""]
    for (model, name), part in table.groupby(["model", "sampler"], sort=True):
        worse = part.loc[part["verdict"] == "worse", "dataset"].tolist()
        better = part.loc[part["verdict"] == "better", "dataset"].tolist()
        mean, half = stats.mean_interval(part["change"].to_numpy())
        lines.append(f"- {model} / {name}: clearly worse on {len(worse)} of {len(part)} datasets"
                     f"{' (' + ', '.join(worse) + ')' if worse else ''}, clearly better on {len(better)}; mean change "
                     f"over datasets {_interval(mean, half)}; Holm-corrected worse on "
                     f"{int((part['verdict_holm'] == 'worse').sum())}.")
    for model, part in table.groupby("model", sort=True):
        for column, label in (("final_coverage_90_old", "old"), ("final_coverage_90_new", "new")):
            mean, half = stats.mean_interval(part[column].to_numpy())
            low = sorted(set(part.loc[part[column] < 0.75, "dataset"]))
            lines.append(f"- {model}, {label} recipe: mean final-step 90% coverage {_interval(mean, half).lstrip('+')} "
                         f"over its runs' datasets; below 0.75 on: {', '.join(low) or 'none'}.")
    old = against_random(paired.rename(columns={"mean_log_rmse_old": "mean_log_rmse"}), sampler)
    new = against_random(paired.rename(columns={"mean_log_rmse_new": "mean_log_rmse"}), sampler)
    if len(new):
        lines += ["", f"## {sampler} against random, on each recipe", "",
                  f"Mean log RMSE of {sampler} minus random's, paired by seed, on the same runs as above.", "",
                  "| dataset | model | old recipe | verdict | new recipe | verdict |", "|---|---|---|---|---|---|"]
        for o, n in zip(old.itertuples(), new.itertuples(), strict=True):
            lines.append(f"| {n.dataset} | {n.model} | {_interval(o.mean, o.half_width)} | {o.verdict} | "
                         f"{_interval(n.mean, n.half_width)} | {n.verdict} |")
        lines.append("")
        for label, frame in (("old", old), ("new", new)):
            mean, half = stats.mean_interval(frame["mean"].to_numpy())
            better = int((frame["verdict"] == "better than random").sum())
            lines.append(f"- {label} recipe: {sampler} - random over datasets {_interval(mean, half)}; clearly better "
                         f"than random on {better} of {len(frame)}.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from al_bnn.cli import run_reporting_errors

    parser = argparse.ArgumentParser(description="A benchmark sweep with a changed model recipe, paired run by run "
                                                 "with the committed benchmark (the recipe before).")
    parser.add_argument("--new", required=True, help="results folder or tidy table of the new sweep")
    parser.add_argument("--baseline", nargs="+", required=True, help="tidy tables of the committed benchmark")
    parser.add_argument("--sampler", default="lcmd", help="compared with random on each recipe (default: lcmd)")
    parser.add_argument("--datasets-total", type=int, default=None, help="datasets the sweep will cover, when "
                                                                          "reporting a partial one")
    parser.add_argument("--change", default="", help="what the new sweep changed, for the report's first lines")
    parser.add_argument("--out", default="results_recipe_change", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    command = command_line("source/recipe_change_report.py", argv)

    def run() -> int:
        new = read_table(Path(args.new))
        baseline = pd.concat([read_table(Path(p)) for p in args.baseline], ignore_index=True)
        paired = paired_runs(new, baseline)
        table = change_table(paired)
        text = render(table, paired, args.sampler, command.strip(), args.datasets_total, args.change)
        with ResultsWriter(Path(args.out), overwrite=True, lock=True) as writer:
            writer.write_csv(TABLE_FILE, table.to_dict("records"))
            writer.write_csv(RUNS_FILE, new.to_dict("records"))
            writer.write_text(REPORT_FILE, text)
        print(text)
        return 0

    return run_reporting_errors(run)
