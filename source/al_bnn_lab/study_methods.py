"""The study's second edition: which method when (Q6), does the model matter (Q7), what each method
costs (Q8), and the recommendation generated from them.

Like study_report (whose helpers it uses), pure pandas/NumPy on the sweeps' tidy tables. The
accuracy measure is Holzmueller et al.'s (JMLR 2023): per run, the mean of log test RMSE over the
AL steps; per dataset, the paired difference to random over seeds (95% Student-t interval); over
datasets, the mean of the per-dataset values with a 95% interval over datasets. A method is
"clearly better" ("clearly worse") than random on a dataset when the 95% interval of its paired
difference lies below (above) zero, and "within noise" otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from al_bnn_lab.study_cost import runs_calibrated
from al_bnn_lab.study_report import (
    Section,
    _dataset_order,
    baseline_tests,
    interval,
    listing,
    markdown_table,
    paired,
    prediction_interval,
    run_scalars,
    verdict,
    with_interval,
)
from al_bnn_lab.sweep import TIE_TOLERANCE, wins_ties_losses

VERDICT_WORDS = {"lower": "better", "higher": "worse", "unclear": "within noise"}
MARKS = {"better": " ✓", "worse": " ✗", "within noise": "", "n/a": ""}
MARK_LEGEND = "✓ = clearly better than random (95% interval below zero), ✗ = clearly worse (above zero)"


def signed(mean: float, half: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:+.{digits}f}" + (f" ± {half:.{digits}f}" if math.isfinite(half) else "")


def as_percent(log_difference: float) -> str:
    """A difference of log RMSE as the RMSE ratio's change in percent."""
    return f"{math.expm1(log_difference):+.1%}" if math.isfinite(log_difference) else "n/a"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _order(values: Sequence[str], first: str) -> list[str]:
    values = list(dict.fromkeys(values))
    return [first, *[v for v in values if v != first]] if first in values else values


# -- per dataset and over datasets -------------------------------------------------------------------

