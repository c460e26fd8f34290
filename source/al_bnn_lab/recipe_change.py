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

Per AL step, for the (dataset, sampler) rows whose change is distinguishable (uncorrected): the
paired change at each step beside n_train and what the default `padded` minibatch layout does to
the bnn's KL term there. Padded batches hold `batch_size` rows and the remainder in a last, smaller
batch; each step divides the KL by n_train / batch_size and the step's loss by its rows, so over an
epoch the KL term weighs mean_b(batch_size / rows_b) times what it has in the per-point ELBO
(`balanced` batches: 1). The correlation over steps between that ratio's log and the change is
descriptive only (few steps, one number per step), not a test.

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
from al_bnn.recipe import recipe_default
from al_bnn.results import ResultsWriter
from al_bnn_lab import command_line, stats
from al_bnn_lab.al_calibration import read_table

KEYS = ["dataset", "model", "sampler", "seed"]
STATISTICS = ["mean_log_rmse", "final_log_rmse", "final_coverage_90", "final_log_likelihood"]
TABLE_FILE = "changes.csv"
REPORT_FILE = "report.md"
RUNS_FILE = "new_runs.csv"
STEPS_FILE = "steps.csv"
BATCH_SIZE: int = recipe_default("train_schedule", "batch_size", None)  # the default recipe's minibatch size
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


def padded_batches(n_train: int, batch_size: int = BATCH_SIZE) -> list[int]:
    """Rows in each minibatch of one epoch under the `padded` layout (al_bnn.models.trainer.epoch_layout):
    full batches of `batch_size`, the remainder in a last, smaller one."""
    if batch_size < 1 or n_train < 0:
        raise ValueError(f"padded_batches needs batch_size >= 1 and n_train >= 0, got {batch_size} and {n_train}")
    full, remainder = divmod(int(n_train), int(batch_size))
    return [int(batch_size)] * full + ([remainder] if remainder else [])


def padded_label(n_train: int, batch_size: int = BATCH_SIZE) -> str:
    """The padded layout's batch sizes, short: "3x256+16", "256+234", "100", "2x256"."""
    sizes = padded_batches(n_train, batch_size)
    full = sizes.count(batch_size)  # the remainder is smaller than a full batch
    parts = ([f"{full}x{batch_size}" if full > 1 else str(batch_size)] if full else []) + [str(r) for r in sizes[full:]]
    return "+".join(parts) or "0"


def padded_kl_ratio(n_train: int, batch_size: int = BATCH_SIZE) -> float:
    """The KL term's weight over one padded epoch relative to its weight in the per-point ELBO:
    the mean over the epoch's batches of batch_size / rows_b (each step divides the KL by
    n_train / batch_size, then the step's loss by its rows). 1 when every batch is full; nan for
    an empty set."""
    sizes = padded_batches(n_train, batch_size)
    return float(np.mean([batch_size / rows for rows in sizes])) if sizes else float("nan")