def per_dataset_methods(table: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """One row per dataset and sampler: mean log RMSE over the AL steps and final RMSE (mean and
    95% half-width over seeds) and, against `baseline` on the shared seeds, the paired difference
    of mean log RMSE, the relative difference of final RMSE, W/T/L (seeds whose mean log RMSE is
    lower / within TIE_TOLERANCE / higher) and the verdict of the mean-log-RMSE difference."""
    scalars = run_scalars(table)
    rows = []
    for dataset in _dataset_order(table):
        part = scalars[scalars["dataset"] == dataset]
        for sampler in _order(part["sampler"], baseline):
            runs = part[part["sampler"] == sampler]
            row = dict(dataset=dataset, pool_size=int(runs["pool_size"].iloc[0]), sampler=sampler, seeds=len(runs))
            row["mean_log_rmse"], row["mean_log_rmse_interval"] = interval(runs["mean_log_rmse"])
            row["final_rmse"], row["final_rmse_interval"] = interval(runs["final_rmse"])
            if sampler != baseline:
                log_difference = paired(scalars, dataset, sampler, baseline, "mean_log_rmse", relative=False)
                final_difference = paired(scalars, dataset, sampler, baseline, "final_rmse")
                wins, ties, losses = wins_ties_losses(log_difference)
                row.update(paired_seeds=len(log_difference))
                row["log_rmse_difference"], row["log_rmse_difference_interval"] = interval(log_difference)
                row["final_rmse_relative_difference"], row["final_rmse_relative_difference_interval"] = \
                    interval(final_difference)
                row.update(wins=wins, ties=ties, losses=losses,
                           verdict=VERDICT_WORDS[verdict(log_difference)] if len(log_difference) else "n/a")
            rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("paired_seeds", "wins", "ties", "losses"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")  # counts; missing for the baseline itself
    return frame


def complete_datasets(per_dataset: pd.DataFrame) -> list[str]:
    """Datasets on which every sampler of the table has runs (the aggregate uses only these, so
    every method is averaged over the same datasets)."""
    samplers = set(per_dataset["sampler"])
    return [d for d in dict.fromkeys(per_dataset["dataset"])
            if set(per_dataset[per_dataset["dataset"] == d]["sampler"]) == samplers]


def aggregate_methods(per_dataset: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """One row per sampler, over the complete datasets: the mean over datasets of its mean log
    RMSE; of its per-dataset difference to the baseline, the mean and 95% half-width over datasets
    and that interval's verdict; the datasets where it is clearly better / within noise / clearly
    worse; W/T/L summed over datasets. Sorted by mean log RMSE (best first)."""
    datasets = complete_datasets(per_dataset)
    part = per_dataset[per_dataset["dataset"].isin(datasets)]
    rows = []
    for sampler in dict.fromkeys(part["sampler"]):
        own = part[part["sampler"] == sampler]
        row = dict(sampler=sampler, datasets=len(own), mean_log_rmse=float(own["mean_log_rmse"].mean()))
        if sampler != baseline:
            differences = own["log_rmse_difference"].to_numpy(dtype=float)
            row["log_rmse_difference"], row["interval"] = interval(differences)
            row["verdict"] = VERDICT_WORDS[verdict(differences)]
            for word, key in (("better", "better"), ("within noise", "within"), ("worse", "worse")):
                names = list(own[own["verdict"] == word]["dataset"])
                row[key] = len(names)
                row[f"{key}_datasets"] = ", ".join(names)
            row["final_rmse_relative_difference"], row["final_interval"] = \
                interval(own["final_rmse_relative_difference"])
            row.update(wins=int(own["wins"].sum()), ties=int(own["ties"].sum()), losses=int(own["losses"].sum()))
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values("mean_log_rmse", kind="stable").reset_index(drop=True)
    for column in ("better", "within", "worse", "wins", "ties", "losses"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")  # counts; missing for the baseline itself
    return frame


def head_to_head(scalars: pd.DataFrame, challenger: str, reference: str, datasets: Sequence[str]) -> dict:
    """challenger - reference in mean log RMSE, paired over seeds per dataset: the per-dataset
    verdicts and the mean and 95% half-width over datasets of the per-dataset mean differences."""
    means, better, worse = [], [], []
    for dataset in datasets:
        difference = paired(scalars, dataset, challenger, reference, "mean_log_rmse", relative=False)
        if not len(difference):
            continue
        means.append(float(difference.mean()))
        outcome = verdict(difference)
        (better if outcome == "lower" else worse if outcome == "higher" else []).append(dataset)
    mean, half = interval(means)
    return dict(challenger=challenger, reference=reference, datasets=len(means), difference=mean, interval=half,
                verdict=VERDICT_WORDS[verdict(np.array(means))], better=better, worse=worse,
                within=len(means) - len(better) - len(worse))


def kinds_from_labels(samplers: Sequence[str]) -> dict[str, tuple[str, str]]:
    """label -> (rule, kernel) read from the labels alone: X_exact is rule X on the exact kernel,
    anything else on the MC kernel (the study passes the kinds its configs set instead)."""
    return {s: (s.removesuffix("_exact"), "exact" if s.endswith("_exact") else "mc") for s in samplers}


def kernel_and_rule_comparisons(samplers: Sequence[str], kinds: dict[str, tuple[str, str]],
                                gpa: str) -> list[tuple[str, str, str]]:
    """(challenger, reference, what differs): the same rule on another kernel against its run on the
    gradient kernel (the paper's recommendation) or, without one, the MC kernel; then each rule
    against GPA on the same kernel."""
    rows = []
    for sampler in samplers:
        rule, kernel = kinds[sampler]
        for base_kernel in ("grad", "mc"):
            reference = next((s for s in samplers if kinds[s] == (rule, base_kernel)), None)
            if reference is not None:
                break
        if reference is not None and kernel != base_kernel:
            rows.append((sampler, reference, f"kernel: {kernel} vs {base_kernel}"))
    if gpa in kinds:
        gpa_rule = kinds[gpa][0]
        for reference in [s for s in samplers if kinds[s][0] == gpa_rule]:
            kernel = kinds[reference][1]
            rows += [(s, reference, f"rule, on the {kernel} kernel") for s in samplers
                     if s != reference and kinds[s][1] == kernel and kinds[s][0] != gpa_rule]
    return rows


# -- figures -----------------------------------------------------------------------------------------

def difference_heatmap(per_dataset: pd.DataFrame, samplers: Sequence[str], datasets: Sequence[str], title: str):
    """Methods x datasets: the paired mean-log-RMSE difference to random, ✓/✗ where it is clear."""
    from al_bnn_lab.plotting import plt

    values = np.full((len(samplers), len(datasets)), np.nan)
    marks = np.full(values.shape, "", dtype=object)
    for i, sampler in enumerate(samplers):
        for j, dataset in enumerate(datasets):
            row = per_dataset[(per_dataset["sampler"] == sampler) & (per_dataset["dataset"] == dataset)]
            if len(row):
                values[i, j] = row["log_rmse_difference"].iloc[0]
                marks[i, j] = MARKS[row["verdict"].iloc[0]]
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    figure, axis = plt.subplots(figsize=(0.85 * len(datasets) + 3.0, 0.42 * len(samplers) + 2.2))
    image = axis.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(samplers)):
        for j in range(len(datasets)):
            if np.isfinite(values[i, j]):
                dark = abs(values[i, j]) > 0.6 * limit  # white text on the darkest cells, to stay legible
                axis.text(j, i, f"{values[i, j]:+.2f}{marks[i, j]}", ha="center", va="center", fontsize=6.5,
                          color="white" if dark else "black")
    pools = per_dataset.drop_duplicates("dataset").set_index("dataset")["pool_size"]
    axis.set_xticks(np.arange(len(datasets)), [f"{d} ({pools[d]:,})" for d in datasets], rotation=45, ha="right",
                    fontsize=7)
    axis.set_yticks(np.arange(len(samplers)), samplers, fontsize=8)
    figure.colorbar(image, ax=axis, label="mean log RMSE minus random's (paired)", shrink=0.8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def forest_figure(panels: dict[str, tuple[pd.DataFrame, pd.DataFrame]], xlabel: str):
    """One panel per entry (title -> (aggregate, per_dataset)): each method's mean difference to
    random over datasets with its 95% interval, and the per-dataset differences as dots."""
    from al_bnn_lab.plotting import plt

    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 0.38 * max(
        len(a) for a, _ in panels.values()) + 1.8), squeeze=False, sharex=True)
    for axis, (title, (aggregate, per_dataset)) in zip(axes[0], panels.items(), strict=True):
        rows = aggregate.dropna(subset=["log_rmse_difference"]).iloc[::-1]
        for position, row in enumerate(rows.itertuples()):
            dots = per_dataset[per_dataset["sampler"] == row.sampler]["log_rmse_difference"]
            axis.plot(dots, np.full(len(dots), position), "o", color="0.65", markersize=3)
            colour = {"better": "C2", "worse": "C3"}.get(row.verdict, "C0")
            axis.errorbar(row.log_rmse_difference, position, xerr=row.interval if math.isfinite(row.interval) else 0,
                          fmt="D", color=colour, capsize=3, markersize=5)
        axis.set_yticks(np.arange(len(rows)), list(rows["sampler"]), fontsize=8)
        axis.axvline(0, color="0.4", linewidth=0.8)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel(xlabel, fontsize=8)
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


# -- question 6: which method when -------------------------------------------------------------------

def _aggregate_table(aggregate: pd.DataFrame, baseline: str) -> str:
    header = ["method", "datasets", "mean log RMSE (mean over datasets)", f"difference to {baseline} (95% interval "
              "over datasets)", "as RMSE change", "clearly better / within noise / clearly worse (datasets)",
              f"final RMSE vs {baseline} (relative, over datasets)", "W/T/L (seeds)",
              f"clearly worse than {baseline} on"]
    rows = []
    for row in aggregate.itertuples():
        if row.sampler == baseline:
            rows.append([row.sampler, row.datasets, f"{row.mean_log_rmse:.4f}", "0 (reference)", "", "", "", "", ""])
            continue
        rows.append([row.sampler, row.datasets, f"{row.mean_log_rmse:.4f}",
                     signed(row.log_rmse_difference, row.interval) + MARKS[row.verdict],
                     as_percent(row.log_rmse_difference), f"{row.better} / {row.within} / {row.worse}",
                     with_interval(row.final_rmse_relative_difference, row.final_interval, digits=1, percent=True),
                     f"{row.wins}/{row.ties}/{row.losses}", row.worse_datasets or "none"])
    return markdown_table(header, rows)


HOLM_MARK = "\\*"  # after ✓/✗: still clear after Holm's correction over all the table's tests (escaped for markdown)


def _difference_matrix(per_dataset: pd.DataFrame, samplers: Sequence[str], baseline: str,
                       holm_clear: set[tuple[str, str]] | None = None) -> str:
    """Datasets x methods: the paired difference to the baseline with its mark; `holm_clear`, the
    (method, dataset) pairs whose verdict survives Holm's correction over all tests, get HOLM_MARK."""
    header = ["dataset", "pool", f"{baseline}: mean log RMSE", *samplers]
    rows = []
    for dataset in dict.fromkeys(per_dataset["dataset"]):
        part = per_dataset[per_dataset["dataset"] == dataset].set_index("sampler")
        reference = part.loc[baseline] if baseline in part.index else None
        row = [dataset, f"{int(part['pool_size'].iloc[0]):,}",
               with_interval(reference["mean_log_rmse"], reference["mean_log_rmse_interval"], digits=3)
               if reference is not None else "n/a"]
        for sampler in samplers:
            if sampler not in part.index:
                row.append("not run")
                continue
            entry = part.loc[sampler]
            held = holm_clear is not None and (sampler, dataset) in holm_clear and MARKS[entry["verdict"]]
            row.append(signed(entry["log_rmse_difference"], entry["log_rmse_difference_interval"], digits=3)
                       + MARKS[entry["verdict"]] + (HOLM_MARK if held else ""))
        rows.append(row)
    return markdown_table(header, rows)


def _dataset_details(per_dataset: pd.DataFrame, baseline: str) -> str:
    """Per dataset, a table with one row per method, best first (a collapsed block each)."""
    blocks = []
    header = ["method", "seeds", "mean log RMSE", "final RMSE", f"mean log RMSE - {baseline}'s",
              f"final RMSE vs {baseline}", "W/T/L", "verdict"]
    for dataset in dict.fromkeys(per_dataset["dataset"]):
        part = per_dataset[per_dataset["dataset"] == dataset]
        # the baseline first, then best first; a method without paired seeds (no difference) last
        others = part[part["sampler"] != baseline].sort_values("log_rmse_difference", kind="stable",
                                                               na_position="last")
        part = pd.concat([part[part["sampler"] == baseline], others])
        rows = []
        for row in part.itertuples():
            common = [row.sampler, row.seeds, with_interval(row.mean_log_rmse, row.mean_log_rmse_interval, digits=4),
                      with_interval(row.final_rmse, row.final_rmse_interval)]
            if row.sampler == baseline:
                rows.append([*common, "", "", "", ""])
            else:
                rows.append([*common, signed(row.log_rmse_difference, row.log_rmse_difference_interval),
                             with_interval(row.final_rmse_relative_difference,
                                           row.final_rmse_relative_difference_interval, digits=1, percent=True),
                             f"{row.wins}/{row.ties}/{row.losses}", row.verdict])
        blocks.append(f"<details><summary>{dataset} (pool {int(part['pool_size'].iloc[0]):,})</summary>\n\n"
                      + markdown_table(header, rows) + "\n\n</details>")
    return "\n\n".join(blocks)


def question_methods(table: pd.DataFrame, baseline: str = "random", gpa: str = "gpa",
                     kinds: dict[str, tuple[str, str]] | None = None) -> Section:
    """kinds: label -> (rule, kernel) of each sampler (default: read from the labels)."""
    per_dataset = per_dataset_methods(table, baseline)
    aggregate = aggregate_methods(per_dataset, baseline)
    scalars = run_scalars(table)
    datasets = complete_datasets(per_dataset)
    missing = [d for d in dict.fromkeys(per_dataset["dataset"]) if d not in datasets]
    samplers = [s for s in _order(table["sampler"], baseline) if s != baseline]
    ranked = [s for s in aggregate["sampler"] if s != baseline]
    seeds = int(scalars.groupby(["dataset", "sampler"])["seed"].nunique().min())
    others = aggregate[aggregate["sampler"] != baseline]
    best = others.iloc[0]
    clearly_better = list(others[others["verdict"] == "better"]["sampler"])
    clearly_worse = list(others[others["verdict"] == "worse"]["sampler"])
    never_worse = list(others[others["worse"] == 0]["sampler"])
    # the same tests as the corrected-verdicts table, so a mark here is a verdict there
    tests = baseline_tests(scalars[scalars["dataset"].isin(datasets)], "mean_log_rmse", baseline, samplers, datasets)
    holm_clear = {(t.method, t.dataset) for t in tests.itertuples() if t.verdict_holm_all != "unclear"}
    kinds = {**kinds_from_labels(samplers), **(kinds or {})}
    comparisons = kernel_and_rule_comparisons(samplers, kinds, gpa)
    kernel_rows = [{**head_to_head(scalars, c, r, datasets), "differs": d} for c, r, d in comparisons
                   if d.startswith("kernel")]
    rule_rows = [{**head_to_head(scalars, c, r, datasets), "differs": d} for c, r, d in comparisons
                 if not d.startswith("kernel")]

    def head_to_head_table(rows: list[dict]) -> str:
        return markdown_table(
            ["challenger", "reference", "what differs", "datasets",
             "mean log RMSE difference (95% interval over datasets)", "clearly lower on", "clearly higher on"],
            [[r["challenger"], r["reference"], r["differs"], r["datasets"], signed(r["difference"], r["interval"]),
              listing(r["better"]), listing(r["worse"])] for r in rows])

    kernel_text = "; ".join(f"{r['challenger']} vs {r['reference']} {signed(r['difference'], r['interval'])} "
                            f"(clearly lower on {len(r['better'])}, higher on {len(r['worse'])} datasets)"
                            for r in kernel_rows)
    answer = (
        f"Over {len(datasets)} datasets and {seeds} paired seeds, ranked by mean log RMSE averaged over the "
        f"datasets: {', '.join(ranked)}. The lowest is {best.sampler}, "
        f"{signed(best.log_rmse_difference, best.interval)} "
        f"against {baseline} (95% interval over datasets; {as_percent(best.log_rmse_difference)} in RMSE), clearly "
        f"better than {baseline} on {best.better}, within noise on {best.within} and clearly worse on {best.worse} "
        f"dataset(s) (per-dataset 95% intervals, not corrected for the number of tests; see the corrected verdicts "
        f"with the recommendation). Clearly better than {baseline} averaged over datasets: {listing(clearly_better)}; "
        f"clearly worse: "
        f"{listing(clearly_worse)}. Never clearly worse than {baseline} on any dataset: {listing(never_worse)}."
        + (f" The same rule on another kernel against the MC kernel (negative = the other kernel is better): "
           f"{kernel_text}." if kernel_rows else "")
        + (f" Datasets left out of the aggregate because some method has no runs there: {listing(missing)}."
           if missing else ""))
    headline = (f"Over {len(datasets)} datasets ({seeds} paired seeds) the lowest mean log RMSE is {best.sampler}'s "
                f"({signed(best.log_rmse_difference, best.interval)} against {baseline}, 95% interval over datasets); "
                f"never clearly worse than {baseline} on any dataset (per-dataset 95% intervals, uncorrected): "
                f"{listing(never_worse)}.")
    section = Section("q6", "Which method when", answer, headline)
    section.facts = dict(datasets=datasets, seeds=seeds, aggregate=aggregate, per_dataset=per_dataset,
                         scalars=scalars, baseline=baseline, gpa=gpa,
                         kinds=kinds if kinds is not None else kinds_from_labels(samplers))
    section.markdown = [
        f"**Over datasets** (Holzmueller et al.'s aggregate: per run the mean of log test RMSE over the AL steps; per "
        f"dataset the mean over seeds and the paired difference to {baseline}; then the mean over the "
        f"{len(datasets)} datasets, with a 95% Student-t interval over datasets; a dataset counts as clearly "
        f"better/worse when the 95% interval over its seeds excludes zero; {MARK_LEGEND}; W/T/L: seeds whose mean "
        f"log RMSE is lower / within {TIE_TOLERANCE} / higher than {baseline}'s; sorted best first):\n\n"
        + _aggregate_table(aggregate, baseline),
        f"**Per dataset**: mean log RMSE minus {baseline}'s, paired over seeds (mean ± 95% interval; negative = "
        f"better; {MARK_LEGEND}; {HOLM_MARK}: still clear after Holm's correction over all "
        f"{len(tests)} tests, at family-wise 5%):\n\n"
        + _difference_matrix(per_dataset, samplers, baseline, holm_clear),
        "**Kernel or rule?** The same rule on another kernel (exact: the closed-form last-layer kernel) against "
        "the MC kernel, and each rule against GPA on the same kernel (mean log RMSE, paired per dataset, then "
        "over datasets):\n\n"
        + head_to_head_table(kernel_rows + rule_rows) if kernel_rows or rule_rows else "",
        "**Each dataset** (mean ± 95% interval over seeds; final RMSE vs random is relative; W/T/L on mean log "
        "RMSE):\n\n" + _dataset_details(per_dataset, baseline)]
    section.markdown = [block for block in section.markdown if block]
    section.tables = {"q6_per_dataset": per_dataset, "q6_aggregate": aggregate,
                      "q6_kernel_and_rule": pd.DataFrame(
                          [{**r, "better": ", ".join(r["better"]), "worse": ", ".join(r["worse"])}
                           for r in kernel_rows + rule_rows])}
    section.figures = {
        "q6_difference_heatmap.png": difference_heatmap(
            per_dataset, ranked, list(dict.fromkeys(per_dataset["dataset"])),
            f"mean log RMSE minus {baseline}'s, paired over seeds (✓/✗: 95% interval excludes zero)"),
        "q6_aggregate.png": forest_figure(
            {f"over {len(datasets)} datasets (dots: each dataset)":
             (aggregate, per_dataset[per_dataset["dataset"].isin(datasets)])},
            f"mean log RMSE minus {baseline}'s (95% interval over datasets)")}
    return section


def best_methods(table: pd.DataFrame, count: int, runnable: Callable[[str], bool],
                 baseline: str = "random") -> tuple[list[str], list[str]]:
    """The `count` samplers of a Q6 table with the lowest mean log RMSE over datasets among those
    `runnable` says can run, and the better-ranked ones it skipped."""
    aggregate = aggregate_methods(per_dataset_methods(table, baseline), baseline)
    chosen, skipped = [], []
    for sampler in aggregate["sampler"]:
        if sampler == baseline or len(chosen) == count:
            continue
        (chosen if runnable(sampler) else skipped).append(sampler)
    return chosen, skipped


# -- question 7: does the model matter? --------------------------------------------------------------

Q6_BNN_LABEL = "bnn (Q6 runs)"  # Q7's name for the bnn side, taken from Q6's runs


def _model_parts(table: pd.DataFrame, bnn_table: pd.DataFrame | None, datasets, seeds, samplers) -> dict:
    """Q6's bnn runs restricted to Q7's datasets, seeds and samplers (if any), then each Q7 model's runs."""
    parts = {}
    if bnn_table is not None and len(bnn_table):
        bnn = bnn_table[bnn_table["dataset"].isin(datasets) & bnn_table["seed"].isin(seeds)
                        & bnn_table["sampler"].isin(samplers)]
        if len(bnn):
            parts[Q6_BNN_LABEL] = bnn
    for model in dict.fromkeys(table["model"]):
        parts[model] = table[table["model"] == model]
    return parts


def _difference_rows(results: dict, samplers: list[str], baseline: str) -> list[list[str]]:
    rows = []
    for sampler in [s for s in samplers if s != baseline]:
        row = [sampler]
        for aggregate, _ in results.values():
            entry = aggregate[aggregate["sampler"] == sampler]
            if entry.empty:
                row += ["not run", ""]
                continue
            entry = entry.iloc[0]
            row += [signed(entry.log_rmse_difference, entry.interval) + MARKS[entry.verdict],
                    f"{entry.better} / {entry.within} / {entry.worse}"]
        rows.append(row)
    return rows


def _accuracy_rows(results: dict, parts: dict, datasets, baseline: str) -> tuple[list[list[str]], dict]:
    """Per dataset: each model's mean log RMSE under the baseline and its 90% coverage; and the
    coverages per model (for the note)."""
    accuracy_rows, coverages = [], {name: [] for name in results}
    for dataset in datasets:
        row = [dataset]
        for name, (_, per_dataset) in results.items():
            entry = per_dataset[(per_dataset["dataset"] == dataset) & (per_dataset["sampler"] == baseline)]
            row.append(with_interval(entry["mean_log_rmse"].iloc[0], entry["mean_log_rmse_interval"].iloc[0],
                                     digits=3) if len(entry) else "not run")
            # calibration beside accuracy: a lower RMSE with over-confident std is a worse model for AL
            runs = parts[name][(parts[name]["dataset"] == dataset) & (parts[name]["sampler"] == baseline)]
            coverage = runs["test_coverage_90"].mean() if "test_coverage_90" in runs else np.nan
            row.append("" if np.isnan(coverage) else f"{coverage:.2f}")
            coverages[name].append(coverage)
        accuracy_rows.append(row)
    return accuracy_rows, coverages


def _order_sentences(results: dict, baseline: str) -> list[str]:
    sentences = []
    for name, (aggregate, _) in results.items():
        others = aggregate[aggregate["sampler"] != baseline]
        order = ", ".join(others["sampler"])
        worse = [f"{r.sampler} ({r.worse_datasets})" for r in others.itertuples() if r.worse]
        sentences.append(f"on {name} the order is {order}; clearly worse than {baseline} somewhere (per-dataset "
                         f"95% intervals, uncorrected): {listing(worse)}")
    return sentences


def _followed_text(results: dict, pick: str | None, baseline: str) -> str:
    """The recommendation rule's pick from Q6, followed across the models."""
    if pick is None:
        return ""
    verdicts = []
    for name, (aggregate, _) in results.items():
        entry = aggregate[aggregate["sampler"] == pick]
        if len(entry):
            entry = entry.iloc[0]
            verdicts.append(f"{name} {signed(entry.log_rmse_difference, entry.interval)} "
                            f"(clearly worse on {entry.worse} of {plural(entry.datasets, 'dataset')})")
    return (f" The recommendation rule's pick from Q6, {pick}, against {baseline}: {'; '.join(verdicts)}."
            if verdicts else f" The recommendation rule's pick from Q6, {pick}, was not run here.")


def _calibration_note(coverages: dict, baseline: str, calibrated_text: str = "") -> str:
    calibration = []
    for name, values in coverages.items():
        known = [v for v in values if not np.isnan(v)]
        if known:
            calibration.append(f"{name} {np.mean(known):.2f}"
                               + (f" (over {len(known)} of the {len(values)})" if len(known) < len(values) else ""))
    return (f" {baseline.capitalize()}'s 90% predictive interval held, averaged over the datasets: "
            f"{', '.join(calibration)} of the test targets (0.90 = calibrated; lower = over-confident"
            + (f"; {calibrated_text}" if calibrated_text else "") + ")."
            if calibration else "")


def _calibrated_text(parts: dict[str, pd.DataFrame]) -> str:
    """Which models' runs were calibrated (their coverage is then the calibrated model's)."""
    calibrated = [name for name, part in parts.items() if runs_calibrated(part)]
    plain = [name for name in parts if name not in calibrated]
    return "; ".join(filter(None, [f"calibrated runs: {listing(calibrated)}" if calibrated else "",
                                   f"uncalibrated runs: {listing(plain)}" if plain else ""]))


def question_models(table: pd.DataFrame, bnn_table: pd.DataFrame | None, derivation: str,
                    baseline: str = "random", pick: str | None = None) -> Section:
    """table: the Q7 runs (models other than bnn); bnn_table: Q6's bnn runs, restricted here to
    Q7's datasets, seeds and samplers; derivation: how the samplers were chosen (for the text);
    pick: the method the recommendation rule picked from Q6, followed across models."""
    datasets = _dataset_order(table)
    seeds = sorted(set(table["seed"]))
    samplers = _order(table["sampler"], baseline)
    parts = _model_parts(table, bnn_table, datasets, seeds, samplers)
    results = {}
    for name, part in parts.items():
        per_dataset = per_dataset_methods(part, baseline)
        results[name] = (aggregate_methods(per_dataset, baseline), per_dataset)
    header = ["method"]
    for name in results:
        header += [f"{name}: difference to {baseline}", f"{name}: better / within / worse"]
    rows = _difference_rows(results, samplers, baseline)
    accuracy_rows, coverages = _accuracy_rows(results, parts, datasets, baseline)
    sentences = _order_sentences(results, baseline)
    followed = _followed_text(results, pick, baseline)
    scope = f"{plural(len(datasets), 'dataset')} and {plural(len(seeds), 'paired seed')}"
    bnn_note = (f" The bnn results are Q6's runs restricted to these datasets and seeds (Q6 has "
                f"{plural(bnn_table['seed'].nunique(), 'seed')})." if bnn_table is not None and Q6_BNN_LABEL in results
                else " Q6 has no bnn runs on these datasets and seeds to compare with.")
    calibration_note = _calibration_note(coverages, baseline, _calibrated_text(parts))
    answer = (f"{derivation} Over {scope} ({listing(datasets)}), ranked by mean log RMSE averaged over the datasets "
              "(best first): " + "; ".join(sentences) + "." + followed + bnn_note + calibration_note
              + f" With {plural(len(datasets), 'dataset')} the intervals over datasets are wide; the per-dataset "
              "verdicts carry more of the answer.")
    headline = f"On {scope}: " + "; ".join(sentences) + "." + followed
    section = Section("q7", "Does the model matter?", answer, headline)
    section.facts = dict(results=results, datasets=datasets, seeds=seeds)
    section.markdown = [
        f"**Difference to {baseline} per model** (mean log RMSE minus {baseline}'s on the same model, paired per "
        f"dataset over seeds, then mean ± 95% interval over the {plural(len(datasets), 'dataset')}; clearly better / "
        f"within noise / clearly worse counts datasets; {MARK_LEGEND}):\n\n" + markdown_table(header, rows),
        f"**The models themselves**: {baseline}'s mean log RMSE per model (mean ± 95% interval over seeds; lower = "
        "more accurate) and its 90% coverage (share of test targets inside the central 90% predictive interval, "
        f"averaged over AL steps and seeds; 0.90 = calibrated, lower = over-confident; {_calibrated_text(parts)}):\n\n"
        + markdown_table(["dataset", *[f"{name}: {column}" for name in results
                                       for column in ("mean log RMSE", "90% coverage")]], accuracy_rows),
        *[f"**{name}, each dataset** (mean log RMSE minus {baseline}'s, paired over seeds; {MARK_LEGEND}):\n\n"
          + _difference_matrix(per_dataset, [s for s in samplers if s != baseline], baseline)
          for name, (_, per_dataset) in results.items()]]
    section.tables = {"q7_aggregate": pd.concat([a.assign(model=name) for name, (a, _) in results.items()],
                                                ignore_index=True)}
    section.figures = {"q7_models.png": forest_figure(
        {name: value for name, value in results.items()}, f"mean log RMSE minus {baseline}'s")}
    return section


# -- question 8: cost --------------------------------------------------------------------------------

def question_method_cost(timing: pd.DataFrame | None, bench: pd.DataFrame) -> Section:
    """timing: the Q6 tidy table (selection and training seconds per AL step); bench: rows of
    al_bnn_lab.bench_selection.run (method, mode, dtype, d, n_pool, n_select, seconds, peak_mib)."""
    from al_bnn_lab.plotting import plt

    markdown, answer_parts, headline_parts, facts = [], [], [], {}
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    if timing is not None and len(timing):
        every_step = timing.assign(training_per_run=lambda t: t["training_seconds"] / t["runs_in_stack"])
        steps = every_step[every_step["al_iter"] > 0]
        datasets = list(dict.fromkeys(steps.sort_values("pool_size", kind="stable")["dataset"]))
        samplers = list(dict.fromkeys(steps["sampler"]))
        rows = []
        for dataset in datasets:
            part = steps[steps["dataset"] == dataset]
            selection = part.groupby("sampler")["selection_seconds"].mean()
            whole_runs = every_step[every_step["dataset"] == dataset].groupby(["sampler", "seed"])["training_per_run"]
            rows.append([dataset, f"{int(part['pool_size'].iloc[0]):,}",
                         *[f"{selection[s]:.3f}" if s in selection else "" for s in samplers],
                         f"{part['training_per_run'].mean():.3f}", f"{whole_runs.sum().mean():.1f}"])
        markdown.append(
            "**Selection seconds per AL step** in the Q6 runs (mean over acquisitions and seeds; includes drawing "
            "function samples or computing features) against **training seconds per AL step and run** (each "
            "training phase trains all of a dataset's runs as one stack; its time divided by the runs in the "
            "stack; the last column sums it over a run's training phases; the sweep's worker processes share the "
            "machine):\n\n"
            + markdown_table(["dataset", "pool", *samplers, "training per step and run", "training per run"], rows))
        largest = datasets[-1]
        at_largest = steps[steps["dataset"] == largest]
        selection = at_largest.groupby("sampler")["selection_seconds"].mean().reindex(samplers)
        training = float(at_largest["training_per_run"].mean())
        pool = int(at_largest["pool_size"].iloc[0])
        dearer = [s for s in samplers if selection[s] > training]
        slowest = selection.idxmax()
        answer_parts.append(
            f"On the largest pool of Q6 ({largest}, {pool:,} points) one AL step's selection takes "
            + ", ".join(f"{s} {selection[s]:.2f} s" for s in samplers)
            + f", against {training:.2f} s of training per step and run; selection costs more than that for "
            f"{listing(dearer)}.")
        headline_parts.append(f"on {largest} ({pool:,} points) the slowest selection is {slowest}'s "
                              f"({selection[slowest]:.2f} s per AL step, against {training:.2f} s of training per "
                              "step and run)")
        facts.update(dataset=largest, pool=pool, selection={s: float(selection[s]) for s in samplers},
                     training=training)
        for index, sampler in enumerate(samplers):
            means = steps[steps["sampler"] == sampler].groupby("pool_size")["selection_seconds"].mean()
            axes[0].plot(means.index, np.maximum(means.to_numpy(), 1e-5), marker="o", markersize=3,
                         color=f"C{index % 10}", linestyle="-" if index < 10 else "--", label=sampler)
        training_curve = steps.groupby("pool_size")["training_per_run"].mean()
        axes[0].plot(training_curve.index, training_curve.to_numpy(), color="black", linewidth=2,
                     label="training per step and run")
        axes[0].set_title("Q6 runs: seconds per AL step", fontsize=9)
        axes[0].legend(fontsize=6, ncol=2)
    else:
        axes[0].axis("off")
    if len(bench):
        keys = ["d", "n_pool", "n_select", "dtype"]
        sizes = bench[keys].drop_duplicates().sort_values(keys).itertuples(index=False)
        methods = list(dict.fromkeys(bench["method"]))
        rows = []
        for d, n_pool, n_select, dtype in sizes:
            part = bench[(bench["d"] == d) & (bench["n_pool"] == n_pool) & (bench["n_select"] == n_select)
                         & (bench["dtype"] == dtype)].set_index("method")
            rows.append([d, f"{n_pool:,}", n_select, dtype,
                         *[f"{part.loc[m, 'seconds']:.2f} ({part.loc[m, 'peak_mib']:.0f})" if m in part.index
                           else "not run" for m in methods]])
        markdown.append(
            "**Selection benchmark** (`al_bnn_lab.bench_selection`: Gaussian features, the same for every "
            "method, 500 training rows, noise 0.01, each method in the paper's mode; seconds of one call, and in "
            "brackets the peak extra memory in MiB from a second, traced call; lrgpa-b1 is low-rank GPA with "
            "batch size 1):\n\n" + markdown_table(["d", "pool", "picks", "dtype", *methods], rows))
        largest_pool = int(bench["n_pool"].max())
        at_largest = bench[bench["n_pool"] == largest_pool]
        times = at_largest.groupby("method")["seconds"].max()
        answer_parts.append(f"On synthetic features with a pool of {largest_pool:,} points: "
                            + ", ".join(f"{m} {times[m]:.2f} s" for m in methods if m in times) + ".")
        headline_parts.append(f"at a pool of {largest_pool:,} the selection benchmark's fastest and slowest are "
                              f"{times.idxmin()} ({times.min():.2f} s) and {times.idxmax()} ({times.max():.1f} s)")
        facts.update(bench_pool=largest_pool, bench_seconds={m: float(s) for m, s in times.items()})
        for index, method in enumerate(methods):
            for style, (d, part) in zip(("-", "--", ":"), bench[bench["method"] == method].groupby("d"),
                                        strict=False):
                part = part.sort_values("n_pool")
                axes[1].plot(part["n_pool"], part["seconds"], marker="x", linestyle=style, color=f"C{index % 10}",
                             label=f"{method} (d {d})")
        axes[1].set_title("selection benchmark (synthetic features)", fontsize=9)
        axes[1].legend(fontsize=6, ncol=2)
    else:
        axes[1].axis("off")
        markdown.append("The selection benchmark has not run yet (`--questions q8`).")
    for axis in axes:
        if axis.axison:
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel("pool size")
            axis.set_ylabel("seconds")
            axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    headline = "; ".join(headline_parts)
    section = Section("q8", "What each method costs", " ".join(answer_parts),
                      headline[:1].upper() + headline[1:] + "." if headline else "")
    section.facts = facts
    section.markdown = markdown
    section.tables = {"q8_selection_benchmark": bench} if len(bench) else {}
    section.figures = {"q8_selection_cost.png": figure}
    return section


# -- the recommendation ------------------------------------------------------------------------------

@dataclass
class Recommendation:
    method: str | None        # the rule's pick among the methods other than random
    supported: bool           # its mean difference to random over datasets is clearly below zero
    default: str              # what to use: the pick if supported, else random
    markdown: list[str] = field(default_factory=list)
    sentence: str = ""        # one sentence for the report's summary (and the README)


def recommend(q6: Section, q7: Section | None = None, q8: Section | None = None) -> Recommendation:
    """The default method by the rule: among the methods other than random, those clearly worse
    than random on the fewest datasets; of these, the lowest mean log RMSE over datasets. It is
    recommended over random only if its mean difference to random over datasets is clearly below
    zero (95% interval); otherwise random stays the default."""
    facts = q6.facts
    aggregate, per_dataset, scalars = facts["aggregate"], facts["per_dataset"], facts["scalars"]
    baseline, gpa, datasets = facts["baseline"], facts["gpa"], facts["datasets"]
    n = len(datasets)
    rule = (f"**Rule** (fixed before the numbers): among the methods other than {baseline}, keep those clearly worse "
            f"than {baseline} (95% interval of the paired mean-log-RMSE difference above zero) on the fewest "
            f"datasets; of these, pick the one with the lowest mean log RMSE averaged over the {n} datasets. Use it "
            f"instead of {baseline} only if its difference to {baseline} over datasets is clearly below zero "
            "(95% interval over datasets).")
    candidates = aggregate[aggregate["sampler"] != baseline]
    if candidates.empty:
        return Recommendation(None, False, baseline, [rule, f"Only {baseline} has runs: nothing to recommend."],
                              f"Q6 has runs of {baseline} only.")
    fewest = int(candidates["worse"].min())
    pick = candidates[candidates["worse"] == fewest].iloc[0]  # the aggregate is sorted best first
    better_overall = candidates[candidates["mean_log_rmse"] < pick.mean_log_rmse]
    supported = pick.verdict == "better"  # the 95% interval over datasets lies below zero
    own = per_dataset[(per_dataset["sampler"] == pick.sampler) & per_dataset["dataset"].isin(datasets)]
    low, high = own["log_rmse_difference"].min(), own["log_rmse_difference"].max()
    median = float(own["log_rmse_difference"].median())
    new_low, new_high = prediction_interval(own["log_rmse_difference"])
    new_dataset = (f" For a new dataset drawn like these {n}, the 95% prediction interval of that difference is "
                   f"{new_low:+.3f} to {new_high:+.3f} (mean +- t x sd x sqrt(1 + 1/{n}) over datasets)"
                   + (", so it may well come out worse than " + baseline if new_high > 0 else "")
                   + "." if math.isfinite(new_low) else "")
    record = (f"over the {n} datasets of Q6 its mean log RMSE differed from {baseline}'s by "
              f"{signed(pick.log_rmse_difference, pick.interval)} (95% interval over datasets; "
              f"{as_percent(pick.log_rmse_difference)} in RMSE averaged over the AL steps); it was clearly better than "
              f"{baseline} on {pick.better}, within noise on {pick.within} and clearly worse on {pick.worse} "
              f"dataset(s){' (' + pick.worse_datasets + ')' if pick.worse else ''} (95% intervals per dataset, "
              "uncorrected for the number of tests; the corrected verdicts are above)")
    passed_over = (f" Better on average but clearly worse than {baseline} on more datasets: "
                   + ", ".join(f"{r.sampler} ({signed(r.log_rmse_difference, r.interval)}; worse on "
                               f"{r.worse_datasets})" for r in better_overall.itertuples()) + "."
                   if len(better_overall) else "")
    if supported:
        default = pick.sampler
        verdict_text = (f"**The rule's pick: {pick.sampler}**, clearly better than {baseline} averaged over "
                        f"datasets: {record}." + passed_over)
        expect = (f"**What to expect.** Per dataset, {pick.sampler}'s mean log RMSE differed from {baseline}'s by "
                  f"{low:+.3f} to {high:+.3f} (median {median:+.3f}, i.e. {as_percent(median)} in RMSE)."
                  f"{new_dataset} To check the claim on a new dataset, run {pick.sampler} and {baseline} on the same "
                  f"schedule with paired seeds (at least five): it fails if the 95% interval of the paired "
                  f"difference in mean log RMSE lies above zero. `source/heldout_check.py --uci-root DIR --sampler "
                  f"{pick.sampler}` runs this check on the datasets in DIR the study did not use "
                  f"([Benchmark results](benchmark-results.md)).")
        sentence = (f"The second edition's rule picks {pick.sampler}: mean log RMSE "
                    f"{signed(pick.log_rmse_difference, pick.interval)} against {baseline} (95% interval over "
                    f"datasets), clearly worse than {baseline} on {pick.worse} of them.")
    else:
        default = baseline
        verdict_text = (f"**Default: {baseline}.** The rule's pick, {pick.sampler}, is not clearly better than "
                        f"{baseline}: {record}. On this evidence no method is recommended over {baseline}."
                        + passed_over)
        expect = (f"**What to expect.** Per dataset, {pick.sampler}'s mean log RMSE differed from {baseline}'s by "
                  f"{low:+.3f} to {high:+.3f} (median {median:+.3f}); which sign a new dataset gets cannot be told "
                  f"from these runs.{new_dataset}")
        sentence = (f"Over the {n} datasets of Q6 no method is clearly better than {baseline} by the study's rule: "
                    f"its pick, {pick.sampler}, has a mean log RMSE difference of "
                    f"{signed(pick.log_rmse_difference, pick.interval)} (95% interval over datasets).")
    paragraphs = [rule, verdict_text, expect]
    if gpa in set(candidates["sampler"]):
        gpa_row = candidates[candidates["sampler"] == gpa].iloc[0]
        pools = per_dataset.drop_duplicates("dataset").set_index("dataset")["pool_size"]

        def named(names: Sequence[str]) -> str:
            return listing([f"{d} ({pools[d]:,})" for d in names])

        better, worse = ([n for n in text.split(", ") if n] for text in (gpa_row.better_datasets,
                                                                        gpa_row.worse_datasets))
        against_random = (f"Against {baseline}, GPA ({gpa}, the published MC kernel) is "
                          f"{signed(gpa_row.log_rmse_difference, gpa_row.interval)} over datasets, clearly better on "
                          f"{named(better)} and clearly worse on {named(worse)} (pool sizes in brackets; per-dataset "
                          "95% intervals, uncorrected).")
        # the summary names GPA's own record too: the first edition's headline was about GPA alone
        gpa_sentence = (f" GPA on its published MC kernel ({gpa}) is "
                        f"{signed(gpa_row.log_rmse_difference, gpa_row.interval)} against {baseline} over the same "
                        f"datasets, clearly better than {baseline} on {len(better)} and clearly worse on "
                        + (listing(worse) if worse else "none"))
        if default in (gpa, baseline):
            when = f"**When GPA.** {'GPA is the default. ' if default == gpa else ''}{against_random}"
            sentence += gpa_sentence + " (per-dataset 95% intervals, uncorrected)." if default == baseline else ""
        else:
            duel = head_to_head(scalars, gpa, default, datasets)
            lower_estimates = sum(paired(scalars, d, gpa, default, "mean_log_rmse", relative=False).mean() < 0
                                  for d in datasets)
            sentence += (gpa_sentence + f"; paired with {default} it is clearly worse on "
                         f"{len(duel['worse'])} and clearly better on {len(duel['better'])} (per-dataset 95% "
                         "intervals, uncorrected).")
            when = (f"**When GPA.** Paired with {default} per dataset, GPA's mean log RMSE is clearly lower on "
                    f"{named(duel['better'])} and clearly higher on {named(duel['worse'])} (pool sizes in brackets; "
                    "uncorrected), "
                    f"within noise on {duel['within']}; over datasets {signed(duel['difference'], duel['interval'])}. "
                    + (f"GPA is the better choice on datasets like {listing(duel['better'])}; elsewhere {default} is "
                       "as good or better. " if duel["better"] else
                       f"GPA is not clearly better than {default} on any of the {n} datasets: within noise on "
                       f"{duel['within']}, with a lower point estimate on {lower_estimates} of them. ")
                    + against_random)
        if q8 is not None and "selection" in q8.facts:
            seconds = q8.facts["selection"]
            if gpa in seconds and default in seconds:
                when += (f" Its selection took {seconds[gpa]:.2f} s per AL step on {q8.facts['dataset']} "
                         f"({q8.facts['pool']:,} points), {default}'s {seconds[default]:.2f} s, against "
                         f"{q8.facts['training']:.2f} s of training per step and run (Q8).")
        paragraphs.append(when)
    if q7 is not None:
        other = ""
        other_models = {name: aggregate for name, (aggregate, _) in q7.facts["results"].items()
                        if name != Q6_BNN_LABEL}
        ran = set.intersection(*[set(a["sampler"]) for a in other_models.values()]) if other_models else set()
        runnable = candidates[candidates["sampler"].isin(ran)]  # the rule again, among what runs on them
        substitute = (runnable[runnable["worse"] == runnable["worse"].min()].iloc[0].sampler if len(runnable)
                      else None)
        if substitute is not None and substitute != default and default != baseline:
            verdicts = []
            for name, aggregate in other_models.items():
                entry = aggregate[aggregate["sampler"] == substitute].iloc[0]
                clearly = "clearly better than " if entry.verdict == "better" else "not clearly better than "
                verdicts.append(f"on {name} {signed(entry.log_rmse_difference, entry.interval)} against {baseline} "
                                f"over {plural(entry.datasets, 'dataset')} ({clearly}{baseline} on average; clearly "
                                f"worse on {entry.worse} of them)")
            exact = facts["kinds"].get(default, ("", ""))[1] == "exact"
            why = (f"{default} needs the bnn's closed-form last-layer kernel, so Q7 could not run it"
                   if exact else f"{default} was not among the methods Q7 ran")
            other = (f" {why}. Of the methods it ran, {substitute} has the best Q6 (bnn) record by the rule; "
                     + "; ".join(verdicts) + ". With this few datasets these are indications, not a rule of their "
                     "own.")
        paragraphs.append(f"**Other models (Q7).** {q7.headline}{other}")
    losses = [f"- **{r.sampler}**: clearly worse than {baseline} on {r.worse_datasets}." if r.worse else
              f"- **{r.sampler}**: never clearly worse than {baseline}." for r in candidates.itertuples()]
    paragraphs.append(f"**Where each method loses to {baseline}** (per dataset, 95% interval over {q6.facts['seeds']} "
                      "or more paired seeds, not corrected for the number of tests; the corrected verdicts are "
                      "above):\n\n" + "\n".join(losses))
    return Recommendation(pick.sampler, bool(supported), default, paragraphs, sentence)