def step_changes(new: pd.DataFrame, baseline: pd.DataFrame, table: pd.DataFrame,
                 batch_size: int = BATCH_SIZE) -> pd.DataFrame:
    """Per AL step of each change_table row whose verdict is distinguishable (uncorrected): n_train,
    the padded layout's batches and KL ratio, and the paired change new - old in log test RMSE at
    that step over seeds (mean, 95% half-width). A run-step of `new` that the baseline lacks or
    trains on other rows is an error naming it (not the same schedule). Tables without an n_train
    column still get the per-step change, with n_train, batches and ratio unknown (nan, "?")."""
    columns = ["dataset", "model", "sampler", "verdict", "al_iter", "n_train", "padded_batches", "padded_kl_ratio",
               "runs", "change", "half_width"]
    chosen = table.loc[table["verdict"] != VERDICT_WORDS["unclear"], ["dataset", "model", "sampler", "verdict"]]
    step_keys = [*KEYS, "al_iter"]
    known = "n_train" in new and "n_train" in baseline

    def steps_of(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.merge(chosen, on=["dataset", "model", "sampler"], how="inner")
        frame = frame.assign(log_rmse=np.log(frame["test_rmse"].astype(float)),
                             n_train=frame["n_train"] if known else np.nan)
        return frame[[*step_keys, "verdict", "n_train", "log_rmse"]]

    merged = steps_of(new).merge(steps_of(baseline).drop(columns="verdict"), on=step_keys, how="left",
                                 suffixes=("_new", "_old"), validate="one_to_one")
    _check_same_steps(merged, known)
    rows = []
    groups = ["dataset", "model", "sampler", "verdict", "al_iter", "n_train_new"]
    for (dataset, model, sampler, verdict, step, n_train), part in merged.groupby(groups, sort=True, dropna=False):
        change, half = stats.mean_interval((part["log_rmse_new"] - part["log_rmse_old"]).to_numpy())
        rows.append(dict(dataset=dataset, model=model, sampler=sampler, verdict=verdict, al_iter=int(step),
                         n_train=int(n_train) if known else np.nan,
                         padded_batches=padded_label(n_train, batch_size) if known else "?",
                         padded_kl_ratio=padded_kl_ratio(n_train, batch_size) if known else np.nan,
                         runs=len(part), change=change, half_width=half))
    return pd.DataFrame(rows, columns=columns)


def _check_same_steps(merged: pd.DataFrame, known: bool) -> None:
    """Every new run-step has the baseline's, trained on as many rows (when the tables say)."""
    absent = merged[merged["log_rmse_old"].isna()]
    if len(absent):
        first = absent.iloc[0]
        raise DataFileError(f"{first.dataset} / {first.model} / {first.sampler} / seed {first.seed}: the baseline has "
                            f"no AL step {first.al_iter} of this run: not the same schedule")
    unequal = merged[merged["n_train_new"] != merged["n_train_old"]] if known else merged.iloc[:0]
    if len(unequal):
        first = unequal.iloc[0]
        raise DataFileError(f"{first.dataset} / {first.model} / {first.sampler} / seed {first.seed}, AL step "
                            f"{first.al_iter}: the new run trains on {first.n_train_new} rows, the baseline's on "
                            f"{first.n_train_old}: not the same schedule")


def step_correlations(steps: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, sampler) of step_changes: the Pearson correlation over AL steps >= 1
    between log(padded KL ratio) and the mean change at the step, with the number of steps (nan
    when fewer than three steps or either side does not vary). Descriptive: one number per step."""
    rows = []
    for (dataset, model, sampler, verdict), part in steps.groupby(["dataset", "model", "sampler", "verdict"],
                                                                  sort=True):
        later = part[part["al_iter"] >= 1]
        ratio, change = np.log(later["padded_kl_ratio"].to_numpy(float)), later["change"].to_numpy(float)
        varies = len(later) >= 3 and np.ptp(ratio) > 0 and np.ptp(change) > 0
        correlation = float(np.corrcoef(ratio, change)[0, 1]) if varies else float("nan")
        rows.append(dict(dataset=dataset, model=model, sampler=sampler, verdict=verdict, steps=len(later),
                         correlation=correlation))
    return pd.DataFrame(rows, columns=["dataset", "model", "sampler", "verdict", "steps", "correlation"])


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


def _count(value: float, form: str = ".0f") -> str:
    return format(value, form) if np.isfinite(value) else "?"


def _interval(mean: float, half: float) -> str:
    return f"{mean:+.3f} ± {half:.3f}" if np.isfinite(half) else f"{mean:+.3f}"


def render_steps(steps: pd.DataFrame, batch_size: int = BATCH_SIZE) -> list[str]:
    """The per-step section: step_changes as a table and one step_correlations line per row."""
    lines = ["", "## Per AL step, where the change is distinguishable", "",
             "For each row above whose verdict (uncorrected) is not \"not distinguishable\": the paired change new - "
             "old in log test RMSE at each AL step (mean over seeds with its 95% interval), beside the rows trained "
             f"on and the default `padded` layout's minibatches (batch size {batch_size}: full batches, the "
             "remainder in a last, smaller one). Each padded step divides the bnn's KL term by "
             f"n_train / {batch_size} and the step's loss by its rows, so over an epoch the KL term weighs "
             f"mean over batches of {batch_size} / rows times what it has in the per-point ELBO (the `balanced` "
             "layout: 1). The correlation below is over AL steps >= 1 (the steps the change above averages), "
             "between the log of that ratio and the change: descriptive, one number per step, few steps, not a "
             "test.", ""]
    if not len(steps):
        return lines + ["No row's change is distinguishable."]
    lines += ["| dataset | model | sampler | verdict | AL step | n_train | padded batches | padded KL weight / "
              "per-point ELBO | change at the step [95%] |", "|---|---|---|---|---|---|---|---|---|"]
    for row in steps.itertuples():
        lines.append(f"| {row.dataset} | {row.model} | {row.sampler} | {row.verdict} | {row.al_iter} | "
                     f"{_count(row.n_train)} | {row.padded_batches} | {_count(row.padded_kl_ratio, '.2f')} | "
                     f"{_interval(row.change, row.half_width)} |")
    lines.append("")
    for row in step_correlations(steps).itertuples():
        value = (f"{row.correlation:+.2f}" if np.isfinite(row.correlation)
                 else "undefined (under three steps, or the ratio or the change does not vary)")
        lines.append(f"- {row.dataset} / {row.model} / {row.sampler} ({row.verdict}): correlation over {row.steps} "
                     f"AL steps >= 1 between log(padded KL weight) and the change: {value} (descriptive).")
    return lines


def render(table: pd.DataFrame, paired: pd.DataFrame, sampler: str, command: str, datasets_total: int | None,
           change: str = "", steps: pd.DataFrame | None = None, batch_size: int = BATCH_SIZE) -> str:
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
    if steps is not None:
        lines += render_steps(steps, batch_size)
    return "\n".join(lines) + "\n"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a positive number of rows, got {text}")
    return value


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
    parser.add_argument("--batch-size", type=_positive, default=BATCH_SIZE, help="minibatch size of the padded "
                        "layout in the per-step table (default: the default recipe's, %(default)s)")
    parser.add_argument("--out", default="results_recipe_change", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    command = command_line("source/recipe_change_report.py", argv)

    def run() -> int:
        new = read_table(Path(args.new))
        baseline = pd.concat([read_table(Path(p)) for p in args.baseline], ignore_index=True)
        paired = paired_runs(new, baseline)
        table = change_table(paired)
        steps = step_changes(new, baseline, table, args.batch_size)
        text = render(table, paired, args.sampler, command.strip(), args.datasets_total, args.change, steps,
                      args.batch_size)
        with ResultsWriter(Path(args.out), overwrite=True, lock=True) as writer:
            writer.write_csv(TABLE_FILE, table.to_dict("records"))
            writer.write_csv(RUNS_FILE, new.to_dict("records"))
            if len(steps):
                writer.write_csv(STEPS_FILE, steps.to_dict("records"))
            else:
                writer.remove_written([STEPS_FILE])  # no distinguishable row: no earlier run's table left
            writer.write_text(REPORT_FILE, text)
        print(text)
        return 0

    return run_reporting_errors(run)
