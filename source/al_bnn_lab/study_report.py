"""The study's analysis: tables, plots and plain answers computed from the sweeps' tidy CSVs.

Pure pandas/NumPy on the tidy tables that the sweep runner writes (one row per run and AL step,
see benchmark_sweep.TIDY_COLUMNS), so every number of docs/study.md can be recomputed from
those files. Intervals are 95% Student-t intervals of a mean over seeds (or over the runs named
in the table); "paired" compares two samplers on the same seeds, which share split and initial set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from al_bnn.checkpoint import RAW_COLUMNS
from al_bnn_lab import stats
from al_bnn_lab.sweep import wins_ties_losses

RUN_KEYS = ["dataset", "sampler", "seed"]


# -- statistics (al_bnn_lab.stats holds the conventions) ----------------------------------------------

def prediction_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """(low, high) of the Student-t prediction interval for one more value drawn like `values`."""
    return stats.prediction_interval(values, level)


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval of the mean (half-width nan below two values)."""
    return stats.mean_interval(values, level)


def run_scalars(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run (dataset, sampler, seed): final test RMSE and log-likelihood, their mean
    over the learning curve (trapezoid area under the curve against labelled points divided by its
    span, a size-independent area-under-curve), and the mean of log test RMSE over the AL steps
    (Holzmueller et al.'s measure). For the ranking's statistics (STATISTICS) also: the mean of log
    test RMSE over the AL steps after the initial one (step 0 is the same for every sampler of a
    seed, so it only dilutes differences), the final step's log RMSE and the area under the log-RMSE
    curve."""
    rows = []
    # runs in the order the table lists them, each run's steps by n_train with a stable sort: the rows (and
    # the sums over them) must not depend on how a CPU's sort orders ties, as a sort of the whole table did
    for (dataset, sampler, seed), run in table.groupby(RUN_KEYS, sort=False):
        run = run.sort_values("n_train", kind="stable")
        n_train = run["n_train"].to_numpy(dtype=float)
        log_rmse = np.log(run["test_rmse"].to_numpy(dtype=float))
        row = dict(dataset=dataset, sampler=sampler, seed=seed, pool_size=int(run["pool_size"].iloc[0]),
                   final_rmse=float(run["test_rmse"].iloc[-1]),
                   final_log_likelihood=float(run["test_log_likelihood"].iloc[-1]),
                   mean_log_rmse=float(log_rmse.mean()),
                   mean_log_rmse_after_initial=float(log_rmse[1:].mean()) if len(log_rmse) > 1 else float("nan"),
                   final_log_rmse=float(log_rmse[-1]), log_rmse_auc=curve_mean(n_train, log_rmse))
        row["rmse_auc"] = curve_mean(n_train, run["test_rmse"].to_numpy(dtype=float))
        row["log_likelihood_auc"] = curve_mean(n_train, run["test_log_likelihood"].to_numpy(dtype=float))
        rows.append(row)
    return pd.DataFrame(rows)


def curve_mean(n_train: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under values(n_train) divided by the span of n_train (the last value when the
    span is zero): the curve's mean over the labelled-points axis."""
    span = n_train[-1] - n_train[0]
    if span <= 0:
        return float(values[-1])
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(n_train))) / span


def paired(scalars: pd.DataFrame, dataset: str | None, challenger: str, baseline: str, column: str,
           relative: bool = True) -> np.ndarray:
    """challenger minus baseline per shared seed (over all datasets when dataset is None),
    relative to the baseline's value when `relative`."""
    part = scalars if dataset is None else scalars[scalars["dataset"] == dataset]
    values = part.pivot_table(index=["dataset", "seed"], columns="sampler", values=column)
    if challenger not in values or baseline not in values:
        return np.zeros(0)
    both = values[[challenger, baseline]].dropna()
    difference = both[challenger] - both[baseline]
    return (difference / both[baseline].abs() if relative else difference).to_numpy()


def verdict(relative_differences: np.ndarray) -> str:
    """'lower', 'higher' or 'unclear': where the 95% interval of the mean difference lies."""
    return stats.verdict(relative_differences)


def run_means(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per run (dataset, sampler, seed): the mean of `column` over the AL steps where it is set."""
    part = table.dropna(subset=[column])
    return part.groupby(RUN_KEYS, sort=False)[column].mean().reset_index()


# -- formatting --------------------------------------------------------------------------------------

def with_interval(mean: float, half: float, digits: int = 4, percent: bool = False) -> str:
    if not math.isfinite(mean):
        return "n/a"
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    if not math.isfinite(half):
        return f"{mean * scale:+.{digits}f}{suffix}" if percent else f"{mean:.{digits}g}"
    if percent:
        return f"{mean * scale:+.{digits}f}% ± {half * scale:.{digits}f}"
    return f"{mean:.{digits}g} ± {half:.2g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def listing(names: Sequence[str]) -> str:
    names = list(names)
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class Section:
    """One question's part of the report. `tables` hold the numbers (also written as CSV),
    `markdown` the rendered tables, `figures` name -> matplotlib figure."""

    key: str
    title: str
    answer: str
    headline: str
    markdown: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)  # key numbers, for the report's three-sentence summary
    appendix: list[str] = field(default_factory=list)  # blocks after the answer (a refresh of the question)
    appendix_figures: dict = field(default_factory=dict)
    appendix_caption: str = ""  # the appendix figures' alt text


def _dataset_order(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["dataset"]))


# -- question 1: GPA vs random vs MCDUE --------------------------------------------------------------

def curve_figure(table: pd.DataFrame, column: str, ylabel: str, samplers: Sequence[str]):
    """One panel per dataset: `column` against labelled points, mean and 95% band over seeds."""
    from al_bnn_lab.plotting import mean_and_band, plt

    datasets = _dataset_order(table)
    columns = min(4, len(datasets))
    rows = -(-len(datasets) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for axis, dataset in zip(axes.flat, datasets, strict=False):
        part = table[table["dataset"] == dataset]
        for index, sampler in enumerate(samplers):
            curves = part[part["sampler"] == sampler].pivot_table(index="seed", columns="n_train", values=column)
            if curves.empty:
                continue
            mean, band = mean_and_band(curves.to_numpy())
            n_train = curves.columns.to_numpy()
            axis.plot(n_train, mean, marker="o", markersize=2.5, color=f"C{index}", label=sampler)
            axis.fill_between(n_train, mean - band, mean + band, color=f"C{index}", alpha=0.2, linewidth=0)
        axis.set_title(f"{dataset} ({part['seed'].nunique()} seeds)", fontsize=10)
        axis.set_xlabel("labelled points", fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    for axis in axes.flat[len(datasets):]:
        axis.axis("off")
    for row in axes:
        row[0].set_ylabel(ylabel, fontsize=8)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def question_samplers(table: pd.DataFrame, baseline: str = "random", challengers: Sequence[str] = ("lrgpa", "mcdue"),
                      gpa: str = "lrgpa") -> Section:
    scalars = run_scalars(table)
    datasets = _dataset_order(table)
    samplers = [baseline, *challengers]
    final_rows, curve_rows, records = [], [], []
    helps, hurts, unclear = [], [], []
    for dataset in datasets:
        part = scalars[scalars["dataset"] == dataset]
        final_row = [dataset, int(part["pool_size"].iloc[0])]
        curve_row = [dataset]
        for sampler in samplers:
            values = part[part["sampler"] == sampler]
            final_row.append(with_interval(*interval(values["final_rmse"])))
            curve_row.append(with_interval(*interval(values["final_log_likelihood"]), digits=3))
        for challenger in challengers:
            final_difference = paired(scalars, dataset, challenger, baseline, "final_rmse")
            area_difference = paired(scalars, dataset, challenger, baseline, "rmse_auc")
            log_difference = paired(scalars, dataset, challenger, baseline, "log_likelihood_auc", relative=False)
            wins, ties, losses = wins_ties_losses(final_difference)
            final_row += [with_interval(*interval(final_difference), digits=1, percent=True),
                          f"{wins}/{ties}/{losses}"]
            curve_row += [with_interval(*interval(area_difference), digits=1, percent=True),
                          with_interval(*interval(log_difference), digits=3)]
            mean_final, half_final = interval(final_difference)
            mean_area, half_area = interval(area_difference)
            records.append(dict(dataset=dataset, sampler=challenger, baseline=baseline, seeds=len(final_difference),
                                final_rmse_relative_difference=mean_final, final_interval=half_final,
                                rmse_auc_relative_difference=mean_area, auc_interval=half_area,
                                wins=wins, ties=ties, losses=losses,
                                final_verdict=verdict(final_difference), auc_verdict=verdict(area_difference)))
        final_rows.append(final_row)
        curve_rows.append(curve_row)
        gpa_record = next(r for r in records if r["dataset"] == dataset and r["sampler"] == gpa)
        outcome = {gpa_record["final_verdict"], gpa_record["auc_verdict"]}
        if "lower" in outcome and "higher" not in outcome:
            helps.append(dataset)
        elif "higher" in outcome and "lower" not in outcome:
            hurts.append(dataset)
        else:
            unclear.append(dataset)
    final_header = ["dataset", "pool", *[f"{s}: final RMSE" for s in samplers]]
    curve_header = ["dataset", *[f"{s}: final log-lik" for s in samplers]]
    for challenger in challengers:
        final_header += [f"{challenger} vs {baseline}: final RMSE difference", "W/T/L"]
        curve_header += [f"{challenger} vs {baseline}: RMSE area difference",
                         f"{challenger} - {baseline}: log-lik area"]
    comparison = pd.DataFrame(records)
    seeds = int(scalars.groupby("dataset")["seed"].nunique().min())
    head_to_head = {d: verdict(paired(scalars, d, gpa, "mcdue", "final_rmse")) for d in datasets}
    gpa_over_mcdue = [d for d, v in head_to_head.items() if v == "lower"]
    mcdue_over_gpa = [d for d, v in head_to_head.items() if v == "higher"]
    mcdue_better = comparison[(comparison["sampler"] != gpa) & (comparison["final_verdict"] == "lower")]["dataset"]
    mcdue_worse = comparison[(comparison["sampler"] != gpa) & (comparison["final_verdict"] == "higher")]["dataset"]
    log_better = [d for d in datasets
                  if verdict(-paired(scalars, d, gpa, baseline, "log_likelihood_auc", relative=False)) == "lower"]
    log_worse = [d for d in datasets
                 if verdict(-paired(scalars, d, gpa, baseline, "log_likelihood_auc", relative=False)) == "higher"]
    answer = (
        f"Over {len(datasets)} datasets and {seeds} paired seeds, GPA ({gpa}) has a clearly lower test RMSE "
        f"than {baseline} selection (the 95% interval of the paired difference in final RMSE or in the area under "
        f"the RMSE curve lies below zero, and neither lies above) on {len(helps)} of them: {listing(helps)}. "
        f"It is clearly worse on {len(hurts)} ({listing(hurts)}) and indistinguishable from {baseline} at this "
        f"number of seeds on {len(unclear)} ({listing(unclear)}). MCDUE (top Monte-Carlo variance, no "
        f"conditioning between picks) has a clearly lower final RMSE than {baseline} on {len(mcdue_better)} "
        f"dataset(s){': ' + listing(list(mcdue_better)) if len(mcdue_better) else ''} and a clearly higher one on "
        f"{len(mcdue_worse)}{': ' + listing(list(mcdue_worse)) if len(mcdue_worse) else ''}. Paired directly, GPA's "
        f"final RMSE is clearly lower than MCDUE's on {listing(gpa_over_mcdue)} and clearly higher on "
        f"{listing(mcdue_over_gpa)}. In test log-likelihood (area under its curve, paired) GPA is clearly better "
        f"than {baseline} on {listing(log_better)} and clearly worse on {listing(log_worse)}. The curves show "
        "where the differences arise along the schedule.")
    headline = (f"In test RMSE GPA beats random selection clearly on {len(helps)} of {len(datasets)} datasets "
                f"({listing(helps)}), loses on {len(hurts)} and is within noise on {len(unclear)} "
                f"({seeds} paired seeds, 95% intervals, not corrected for the number of datasets).")
    section = Section("q1", "GPA vs random vs MCDUE", answer, headline)
    section.facts = dict(helps=helps, hurts=hurts, unclear=unclear, datasets=len(datasets), seeds=seeds,
                         names=datasets)
    section.markdown = [
        "**Final test RMSE** (mean ± 95% interval over seeds; differences are paired, relative to "
        f"{baseline}, negative = better; W/T/L counts seeds with a lower/within 0.5%/higher final RMSE):\n\n"
        + markdown_table(final_header, final_rows),
        "**Whole learning curve**: final test log-likelihood (higher is better) and, paired against "
        f"{baseline}, the relative difference of the area under the RMSE curve and the difference of the area "
        "under the log-likelihood curve (areas are curve means over the labelled-points axis):\n\n"
        + markdown_table(curve_header, curve_rows)]
    section.tables = {"q1_final_rmse": scalars.groupby(["dataset", "sampler"], sort=False)["final_rmse"]
                      .agg(["mean", "count"]).reset_index(), "q1_paired": comparison}
    section.figures = {"q1_rmse.png": curve_figure(table, "test_rmse", "test RMSE", samplers),
                       "q1_log_likelihood.png": curve_figure(table, "test_log_likelihood", "test log-likelihood",
                                                             samplers)}
    return section


# -- question 2: joint vs marginal samples -----------------------------------------------------------

def overlap_figure(overlaps: pd.DataFrame, samplers: Sequence[str], title: str):
    """Bars: mean overlap with the exact kernel's picks per dataset and sampler, 95% whiskers."""
    from al_bnn_lab.plotting import plt

    datasets = list(dict.fromkeys(overlaps["dataset"]))
    figure, axis = plt.subplots(figsize=(min(11.0, 1.2 * len(datasets) + 2.5), 3.8))
    width = 0.8 / len(samplers)
    for index, sampler in enumerate(samplers):
        means, halves = [], []
        for dataset in datasets:
            values = overlaps[(overlaps["dataset"] == dataset) & (overlaps["sampler"] == sampler)]["overlap_exact"]
            mean, half = interval(values)
            means.append(mean)
            halves.append(0.0 if not math.isfinite(half) else half)
        positions = np.arange(len(datasets)) + (index - (len(samplers) - 1) / 2) * width
        axis.bar(positions, means, width, yerr=halves, capsize=2, color=f"C{index}", label=sampler)
    axis.set_xticks(np.arange(len(datasets)), datasets, fontsize=8)
    axis.set_ylabel("share of picks the exact kernel also makes")
    axis.set_ylim(0, 1)
    axis.set_title(title, fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def question_joint_marginal(table: pd.DataFrame, joint: str = "gpa_joint", marginal: str = "gpa_marginal",
                            exact: str = "gpa_exact", chance: str = "random") -> Section:
    overlaps = run_means(table, "overlap_exact")
    scalars = run_scalars(table)
    datasets = _dataset_order(table)
    rows, records = [], []
    for dataset in datasets:
        row = [dataset]
        for sampler in (chance, marginal, joint):
            values = overlaps[(overlaps["dataset"] == dataset) & (overlaps["sampler"] == sampler)]["overlap_exact"]
            mean, half = interval(values)
            row.append(with_interval(mean, half, digits=2))
            records.append(dict(dataset=dataset, sampler=sampler, overlap_with_exact=mean, interval=half))
        for challenger in (marginal, exact):
            final_difference = paired(scalars, dataset, challenger, joint, "final_rmse")
            area_difference = paired(scalars, dataset, challenger, joint, "rmse_auc")
            row += [with_interval(*interval(final_difference), digits=1, percent=True),
                    with_interval(*interval(area_difference), digits=1, percent=True)]
        rows.append(row)
    overlap_table = pd.DataFrame(records)
    header = ["dataset", f"overlap with exact: {chance} (chance)", f"overlap: {marginal}", f"overlap: {joint}",
              f"{marginal} vs {joint}: final RMSE", f"{marginal} vs {joint}: RMSE area",
              f"{exact} vs {joint}: final RMSE", f"{exact} vs {joint}: RMSE area"]

    def overall(sampler: str) -> tuple[float, float]:
        return interval(overlaps[overlaps["sampler"] == sampler]["overlap_exact"])

    joint_mean, marginal_mean, chance_mean = overall(joint)[0], overall(marginal)[0], overall(chance)[0]
    # pooled with each dataset's mean paired difference as one value (seeds within a dataset are not
    # exchangeable with seeds of another)
    marginal_final = np.array([paired(scalars, d, marginal, joint, "final_rmse").mean() for d in datasets])
    marginal_area = np.array([paired(scalars, d, marginal, joint, "rmse_auc").mean() for d in datasets])
    worse = [d for d in datasets if verdict(paired(scalars, d, marginal, joint, "final_rmse")) == "higher"]
    better = [d for d in datasets if verdict(paired(scalars, d, marginal, joint, "final_rmse")) == "lower"]
    answer = (
        f"Averaged over all runs and acquisitions, GPA on joint samples (one weight draw shared by all points) "
        f"picks {joint_mean:.0%} of the points the exact last-layer kernel picks from the same model; on the "
        f"thesis's marginal samples (an independent draw per point) it picks {marginal_mean:.0%}, against "
        f"{chance_mean:.0%} for random selection (the chance level). Marginal samples are independent across "
        f"points, so their estimated covariance is the marginal variances on the diagonal and sampling noise "
        f"elsewhere: conditioning on a pick tells GPA nothing about its neighbours. Averaged over the "
        f"{len(datasets)} datasets' mean paired differences, marginal samples change the final RMSE by "
        f"{with_interval(*interval(marginal_final), digits=1, percent=True)} and the RMSE area by "
        f"{with_interval(*interval(marginal_area), digits=1, percent=True)} relative to joint samples; per "
        f"dataset the final RMSE is clearly worse on {listing(worse)} and clearly better on {listing(better)}.")
    headline = (f"Joint function samples pick {joint_mean:.0%} of what the exact kernel picks, the thesis's "
                f"marginal samples {marginal_mean:.0%} (chance {chance_mean:.0%}); marginal samples make the final "
                f"RMSE clearly worse than joint ones on {len(worse)} of {len(datasets)} datasets and clearly better "
                f"on {len(better)}.")
    section = Section("q2", "Joint vs marginal function samples", answer, headline)
    section.facts = dict(joint=joint_mean, marginal=marginal_mean, chance=chance_mean)
    section.markdown = [
        "**Overlap** of each run's picks with the exact kernel's picks on the same model at the same "
        "acquisition (mean over acquisitions, then mean ± 95% interval over seeds), and paired RMSE "
        f"differences relative to {joint} (negative = better):\n\n" + markdown_table(header, rows)]
    section.tables = {"q2_overlap": overlap_table}
    section.figures = {"q2_overlap.png": overlap_figure(overlaps, [chance, marginal, joint],
                                                        "Overlap with the exact kernel's picks")}
    return section


# -- question 3: MC kernel vs exact kernel as T grows ------------------------------------------------

def question_sample_count(table: pd.DataFrame, exact: str = "gpa_exact") -> Section:
    from al_bnn_lab.plotting import plt

    overlaps = run_means(table, "overlap_exact")
    scalars = run_scalars(table)
    counts = {}
    for sampler in dict.fromkeys(overlaps["sampler"]):
        if sampler.startswith("gpa_T") and sampler[5:].isdigit():
            counts[sampler] = int(sampler[5:])
    mc_samplers = sorted(counts, key=counts.get)
    datasets = _dataset_order(table)
    rows, records = [], []
    for sampler in mc_samplers:
        values = overlaps[overlaps["sampler"] == sampler]["overlap_exact"]
        final_difference = paired(scalars, None, sampler, exact, "final_rmse")
        area_difference = paired(scalars, None, sampler, exact, "rmse_auc")
        wins, ties, losses = wins_ties_losses(final_difference)
        per_dataset = [interval(overlaps[(overlaps["sampler"] == sampler) & (overlaps["dataset"] == d)]
                                ["overlap_exact"])[0] for d in datasets]
        rows.append([counts[sampler], with_interval(*interval(values), digits=2),
                     *[f"{value:.2f}" for value in per_dataset],
                     with_interval(*interval(final_difference), digits=1, percent=True),
                     with_interval(*interval(area_difference), digits=1, percent=True), f"{wins}/{ties}/{losses}"])
        records.append(dict(num_samples=counts[sampler], overlap_with_exact=interval(values)[0],
                            runs=len(values), final_rmse_vs_exact=interval(final_difference)[0],
                            rmse_auc_vs_exact=interval(area_difference)[0]))
    header = ["T", "overlap with exact (all runs)", *datasets, f"final RMSE vs {exact}", f"RMSE area vs {exact}",
              f"W/T/L vs {exact}"]
    result = pd.DataFrame(records)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for index, dataset in enumerate(datasets):
        means = [interval(overlaps[(overlaps["sampler"] == s) & (overlaps["dataset"] == dataset)]
                          ["overlap_exact"])[0] for s in mc_samplers]
        axes[0].plot([counts[s] for s in mc_samplers], means, marker="o", markersize=3, color=f"C{index}",
                     label=dataset, linewidth=1)
    axes[0].plot(result["num_samples"], result["overlap_with_exact"], color="black", linewidth=2.2, label="all")
    axes[0].set_ylabel("share of picks the exact kernel also makes")
    axes[0].set_ylim(0, 1)
    means, halves = [], []
    for sampler in mc_samplers:
        mean, half = interval(paired(scalars, None, sampler, exact, "final_rmse"))
        means.append(100 * mean)
        halves.append(0.0 if not math.isfinite(half) else 100 * half)
    axes[1].errorbar([counts[s] for s in mc_samplers], means, yerr=halves, marker="o", capsize=3, color="black")
    axes[1].axhline(0, color="0.6", linewidth=0.8)
    axes[1].set_ylabel(f"final RMSE vs {exact} (%, paired, 95%)")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("function samples T")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    first, last = result.iloc[0], result.iloc[-1]
    published = result[result["num_samples"] == 100]
    largest_verdict = verdict(paired(scalars, None, mc_samplers[-1], exact, "final_rmse"))
    accuracy = {"lower": f"clearly lower than with the exact kernel at T = {int(last.num_samples)}",
                "higher": f"clearly higher than with the exact kernel at T = {int(last.num_samples)}",
                "unclear": f"not distinguishable from the exact kernel's at T = {int(last.num_samples)}"}
    answer = (
        f"The Monte-Carlo kernel's picks overlap the exact kernel's by {first.overlap_with_exact:.0%} at "
        f"T = {int(first.num_samples)} and {last.overlap_with_exact:.0%} at T = {int(last.num_samples)} (mean over "
        f"{int(last.runs)} runs)"
        + (f"; the published T = 100 gives {published.overlap_with_exact.iloc[0]:.0%}. " if len(published)
           else ". ")
        + f"The paired final RMSE relative to the exact kernel is {first.final_rmse_vs_exact:+.1%} at "
        f"T = {int(first.num_samples)} and {last.final_rmse_vs_exact:+.1%} at T = {int(last.num_samples)}, "
        f"{accuracy[largest_verdict]} (95% interval over all runs). The exact kernel needs one forward pass "
        f"instead of T and has no sampling noise.")
    distinguishable = [str(counts[s]) for s in mc_samplers
                       if verdict(paired(scalars, None, s, exact, "final_rmse")) != "unclear"]
    headline = (f"The Monte-Carlo kernel agrees with the exact one on {first.overlap_with_exact:.0%} of the picks "
                f"at T = {int(first.num_samples)} and {last.overlap_with_exact:.0%} at T = {int(last.num_samples)}; "
                + ("the final RMSE is within noise of the exact kernel's at every T."
                   if not distinguishable else
                   f"the final RMSE differs clearly from the exact kernel's at T = {', '.join(distinguishable)}."))
    section = Section("q3", "Monte-Carlo kernel vs exact kernel, by number of samples T", answer, headline)
    section.facts = dict(largest_T=int(last.num_samples), overlap_at_largest_T=float(last.overlap_with_exact))
    section.markdown = [
        "**Overlap** with the exact kernel's picks on the same model (mean ± 95% interval over all runs, then "
        f"the mean per dataset), and the paired final-RMSE and RMSE-area differences relative to the {exact} "
        "runs (over all datasets and seeds; negative = better):\n\n" + markdown_table(header, rows)]
    section.tables = {"q3_sample_count": result}
    section.figures = {"q3_overlap_vs_samples.png": figure}
    return section


# -- question 4: fast vs batch, float32 vs float64 ---------------------------------------------------

def question_precision(table: pd.DataFrame, reference: str = "bgpa_float64") -> Section:
    comparisons = table[table["sampler"] == reference]
    names = [c.removeprefix("agreed_") for c in table.columns if c.startswith("agreed_")
             and comparisons[c].notna().any()]
    datasets = _dataset_order(table)
    has_order = any(f"in_order_{n}" in comparisons and comparisons[f"in_order_{n}"].notna().any() for n in names)
    rows, records = [], []
    for name in names:
        part = comparisons.dropna(subset=[f"agreed_{name}"])
        # picks of each acquisition: the growth of the training set since the previous AL step
        n_selected = comparisons.sort_values("al_iter").groupby(RUN_KEYS)["n_train"].diff().loc[part.index]
        differing = part[part[f"agreed_{name}"] < n_selected]
        per_dataset = ", ".join(f"{d} {int((differing['dataset'] == d).sum())}/{int((part['dataset'] == d).sum())}"
                                for d in datasets)
        rows.append([name, len(part), f"{len(differing)} ({len(differing) / max(len(part), 1):.0%})",
                     f"{differing[f'agreed_{name}'].median():.0f}" if len(differing) else "-",
                     f"{part[f'overlap_{name}'].mean():.4f}", f"{part[f'seconds_{name}'].mean():.3f}", per_dataset])
        in_order = part[f"in_order_{name}"] if f"in_order_{name}" in part else pd.Series(dtype=float)
        order_differing = int((in_order < n_selected).sum()) if in_order.notna().all() and len(in_order) else None
        if has_order:
            rows[-1].append("-" if order_differing is None else
                            f"{order_differing} ({order_differing / max(len(part), 1):.0%})")
        records.append(dict(reference=name, acquisitions=len(part), differing=len(differing),
                            order_differing=order_differing,
                            median_agreed_picks=float(differing[f"agreed_{name}"].median()) if len(differing)
                            else float("nan"), mean_overlap=float(part[f"overlap_{name}"].mean()),
                            mean_seconds=float(part[f"seconds_{name}"].mean())))
    header = [f"method_precision vs {reference}'s picks", "acquisitions", "picks differ", "picks agreed before "
              "the first differing round (median)", "overlap", "seconds per selection", "differ per dataset"]
    if has_order:
        header.append("pick order differs anywhere")
    scalars = run_scalars(table)
    rmse_rows, rmse_records = [], []
    for sampler in [s for s in dict.fromkeys(table["sampler"]) if s != reference]:
        difference = paired(scalars, None, sampler, reference, "final_rmse")
        identical = int((np.abs(difference) == 0).sum())
        wins, ties, losses = wins_ties_losses(difference)
        rmse_rows.append([sampler, len(difference), identical,
                          with_interval(*interval(difference), digits=2, percent=True),
                          f"{np.abs(difference).max():.2%}" if len(difference) else "n/a", f"{wins}/{ties}/{losses}"])
        rmse_records.append(dict(sampler=sampler, runs=len(difference), identical_final_rmse=identical,
                                 mean_relative_difference=interval(difference)[0],
                                 max_abs_relative_difference=float(np.abs(difference).max()) if len(difference)
                                 else float("nan")))
    rmse_header = ["run", "paired runs", "identical final RMSE", f"final RMSE vs {reference}",
                   "largest absolute difference", "W/T/L"]
    divergence, effect = pd.DataFrame(records), pd.DataFrame(rmse_records)

    def describe(name: str) -> str:
        row = divergence[divergence["reference"] == name]
        if row.empty:
            return f"{name} was not compared"
        row = row.iloc[0]
        where = "" if row.differing == 0 else f" (median {row.median_agreed_picks:.0f} picks agreed first)"
        return f"{name} picked differently in {row.differing} of {row.acquisitions} acquisitions{where}"

    summary = "; ".join(describe(n) for n in names)
    largest = effect["max_abs_relative_difference"].max() if len(effect) else float("nan")
    identical = ", ".join(f"{r.sampler} {r.identical_final_rmse}/{r.runs}" for r in effect.itertuples())
    distinguishable = [r.sampler for r in effect.itertuples()
                       if verdict(paired(scalars, None, r.sampler, reference, "final_rmse")) != "unclear"]
    curves = table.pivot_table(index=["dataset", "seed", "al_iter"], columns="sampler", values="test_rmse")
    departed = {s: int((curves[s] != curves[reference]).groupby(level=["dataset", "seed"]).any().sum())
                for s in effect["sampler"]}
    runs_per_variant = int(curves.groupby(level=["dataset", "seed"]).ngroups)
    order_summary = ", ".join(f"{r.reference} {int(r.order_differing)} of {r.acquisitions}"
                              for r in divergence.itertuples()
                              if not pd.isna(r.order_differing))  # None (not recorded) is NA too
    answer = (
        f"On identical function samples (the {reference} run's own draw at every acquisition), compared with "
        f"batch GPA in float64: {summary}. Run to the end on their own picks, the variants' final test RMSEs "
        f"differ from {reference}'s by at most {largest:.2%}; identical final RMSE in {identical} paired runs; "
        + ("the 95% interval of the mean difference includes zero for every variant."
           if not distinguishable else
           f"the 95% interval of the mean difference excludes zero for {listing(distinguishable)}.")
        + (" Counting the order of the picks too (points join the training set in pick order, which changes "
           "the minibatches), the acquisitions that differ are: " + order_summary + "."
           if order_summary else
           " A round counts as differing only when its set of points differs; the same points in another order "
           "are not counted, yet points join the training set in pick order, which changes the minibatches, so a "
           "run's learning curve can depart without a counted difference.")
        + f" Curves that depart anywhere from {reference}'s: "
        + ", ".join(f"{s} {n}/{runs_per_variant}" for s, n in departed.items()) + ".")
    def differing(name: str) -> str:
        row = divergence[divergence["reference"] == name]
        return "not compared" if row.empty else f"{row.differing.iloc[0]} of {row.acquisitions.iloc[0]}"

    fast_order = divergence[divergence["reference"] == "fast_float64"]["order_differing"]
    same_order = (" (not even in the order of the picks)" if len(fast_order) and not pd.isna(fast_order.iloc[0])
                  and fast_order.iloc[0] == 0 else "")
    headline = (f"On identical samples fast and batch GPA in float64 picked differently in "
                f"{differing('fast_float64')} acquisitions{same_order}; in float32 fast GPA did in "
                f"{differing('fast_float32')} "
                f"and batch GPA in {differing('batch_float32')}; run on their own picks, the variants' final RMSE "
                f"differs from batch float64's by at most {largest:.2%}"
                + (", and no mean difference is distinguishable from zero." if not distinguishable else "."))
    section = Section("q4", "Fast vs batch GPA, float64 vs float32, on identical samples", answer, headline)
    section.facts = {f"{name}_differing": differing(name) for name in names}
    largest_pool = comparisons.loc[comparisons["pool_size"].idxmax(), "dataset"]
    section.facts["largest_dataset"] = largest_pool
    section.facts["seconds_on_largest"] = {
        name: float(comparisons[comparisons["dataset"] == largest_pool][f"seconds_{name}"].mean()) for name in names}
    section.markdown = [
        f"**Divergence on identical samples**: at every acquisition, {reference} also ran each method and "
        "precision below on its own function samples; a round differs when its set of points differs:\n\n"
        + markdown_table(header, rows),
        f"**Effect on accuracy**: each variant run on its own picks, paired with {reference} (same seeds):\n\n"
        + markdown_table(rmse_header, rmse_rows)]
    section.tables = {"q4_divergence": divergence, "q4_rmse_effect": effect}
    return section


# -- question 5: cost per AL step --------------------------------------------------------------------

def question_cost(timing: pd.DataFrame, scaling: pd.DataFrame, labels: dict[str, str]) -> Section:
    """timing: tidy rows of the samplers to cost (labels maps sampler -> name shown); scaling:
    rows (method, n_pool, n_train, num_samples, n_select, seconds) of the synthetic selections."""
    from al_bnn_lab.plotting import plt

    steps = timing[timing["al_iter"] > 0]
    datasets = list(dict.fromkeys(steps.sort_values("pool_size", kind="stable")["dataset"]))
    samplers = [s for s in labels if s in set(steps["sampler"])]
    rows = []
    for dataset in datasets:
        part = steps[steps["dataset"] == dataset]
        row = [dataset, int(part["pool_size"].iloc[0])]
        for sampler in samplers:
            row.append(f"{part[part['sampler'] == sampler]['selection_seconds'].mean():.3f}")
        training = part.drop_duplicates(["sampler", "seed", "al_iter", "runs_in_stack", "training_seconds"])
        per_stack = training.groupby("runs_in_stack")["training_seconds"].mean()
        row += [" / ".join(f"{seconds:.1f} ({size} runs)" for size, seconds in per_stack.items()),
                f"{(training['training_seconds'] / training['runs_in_stack']).mean():.2f}"]
        rows.append(row)
    header = ["dataset", "pool", *[f"{labels[s]}: selection s/step" for s in samplers],
              "training s/step (stack)", "training s/step per run"]
    scaling_rows = []
    methods = list(dict.fromkeys(scaling["method"])) if len(scaling) else []
    for n_pool in sorted(set(scaling["n_pool"])) if len(scaling) else []:
        row = [f"{n_pool:,}"]
        for method in methods:
            value = scaling[(scaling["n_pool"] == n_pool) & (scaling["method"] == method)]["seconds"]
            row.append(f"{value.iloc[0]:.3f}" if len(value) else "not run")
        scaling_rows.append(row)
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for index, sampler in enumerate(samplers):
        means = steps[steps["sampler"] == sampler].groupby("pool_size")["selection_seconds"].mean()
        axis.plot(means.index, means.to_numpy(), marker="o", linestyle="none", color=f"C{index}",
                  label=f"{labels[sampler]} (study runs)")
    marker_colours = {"lowrank": "C2", "fast": "C3", "batch": "C4"}
    for method in methods:
        part = scaling[scaling["method"] == method].sort_values("n_pool")
        axis.plot(part["n_pool"], part["seconds"], linestyle="--", marker="x",
                  color=marker_colours.get(method, "black"), label=f"{method} GPA (synthetic)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("pool size")
    axis.set_ylabel("selection seconds per AL step")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)
    figure.tight_layout()
    largest_dataset = datasets[-1]  # datasets are ordered by pool size
    at_largest = steps[steps["dataset"] == largest_dataset]
    selection = at_largest.groupby("sampler")["selection_seconds"].mean()
    training_per_run = float((at_largest["training_seconds"] / at_largest["runs_in_stack"]).mean())
    pool = int(at_largest["pool_size"].iloc[0])
    lowrank = scaling[scaling["method"] == "lowrank"].sort_values("n_pool") if len(scaling) else scaling
    largest = lowrank.iloc[-1] if len(lowrank) else None
    costs = ", ".join(f"{labels[s]} {selection[s]:.2f} s" for s in samplers)
    answer = (
        f"On {largest_dataset}, the study's largest pool ({pool:,} points), one AL step's selection takes {costs}, "
        f"against {training_per_run:.2f} s of training per run (each stack's training time divided by its runs; a "
        "run alone would take longer, see the trainer benchmark). The table shows how this changes with the pool: "
        "the dense fast GPA forms the pool's n x n posterior covariance and batch GPA solves against the "
        "conditioning set for every pool point each round, while low-rank GPA works in the T-dimensional feature "
        "space"
        + (f": it selects {int(largest.n_select)} points from a pool of {int(largest.n_pool):,} in "
           f"{largest.seconds:.1f} s." if largest is not None else ".")
        + (f" On {largest_dataset} training per run costs more than the slowest selection." if
           training_per_run > selection.max() else
           f" On {largest_dataset} the dense methods' selection costs more than training a run; low-rank GPA's "
           + ("does not." if selection.get("lrgpa", float("inf")) < training_per_run else "does too.")))
    headline = (f"On the largest pool ({largest_dataset}, {pool:,} points) an AL step's selection takes {costs}, "
                f"against {training_per_run:.2f} s of training per run"
                + (f"; low-rank GPA selects from a pool of {int(largest.n_pool):,} in {largest.seconds:.1f} s."
                   if largest is not None else "."))
    section = Section("q5", "Cost per AL step", answer, headline)
    section.facts = dict(dataset=largest_dataset, pool=pool, seconds={s: float(selection[s]) for s in samplers})
    section.markdown = [
        "**Seconds per AL step** on the study's runs (mean over acquisitions and seeds; selection includes "
        "drawing the function samples; training is one training phase of the whole stack, which trains all of "
        "a dataset's runs of one question together; measured inside the sweeps, whose worker processes share "
        "the machine, see their wall-time lines):\n\n" + markdown_table(header, rows)]
    if scaling_rows:
        first = scaling.iloc[0]
        section.markdown.append(
            f"**Selection time against pool size** (synthetic correlated samples, {int(first.n_train)} labelled "
            f"points, T = {int(first.num_samples)}, {int(first.n_select)} picks in rounds of "
            f"{int(first.batch_size)}, float64; one selection each):\n\n"
            + markdown_table(["pool", *[f"{m} GPA s" for m in methods]], scaling_rows))
    section.tables = {"q5_pool_scaling": scaling}
    section.figures = {"q5_selection_cost.png": figure}
    return section


def summary_sentences(sections: dict[str, Section | None], first: str = "") -> str:
    """The study in a few sentences (the README quotes them), from the sections' key numbers,
    each scoped to the datasets it was measured on; `first` (the recommendation) leads; a
    sentence whose questions have not run yet is left out."""
    sentences = [first] if first else []
    q1, q2, q3, q4, q5 = (sections.get(key) for key in ("q1", "q2", "q3", "q4", "q5"))
    if q1 is not None:
        f = q1.facts
        worse = f"is clearly worse on {listing(f['hurts'])}" if f["hurts"] else "is never clearly worse"
        sentences.append(f"With the first edition's network, on the {f['datasets']} datasets of Q1 "
                         f"({listing(f['names'])}), in test RMSE GPA beats "
                         f"random selection clearly on {len(f['helps'])} and {worse} ({f['seeds']} paired seeds, "
                         "95% intervals).")
    if q2 is not None:
        f = q2.facts
        more = (f" ({q3.facts['overlap_at_largest_T']:.0%} with T = {q3.facts['largest_T']} samples)"
                if q3 is not None else "")
        sentences.append(f"Its picks overlap those of the exact last-layer kernel by {f['joint']:.0%} with joint "
                         f"function samples{more} but by {f['marginal']:.0%} with the thesis's marginal samples "
                         f"(chance: {f['chance']:.0%}).")
    if q4 is not None and {"fast_float64", "lowrank_float64"} <= set(q4.facts.get("seconds_on_largest", {})):
        f = q4.facts
        seconds = f["seconds_on_largest"]
        lowrank = f["lowrank_float64_differing"]
        same = "the same picks" if lowrank.startswith("0 of") else f"picks differing in {lowrank} acquisitions"
        sentences.append(
            f"On identical samples fast and batch GPA in float64 picked differently in {f['fast_float64_differing']} "
            f"acquisitions, and low-rank GPA makes {same} in {seconds['lowrank_float64']:.2f} s instead of fast "
            f"GPA's {seconds['fast_float64']:.1f} s per selection on {f['largest_dataset']}.")
    q9 = sections.get("q9")
    if q9 is not None and q9.facts.get("runs"):
        sentences.append(calibration_summary(q9.facts))
    return " ".join(sentences)


# -- Q6 under scrutiny: corrected verdicts, the recommendation as a set, three statistics ------------
# Numbers are computed by method_statistics (one place) and rendered by the functions after it.

STATISTICS = {  # run_scalars column -> how the report names it; the first is the study's aggregate
    "mean_log_rmse": "mean log RMSE over all AL steps",
    "mean_log_rmse_after_initial": "mean log RMSE after the initial step",
    "final_log_rmse": "final-step log RMSE",
    "log_rmse_auc": "area under the log-RMSE curve",
}
SIDE_BY_SIDE = ("mean_log_rmse_after_initial", "final_log_rmse", "log_rmse_auc")


@dataclass
class MethodStatistics:
    """The numbers behind the recommendation set, the corrected verdicts and the ranking by
    several statistics (Q6), computed from the tidy table alone."""

    baseline: str
    primary: str                                  # the statistic of the aggregate, the set and the rule
    datasets: list[str]
    tests: dict[str, pd.DataFrame]                # statistic -> stats.paired_tests against the baseline
    means: dict[str, pd.DataFrame]                # statistic -> datasets x methods (mean over seeds)
    ranks: pd.DataFrame                           # methods (baseline included) x statistics
    sets: dict[str, stats.RecommendationSet]      # statistic -> the set under it
    rule_pick: str | None                         # the second edition's rule on the primary statistic
    rule_pick_stability: dict[str, list[str]]     # leave one dataset out: pick -> left-out datasets
    default_stability: dict[str, list[str]]       # the same for the set's default
    uncorrected: stats.RecommendationSet | None = None  # the set on the primary statistic without Holm
    cost: dict[str, float] = field(default_factory=dict)
    cost_source: str = ""


def per_dataset_means(scalars: pd.DataFrame, column: str, datasets: Sequence[str]) -> pd.DataFrame:
    """datasets x samplers: the mean of `column` over seeds, in the order of `datasets`."""
    means = scalars.groupby(["dataset", "sampler"], sort=False)[column].mean().unstack("sampler")
    return means.loc[list(datasets)]


def baseline_tests(scalars: pd.DataFrame, column: str, baseline: str, methods: Sequence[str],
                   datasets: Sequence[str]) -> pd.DataFrame:
    """Every (method, dataset) paired with the baseline over seeds on `column`, with Holm's
    correction over all tests and within each method (stats.paired_tests)."""
    values = scalars.pivot_table(index=["dataset", "seed"], columns="sampler", values=column)
    columns = list(values.columns)
    differences = {}
    for dataset in datasets:
        block = values.loc[dataset].to_numpy(dtype=float)  # seeds x samplers
        reference = block[:, columns.index(baseline)]
        for method in [m for m in methods if m != baseline and m in columns]:
            own = block[:, columns.index(method)]
            both = np.isfinite(own) & np.isfinite(reference)  # the seeds both have: paired
            differences[(method, dataset)] = (own - reference)[both]
    return stats.paired_tests({key: value for key, value in differences.items() if len(value)})


def rule_pick(means: pd.DataFrame, tests: pd.DataFrame, datasets: Sequence[str], baseline: str) -> str | None:
    """The second edition's rule on these datasets: among the methods other than the baseline, those
    clearly worse than it (uncorrected) on the fewest datasets; of these the lowest mean."""
    part = tests[tests["dataset"].isin(datasets)]
    worse = part.assign(worse=part["verdict"] == "higher").groupby("method", sort=False)["worse"].sum()
    average = means.loc[list(datasets)].mean()
    candidates = [m for m in worse.index if m != baseline]
    if not candidates:
        return None
    fewest = min(worse[m] for m in candidates)
    return min((m for m in candidates if worse[m] == fewest), key=lambda m: average[m])


def method_statistics(table: pd.DataFrame, baseline: str = "random", primary: str = "mean_log_rmse",
                      every_model: Callable[[str], bool] | None = None,
                      cost: dict[str, float] | None = None, cost_source: str = "") -> MethodStatistics:
    """Everything the scrutiny paragraphs state, on the datasets where every sampler has runs.
    every_model(method): whether the method runs on every model (default: any method not on the
    bnn's exact kernel, read from the label); cost: selection seconds per method (Q8)."""
    every_model = every_model or (lambda method: not method.endswith("_exact"))
    scalars = run_scalars(table)
    complete = scalars.groupby("dataset")["sampler"].nunique()
    datasets = [d for d in _dataset_order(table) if complete[d] == scalars["sampler"].nunique()]
    scalars = scalars[scalars["dataset"].isin(datasets)]
    columns = [primary, *[c for c in SIDE_BY_SIDE if c != primary]]
    means = {c: per_dataset_means(scalars, c, datasets) for c in columns}
    ranks = stats.rankings({c: means[c].mean() for c in columns})
    tests = {c: baseline_tests(scalars, c, baseline, list(ranks.index), datasets) for c in columns}
    sets = {c: stats.recommendation_set(means[c]) for c in columns}
    for recommendation in sets.values():
        # accuracy, not cost, breaks the tie inside the set: the cheapest member is often a marginal one
        # (on the second edition's Q6 maxdet, Holm p 0.051, whose pick moved to gpa or maxdist 13 times of 15
        # leaving one dataset out); the selection cost is shown beside each member
        recommendation.default, recommendation.reason = stats.choose_default(recommendation.members, every_model)

    def default_without(subset: list[str]) -> str:
        members = stats.recommendation_set(means[primary].loc[subset]).members
        return stats.choose_default(members, every_model)[0]

    return MethodStatistics(
        baseline, primary, datasets, tests, means, ranks, sets,
        rule_pick(means[primary], tests[primary], datasets, baseline),
        stats.leave_one_out(datasets, lambda subset: rule_pick(means[primary], tests[primary], subset, baseline)),
        stats.leave_one_out(datasets, default_without), stats.recommendation_set(means[primary], correction="none"),
        dict(cost or {}), cost_source)


def _times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


def stability_text(outcomes: dict[str, list[str]], total: int) -> str:
    """'lcmd_exact 9 times, maxdist_exact 5 times (airfoil, ... left out) and bait once (energy)':
    the most frequent outcome without its datasets, the others with them."""
    if len(outcomes) == 1:
        return f"{next(iter(outcomes))} every one of the {total} times"
    parts = [f"{name} {_times(len(left))}" + ("" if index == 0 else f" ({listing(left)} left out)")
             for index, (name, left) in enumerate(outcomes.items())]
    return listing(parts)


def _holm_counts(result: MethodStatistics, column: str) -> dict[str, pd.DataFrame]:
    tests = result.tests[column]
    return {key: stats.verdict_counts(tests, key).set_index("method")
            for key in ("verdict", "verdict_holm_method", "verdict_holm_all")}


def corrected_verdicts_markdown(result: MethodStatistics) -> str:
    """Per method: clearly better / within noise / clearly worse than the baseline per dataset,
    uncorrected beside Holm within the method and Holm over all tests, on the primary statistic."""
    tests = result.tests[result.primary]
    counts = _holm_counts(result, result.primary)
    rows = []
    for method in counts["verdict"].index:
        cells = [method]
        for key in ("verdict", "verdict_holm_method", "verdict_holm_all"):
            row = counts[key].loc[method]
            cells.append(f"{row['lower']} / {row['unclear']} / {row['higher']}")
        cells.append(listing(counts["verdict_holm_all"].loc[method, "higher_datasets"]))
        rows.append(cells)
    per_method = int(tests.groupby("method").size().max())
    return (f"**Per-dataset verdicts corrected for multiple comparisons** ({STATISTICS[result.primary]}, paired "
            f"with {result.baseline} over seeds; datasets clearly better / within noise / clearly worse; Holm's "
            f"step-down correction at family-wise 5%, within each method's {per_method} tests and over all "
            f"{len(tests)} tests):\n\n"
            + markdown_table(["method", "uncorrected", f"Holm within the method ({per_method} tests)",
                              f"Holm over all {len(tests)} tests", "still clearly worse after Holm over all"], rows))


def corrected_verdicts_sentence(result: MethodStatistics, method: str) -> str:
    """How many uncorrected 'clearly worse' verdicts survive Holm, and `method`'s clearly-better count."""
    tests = result.tests[result.primary]
    worse = tests[tests["verdict"] == "higher"]
    surviving = worse[worse["verdict_holm_all"] == "higher"]
    own = tests[tests["method"] == method]
    better = {key: int((own[key] == "lower").sum()) for key in ("verdict", "verdict_holm_method", "verdict_holm_all")}
    return (f"Of the {len(worse)} uncorrected \"clearly worse than {result.baseline}\" verdicts, "
            f"{len(surviving)} survive Holm's correction over all {len(tests)} tests ("
            + listing([f"{r.method} on {r.dataset}" for r in surviving.itertuples()]) + f"); {method} is clearly "
            f"better than {result.baseline} on {better['verdict_holm_all']} of {len(own)} datasets after it "
            f"({better['verdict_holm_method']} if corrected within the method only, {better['verdict']} uncorrected).")


def recommendation_set_markdown(result: MethodStatistics) -> list[str]:
    """The set on the primary statistic: the paired comparisons with the best, the default inside
    the set and why, and the leave-one-dataset-out stability of the rule's pick and of the default."""
    chosen = result.sets[result.primary]
    n = len(result.datasets)
    rows = [[chosen.best, "(the best)", "", "", "yes", _cost_cell(result, chosen.best)]]
    for row in chosen.comparisons.itertuples():
        rows.append([row.method, f"{row.difference:+.4f} ± {row.half_width:.4f}", f"{row.p_value:.3f}",
                     f"{row.p_holm:.3f}", "no" if row.distinguishable else "yes", _cost_cell(result, row.method)])
    excluded = chosen.excluded
    uncorrected = result.uncorrected.members if result.uncorrected is not None else chosen.members
    text = (f"**The recommendation is a set.** Paired over the {n} datasets with the method of the lowest "
            f"{STATISTICS[result.primary]} ({chosen.best}), with Holm's correction over these "
            f"{len(chosen.comparisons)} comparisons, {plural_count(len(chosen.members), 'method')} cannot be told "
            f"apart from it: {listing(chosen.members)}; clearly worse than it: {listing(excluded)}"
            + ("" if uncorrected == chosen.members else
               f" (without the correction the set would be {listing(uncorrected)})")
            + f". **Default inside the set: {chosen.default}** (stated criterion: first the members that run on "
            "every model, i.e. not on the bnn's closed-form exact kernel, then the lowest mean; the selection seconds "
            f"per AL step{' (' + result.cost_source + ')' if result.cost_source else ''} are in the table; decided "
            f"here by: {chosen.reason}).")
    stability = (f"**Stability.** Leaving each of the {n} datasets out in turn, the second edition's rule (fewest "
                 f"datasets clearly worse than {result.baseline}, then the lowest mean) picks "
                 f"{stability_text(result.rule_pick_stability, n)}; the set's default is "
                 f"{stability_text(result.default_stability, n)}.")
    header = ["method", f"difference to {chosen.best} (95% interval over datasets)", "p", "Holm p", "in the set",
              "selection s/step" + (f" ({result.cost_source})" if result.cost_source else "")]
    return [text + " " + stability, markdown_table(header, rows)]


def _cost_cell(result: MethodStatistics, method: str) -> str:
    return f"{result.cost[method]:.2f}" if method in result.cost else "n/a"


def plural_count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def statistics_markdown(result: MethodStatistics) -> str:
    """Methods x statistics: rank, mean difference to the baseline over datasets, and datasets
    clearly better / clearly worse (uncorrected; after Holm over all tests)."""
    columns = list(result.ranks.columns)
    rows = []
    for method in result.ranks.index:
        cells = [method]
        for column in columns:
            means = result.means[column]
            difference = (means[method] - means[result.baseline]).to_numpy()
            tests = result.tests[column]
            own = tests[tests["method"] == method]
            counts = ("" if method == result.baseline else
                      f"; {int((own['verdict'] == 'lower').sum())}/{int((own['verdict'] == 'higher').sum())}"
                      f" ({int((own['verdict_holm_all'] == 'lower').sum())}/"
                      f"{int((own['verdict_holm_all'] == 'higher').sum())})")
            mean, half = stats.mean_interval(difference)
            cells.append(f"{int(result.ranks.loc[method, column])}: " +
                         ("reference" if method == result.baseline else f"{mean:+.3f} ± {half:.3f}") + counts)
        rows.append(cells)
    return ("**Three statistics side by side** (per run; per dataset the mean over seeds; each cell: rank by the "
            f"mean over the {len(result.datasets)} datasets, 1 = best: the mean difference to {result.baseline} "
            f"with its 95% interval over datasets; datasets clearly better/clearly worse than {result.baseline}, "
            "uncorrected and, in brackets, after Holm over all tests):\n\n"
            + markdown_table(["method", *[STATISTICS[c] for c in columns]], rows))


def statistics_sentence(result: MethodStatistics) -> str:
    """Whether the rankings agree, who moves, and whether the set stays the same under each."""
    moves = stats.rank_moves(result.ranks, result.primary)
    primary = STATISTICS[result.primary]
    parts = []
    for column, moved in moves.items():
        if not moved:
            parts.append(f"by the {STATISTICS[column]} the ranking is the same as by the {primary}")
            continue
        parts.append(f"by the {STATISTICS[column]} " + listing([f"{m} moves from {a} to {b}" for m, a, b in moved]))
    reference = result.sets[result.primary].members
    same_sets = [f"by the {STATISTICS[c]}" for c, s in result.sets.items()
                 if c != result.primary and s.members == reference]
    other_sets = [f"by the {STATISTICS[c]} it is {listing(s.members)} (default {s.default})"
                  for c, s in result.sets.items() if c != result.primary and s.members != reference]
    agree = stats.rankings_agree(result.ranks)
    scale = _dilution(result)
    return ("The rankings " + ("agree" if agree else "do not agree") + ": " + "; ".join(parts) + ". "
            + (f"The recommendation set is the same {listing(same_sets)}" if same_sets else
               "The recommendation set differs under every other statistic")
            + ("; " + "; ".join(other_sets) if other_sets else "") + "."
            + scale)


def _dilution(result: MethodStatistics) -> str:
    """The initial step is shared by every sampler of a seed, so leaving it out scales every paired
    difference; the factor, measured on the differences to the baseline."""
    after = "mean_log_rmse_after_initial"
    if result.primary != "mean_log_rmse" or after not in result.means:
        return ""
    base, late = result.means["mean_log_rmse"], result.means[after]
    methods = [m for m in base.columns if m != result.baseline]
    ratio = ((late[methods].sub(late[result.baseline], axis=0)).to_numpy()
             / (base[methods].sub(base[result.baseline], axis=0)).to_numpy())
    ratio = ratio[np.isfinite(ratio)]
    if not len(ratio):
        return ""
    keys = ["method", "dataset", "verdict", "verdict_holm_all"]
    same = result.tests["mean_log_rmse"][keys].equals(result.tests[after][keys])
    return (f" Leaving out the initial step (the same for every sampler of a seed) multiplies the mean "
            f"differences per dataset by {np.median(ratio):.3f} (median over methods and datasets; range "
            f"{ratio.min():.3f}-{ratio.max():.3f})"
            + (f" and leaves every verdict as it is: the {STATISTICS['mean_log_rmse']} dilutes the effects." if same
               else f"; some verdicts change, and the {STATISTICS['mean_log_rmse']} dilutes the effects."))


def scrutiny_sentence(result: MethodStatistics) -> str:
    """One sentence for the summary (the README quotes it): the set, its default, the stability."""
    chosen = result.sets[result.primary]
    top = next(iter(result.rule_pick_stability.items()))
    return (f"Over the {len(result.datasets)} datasets of Q6 no single method is shown best: {chosen.best} has the "
            f"lowest {STATISTICS[result.primary]}, and {listing([m for m in chosen.members if m != chosen.best])} "
            f"cannot be told apart from it (paired over datasets, Holm-corrected); inside this set the default that "
            f"runs on every model with the lowest mean is {chosen.default}; leaving one dataset out, the "
            f"second edition's rule picks {top[0]} {len(top[1])} times of {len(result.datasets)}.")


# -- ready for Q9 (does calibration change which method wins?): one ranking per model variant ---------

def variant_rankings(tables: dict[str, pd.DataFrame], baseline: str = "random", column: str = "mean_log_rmse"
                     ) -> tuple[pd.DataFrame, dict[str, stats.RecommendationSet]]:
    """variant label -> tidy table of the same samplers, datasets and seeds (e.g. the calibrated and
    the uncalibrated model): the methods' ranks by `column` under each variant (on the datasets
    every variant has) and each variant's recommendation set."""
    means = {label: per_dataset_means(run_scalars(table), column, _dataset_order(table))
             for label, table in tables.items()}
    shared = [d for d in next(iter(means.values())).index if all(d in m.index for m in means.values())]
    methods = sorted(set.intersection(*[set(m.columns) for m in means.values()]))
    ranks = stats.rankings({label: m.loc[shared, methods].mean() for label, m in means.items()})
    sets = {label: stats.recommendation_set(m.loc[shared, methods]) for label, m in means.items()}
    return ranks, sets


def variant_rankings_markdown(ranks: pd.DataFrame, sets: dict[str, stats.RecommendationSet]) -> str:
    """The ranks side by side, each variant's set, and whether the variants agree."""
    rows = [[method, *[int(ranks.loc[method, label]) for label in ranks.columns]] for method in ranks.index]
    agree = stats.rankings_agree(ranks)
    same_best = len({s.best for s in sets.values()}) == 1
    return (markdown_table(["method", *[f"rank: {label}" for label in ranks.columns]], rows) + "\n\n"
            + f"The rankings {'agree' if agree else 'do not agree'}; the best is "
            + ("the same" if same_best else "not the same") + " ("
            + "; ".join(f"{label}: {s.best}, set {listing(s.members)}" for label, s in sets.items()) + ").")


# -- question 9: does calibration change which method wins? -------------------------------------------

RMSE_NOISE = 1e-5  # relative test-RMSE difference up to which two paired runs count as the same model
PAIR_KEYS = [*RUN_KEYS, "al_iter"]
SIDES = ("uncalibrated", "calibrated")


def bnn_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The bnn model's rows of a run table (all of them when it has no model column)."""
    return table[table["model"] == "bnn"] if "model" in table else table


def calibration_pairs(uncalibrated: pd.DataFrame, calibrated: pd.DataFrame) -> pd.DataFrame:
    """One row per AL step of the runs both tables hold (same dataset, sampler, seed and step):
    test RMSE, LL, 90% coverage and stack size of each side (suffixes _uncalibrated, _calibrated)."""
    columns = ["test_rmse", "test_log_likelihood", "test_coverage_90", "runs_in_stack"]

    def side(table: pd.DataFrame) -> pd.DataFrame:
        part = bnn_rows(table)
        return part[PAIR_KEYS + [c for c in columns if c in part]]

    # in the calibrated table's order (Q9's), whatever the order of the other
    return side(calibrated).merge(side(uncalibrated), on=PAIR_KEYS, suffixes=("_calibrated", "_uncalibrated"),
                                  validate="one_to_one")


def own_pairs(calibrated: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Each calibrated run paired with itself before calibration: the loop keeps the trained
    model's test LL and 90% coverage beside the calibrated ones (RAW_COLUMNS), and these are what
    the same settings record with `calibration: none`, whose picks and test RMSE are the calibrated
    run's bit for bit (tests/test_loop_calibration.py). Rows as calibration_pairs'; the second value
    counts the runs left out because they kept no raw columns (e.g. runs taken from a table that
    dropped them)."""
    part = bnn_rows(calibrated)
    runs = len(part[RUN_KEYS].drop_duplicates())
    if not set(RAW_COLUMNS.values()) <= set(part.columns):
        return pd.DataFrame(), runs
    complete = part[list(RAW_COLUMNS.values())].notna().all(axis=1)
    part = part[complete.groupby([part[k] for k in RUN_KEYS]).transform("all").to_numpy()]
    pairs = part[PAIR_KEYS].reset_index(drop=True)
    for column in ("test_rmse", "test_log_likelihood", "test_coverage_90", "runs_in_stack"):
        if column in part:
            pairs[f"{column}_calibrated"] = part[column].to_numpy()
            pairs[f"{column}_uncalibrated"] = part[RAW_COLUMNS.get(column, column)].to_numpy()
    return pairs, runs - len(pairs[RUN_KEYS].drop_duplicates())


def rmse_agreement(pairs: pd.DataFrame) -> dict:
    """How far the paired runs' test RMSE moved apart, over all their steps (calibration changes no
    pick, so it should not move at all): max absolute and relative difference, the run and step of
    the largest, how many runs agree everywhere (exactly, and up to RMSE_NOISE relative), and how
    many of the others were trained in a stack of another size than their pair."""
    difference = (pairs["test_rmse_calibrated"] - pairs["test_rmse_uncalibrated"]).abs()
    relative = difference / pairs["test_rmse_uncalibrated"].abs()
    per_run = relative.groupby([pairs[k] for k in RUN_KEYS]).max()
    worst = pairs.loc[relative.idxmax()]
    differing = per_run[per_run > RMSE_NOISE].index
    other_stack = None  # runs trained in a stack of another size than their pair, of all and of the differing
    if "runs_in_stack_calibrated" in pairs and "runs_in_stack_uncalibrated" in pairs:
        per_run_stack = (pairs["runs_in_stack_calibrated"] != pairs["runs_in_stack_uncalibrated"]).groupby(
            [pairs[k] for k in RUN_KEYS]).any()
        other_stack = (int(per_run_stack.sum()), int(per_run_stack.loc[differing].sum()))
    initial = relative[pairs["al_iter"] == pairs.groupby(RUN_KEYS)["al_iter"].transform("min")]
    moved = (per_run > RMSE_NOISE).groupby(level="dataset", sort=False)
    by_dataset = {str(d): (int(flags.sum()), len(flags)) for d, flags in moved if flags.any()}
    by_sampler = (per_run > RMSE_NOISE).groupby(level="sampler", sort=False).any()
    return dict(steps=len(pairs), runs=len(per_run), max_abs=float(difference.max()), max_rel=float(relative.max()),
                datasets_differing=by_dataset, samplers_agreeing=[str(m) for m in by_sampler.index[~by_sampler]],
                identical=int((per_run == 0).sum()), same=int((per_run <= RMSE_NOISE).sum()),
                differing=len(differing), other_stack=other_stack, differ_initially=int((initial > RMSE_NOISE).sum()),
                initial_max_rel=float(initial.max()),
                worst=(str(worst["dataset"]), str(worst["sampler"]), int(worst["seed"]), int(worst["al_iter"])))


def rmse_agreement_sentence(agreement: dict, machines: tuple[list[str], list[str]] | None = None,
                            source: str = "Q6") -> str:
    """The RMSE check in words, as strong as its numbers allow; the cause of a difference only as far
    as it is known: calibration is not it (on one machine a calibrated run's RMSE and picks are bitwise
    the uncalibrated run's, tests/test_loop_calibration.py), and where the two sides were trained on
    different machines (`machines`: uncalibrated, calibrated) that is said."""
    a = agreement
    steps = f"{a['steps']} paired AL steps of {a['runs']} runs"
    if a["max_abs"] == 0:
        return f"They do: the largest |test RMSE difference| over all {steps} is 0."
    if a["differing"] == 0:
        return (f"They do, up to float noise: the largest |test RMSE difference| over all {steps} is "
                f"{a['max_abs']:.2g} ({a['max_rel']:.1e} relative; {a['identical']} runs are equal at every step).")
    dataset, sampler, seed, step = a["worst"]
    stacks = ""
    if a["other_stack"] is not None:
        other, other_differing = a["other_stack"]
        stacks = (f" {other} of the {a['runs']} runs were trained in a stack of another size than their pair "
                  f"(runs_in_stack): {other_differing} of the {a['differing']} that differ and "
                  f"{other - other_differing} of the {a['same']} that agree.")
    if machines is not None and set(machines[1]) - set(machines[0]):
        cause = (f"the wall-time record names {' and '.join(machines[0])} for the runs {source} trained and "
                 f"{' and '.join(machines[1])} for Q9's (runs taken with --reuse are not in it), and float32 training "
                 "on CPU need not round the same on another processor and software build; "
                 "calibration is not the cause: on one machine a calibrated run's RMSE and picks are bitwise the "
                 "uncalibrated run's")
    else:
        cause = ("cause not established; calibration is not it: on one machine a calibrated run's RMSE and picks "
                 "are bitwise the uncalibrated run's")
    return (f"They do not all: {a['same']} of {a['runs']} paired runs agree at every step (relative difference at "
            f"most {RMSE_NOISE:.0e}; {a['identical']} exactly), the other {a['differing']} differ, by up to "
            f"{a['max_abs']:.3g} in test RMSE ({a['max_rel']:.1%} relative; {dataset}, {sampler}, seed {seed}, step "
            f"{step}); {a['differ_initially']} of them already at the initial step, before any pick, there by at most "
            f"{a['initial_max_rel']:.2%} relative ({cause}; once a pick differs, the runs move apart). They are "
            f"{_differing_datasets(a['datasets_differing'])}.{_agreeing_samplers(a)}{stacks} Runs "
            "that differ in RMSE are not the same models, so a change of winner on them is not calibration's alone.")


def _agreeing_samplers(agreement: dict) -> str:
    """The samplers whose paired runs all agree, when some do (a hint at where the others were made)."""
    agreeing = agreement.get("samplers_agreeing", [])
    return f" Every paired run of {listing(agreeing)} agrees." if agreeing else ""


def _differing_datasets(counts: dict[str, tuple[int, int]]) -> str:
    if all(moved == runs for moved, runs in counts.values()):
        return f"every paired run of {plural_count(len(counts), 'dataset')} ({listing(list(counts))})"
    return f"runs of {plural_count(len(counts), 'dataset')} (" + ", ".join(
        f"{dataset}: {moved} of {runs}" for dataset, (moved, runs) in counts.items()) + " paired runs)"


def final_steps(pairs: pd.DataFrame) -> pd.DataFrame:
    """The last paired step of each run."""
    return pairs.loc[pairs.groupby(RUN_KEYS)["al_iter"].idxmax()].reset_index(drop=True)


def calibration_by_sampler(final: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Per sampler: mean over datasets (of the mean over seeds) of the final-step test LL and 90%
    coverage on each side, and the sampler's rank by that mean LL on each side (1 = highest)."""
    columns = [f"{c}_{s}" for c in ("test_log_likelihood", "test_coverage_90") for s in SIDES]
    per_dataset = final.groupby(["sampler", "dataset"])[columns].mean()
    table = per_dataset.groupby(level="sampler").mean()
    table["datasets"] = per_dataset.groupby(level="sampler").size()
    for s in SIDES:
        table[f"rank_{s}"] = table[f"test_log_likelihood_{s}"].rank(ascending=False, method="min").astype(int)
    return table.reindex([s for s in order if s in table.index]).reset_index()


def calibration_by_dataset(final: pd.DataFrame, baseline: str, order: Sequence[str]) -> pd.DataFrame:
    """Per dataset: the final-step LL winner (highest mean over seeds) on each side, the RMSE winner
    on each side, and per sampler its LL difference to `baseline` paired over seeds, on each side."""
    rows = []
    for dataset, part in final.groupby("dataset", sort=False):
        columns = [f"{c}_{s}" for c in ("test_log_likelihood", "test_rmse") for s in SIDES]
        means = part.groupby("sampler")[columns].mean()
        row: dict = dict(dataset=dataset, samplers=len(means), seeds=int(part["seed"].nunique()))
        for s in SIDES:
            row[f"ll_winner_{s}"] = str(means[f"test_log_likelihood_{s}"].idxmax())
            row[f"rmse_winner_{s}"] = str(means[f"test_rmse_{s}"].idxmin())
        wide = part.pivot(index="seed", columns="sampler")
        for sampler in (s for s in order if s != baseline and s in means.index):
            for s in SIDES:
                column = f"test_log_likelihood_{s}"
                if baseline in means.index:
                    both = wide[[(column, sampler), (column, baseline)]].dropna()
                    row[f"{sampler}_minus_{baseline}_{s}"] = float((both[(column, sampler)]
                                                                    - both[(column, baseline)]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _sign_flips(by_dataset: pd.DataFrame, sampler: str, baseline: str) -> pd.Series:
    raw, calibrated = (by_dataset.get(f"{sampler}_minus_{baseline}_{s}") for s in SIDES)
    if raw is None or calibrated is None:
        return pd.Series(False, index=by_dataset.index)
    both = raw.notna() & calibrated.notna()
    return both & (np.sign(raw) != np.sign(calibrated))


def calibration_markdown(by_sampler: pd.DataFrame, by_dataset: pd.DataFrame, baseline: str,
                         order: Sequence[str]) -> list[str]:
    """The two tables of Q9: per sampler (LL, coverage, LL rank on each side), per dataset (winners
    and each sampler's LL difference to the baseline, uncalibrated -> calibrated)."""
    sampler_rows = [[r.sampler, r.datasets, f"{r.test_log_likelihood_uncalibrated:.3f}",
                     f"{r.test_log_likelihood_calibrated:.3f}", f"{r.test_coverage_90_uncalibrated:.2f}",
                     f"{r.test_coverage_90_calibrated:.2f}", r.rank_uncalibrated, r.rank_calibrated]
                    for r in by_sampler.itertuples()]
    challengers = [s for s in order if s != baseline and f"{s}_minus_{baseline}_uncalibrated" in by_dataset]
    dataset_rows = []
    for index, r in by_dataset.iterrows():
        cells = [r["dataset"], f"{r['ll_winner_uncalibrated']} → {r['ll_winner_calibrated']}",
                 "yes" if r["ll_winner_uncalibrated"] != r["ll_winner_calibrated"] else "no",
                 f"{r['rmse_winner_uncalibrated']} → {r['rmse_winner_calibrated']}"]
        for sampler in challengers:
            raw, calibrated = (r[f"{sampler}_minus_{baseline}_{s}"] for s in SIDES)
            flip = " (flips)" if _sign_flips(by_dataset, sampler, baseline).loc[index] else ""
            cells.append("n/a" if pd.isna(raw) or pd.isna(calibrated) else f"{raw:+.3f} → {calibrated:+.3f}{flip}")
        dataset_rows.append(cells)
    return [markdown_table(["sampler", "datasets", "mean final LL, uncalibrated", "calibrated",
                            "mean 90% coverage, uncalibrated", "calibrated", "LL rank, uncalibrated", "calibrated"],
                           sampler_rows),
            markdown_table(["dataset", "LL winner, uncalibrated → calibrated", "LL winner flips",
                            "RMSE winner, uncalibrated → calibrated",
                            *[f"{s} − {baseline}: LL, uncalibrated → calibrated" for s in challengers]], dataset_rows)]


def _order_text(by_sampler: pd.DataFrame, side: str) -> str:
    ranked = by_sampler.sort_values([f"rank_{side}", "sampler"])
    return ", ".join(ranked["sampler"])


# -- Q9: the recommendation set rechecked on the calibrated runs (issue #35) ------------------------


SET_COLUMNS = {"n_train", "test_rmse", "test_log_likelihood", "pool_size"}  # what run_scalars reads
# the two sides of the recheck by the runs they are: the set reads RMSE, which calibration leaves alone
SIDE_NAMES = {"calibrated": "Q9 (calibrated)", "uncalibrated": "Q6 (uncalibrated, Q9's seeds)"}


def paired_runs(table: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The bnn rows of `table` that belong to a paired run (same dataset, sampler and seed on both
    sides): each side's set is computed on exactly the runs the other side has, in `table`'s order."""
    part = bnn_rows(table)
    runs = pd.MultiIndex.from_frame(pairs[RUN_KEYS].drop_duplicates())
    return part[pd.MultiIndex.from_frame(part[RUN_KEYS]).isin(runs)]


def calibration_sets(pairs: pd.DataFrame, uncalibrated: pd.DataFrame, calibrated: pd.DataFrame, baseline: str,
                     every_model: Callable[[str], bool] | None = None) -> dict[str, MethodStatistics]:
    """side -> the recommendation's statistics (method_statistics: the same statistic, paired test,
    Holm family and default as Q6's set) on that side's paired runs only."""
    tables = {"uncalibrated": uncalibrated, "calibrated": calibrated}
    return {side: method_statistics(paired_runs(tables[side], pairs), baseline, every_model=every_model)
            for side in SIDES}


def _primary_set(result: MethodStatistics) -> stats.RecommendationSet:
    return result.sets[result.primary]


def restricted_set(reference: stats.RecommendationSet, samplers: Sequence[str]) -> dict:
    """Q6's set restricted to `samplers`: its members among them (in Q6's order), and its best and
    default where they are among them (else None)."""
    inside = set(samplers)
    return dict(members=[m for m in reference.members if m in inside],
                best=reference.best if reference.best in inside else None,
                default=reference.default if reference.default in inside else None)


def calibration_set_table(results: dict[str, MethodStatistics], order: Sequence[str],
                          reference: stats.RecommendationSet | None) -> pd.DataFrame:
    """Per sampler and side: its mean difference to that side's best with the interval, p and Holm p
    (nan for the best), whether Holm tells it from the best, whether it is in the set or the default;
    and whether it is in Q6's committed set, its best or its default."""
    rows = []
    for method in order:
        row: dict = {"method": method}
        for side in SIDES:
            chosen = _primary_set(results[side])
            comparison = chosen.comparisons.set_index("method")
            found = method in comparison.index
            for column in ("difference", "half_width", "p_value", "p_holm"):
                row[f"{column}_{side}"] = float(comparison.loc[method, column]) if found else float("nan")
            row[f"distinguishable_{side}"] = bool(comparison.loc[method, "distinguishable"]) if found else False
            row[f"best_{side}"] = method == chosen.best
            row[f"in_set_{side}"] = method in chosen.members
            row[f"default_{side}"] = method == chosen.default
        if reference is not None:
            row.update(in_set_q6=method in reference.members, best_q6=method == reference.best,
                       default_q6=method == reference.default)
        rows.append(row)
    return pd.DataFrame(rows)


def _set_cells(row: pd.Series, side: str) -> list[str]:
    if row[f"best_{side}"]:
        return ["(the best)", "", "yes" + (" (default)" if row[f"default_{side}"] else "")]
    if not math.isfinite(row[f"difference_{side}"]):
        return ["n/a", "", "yes" if row[f"in_set_{side}"] else "no"]
    holm_p = row[f"p_holm_{side}"]
    verdict = "clearly worse" if row[f"distinguishable_{side}"] else "within noise"
    return [f"{row[f'difference_{side}']:+.4f} ± {row[f'half_width_{side}']:.4f}",
            f"{verdict} (Holm p {holm_p:.3f})" if math.isfinite(holm_p) else verdict,
            ("yes" if row[f"in_set_{side}"] else "no") + (" (default)" if row[f"default_{side}"] else "")]


def calibration_set_markdown(table: pd.DataFrame, results: dict[str, MethodStatistics],
                             reference_scope: str | None) -> str:
    """The table of the recheck: per sampler, uncalibrated and calibrated side by side, and Q6's set."""
    header = ["method"]
    for side in SIDES:
        header += [f"{SIDE_NAMES[side]}: difference to {_primary_set(results[side]).best} (95% interval over "
                   "datasets)",
                   "Holm verdict", "in the set"]
    if reference_scope is not None:
        header.append(f"in Q6's set ({reference_scope})")
    rows = []
    for _, row in table.iterrows():
        cells = [row["method"], *_set_cells(row, "uncalibrated"), *_set_cells(row, "calibrated")]
        if reference_scope is not None:
            role = " (best)" if row["best_q6"] else " (default)" if row["default_q6"] else ""
            cells.append(("yes" if row["in_set_q6"] else "no") + role)
        rows.append(cells)
    return markdown_table(header, rows)


def _set_text(entry: dict) -> str:
    return f"{listing(entry['members'])} (best {entry['best']}, default {entry['default']})"


def _reference_text(restricted: dict, reference: stats.RecommendationSet) -> str:
    def role(name: str, method: str | None, full: str | None) -> str:
        return f"{name} {method}" if method is not None else f"{name} {full}, which Q9 does not run"

    return (f"{listing(restricted['members'])} ({role('its best', restricted['best'], reference.best)}; "
            f"{role('its default', restricted['default'], reference.default)})")


def _compare_sets(name: str, chosen: stats.RecommendationSet, other: dict, other_name: str) -> str:
    """Members, best and default of `chosen` against `other` (members, best, default; None where
    that of `other_name`, e.g. "Q6's set", is not among these samplers)."""
    added = [m for m in chosen.members if m not in other["members"]]
    missing = [m for m in other["members"] if m not in chosen.members]
    members = (f"has the same members as {other_name}" if not added and not missing else
               f"has {listing(added)} beyond the members of {other_name}" if not missing else
               f"lacks {listing(missing)} of the members of {other_name}" if not added else
               f"has {listing(added)} beyond the members of {other_name} and lacks {listing(missing)}")
    same, moved = [], []
    for part in ("best", "default"):
        mine, theirs = getattr(chosen, part), other[part]
        if mine == theirs:
            same.append(f"its {part} ({mine})")
        elif theirs is None:
            moved.append(f"its {part} is {mine} (that of {other_name} is not among these samplers)")
        else:
            moved.append(f"its {part} is {mine}, not {theirs}")
    return (f"the {name} set {members}"
            + (f"; {listing(same)} {'is' if len(same) == 1 else 'are'} the same" if same else "")
            + "".join(f"; {part}" for part in moved))


def calibration_set_facts(results: dict[str, MethodStatistics], reference: stats.RecommendationSet | None,
                          order: Sequence[str], uncalibrated: pd.DataFrame, pairs: pd.DataFrame,
                          agreement: dict) -> dict:
    """The numbers the recheck's sentences state (`agreement`: rmse_agreement of the pairs)."""
    sets = {side: _primary_set(results[side]) for side in SIDES}
    q6_rows = bnn_rows(uncalibrated)
    facts: dict = dict(datasets=len(results["calibrated"].datasets), seeds=int(pairs["seed"].nunique()),
                       samplers=list(order), runs=len(pairs[RUN_KEYS].drop_duplicates()),
                       rmse_differing=int(agreement["differing"]),
                       **{side: dict(members=s.members, best=s.best, default=s.default) for side, s in sets.items()})
    if reference is not None:
        facts["q6"] = dict(members=reference.members, best=reference.best, default=reference.default,
                           seeds=int(q6_rows["seed"].nunique()), samplers=int(q6_rows["sampler"].nunique()),
                           restricted=restricted_set(reference, order))
    return facts


def calibration_set_sentence(facts: dict, reference: stats.RecommendationSet | None) -> str:
    """The recheck's answer in one sentence."""
    text = (f"On Q9's runs ({facts['datasets']} datasets, {facts['seeds']} paired seeds, "
            f"{len(facts['samplers'])} samplers) the recommendation set is {_set_text(facts['calibrated'])} "
            f"and on Q6's runs of the same seeds {_set_text(facts['uncalibrated'])}")
    if reference is None:
        return text + "; Q6's set is not here to compare."
    return (text + f"; Q6's set restricted to these samplers ({facts['q6']['seeds']} seeds) is "
            f"{_reference_text(facts['q6']['restricted'], reference)}.")


def calibration_set_paragraph(facts: dict, results: dict[str, MethodStatistics],
                              reference: stats.RecommendationSet | None) -> str:
    """What the recheck computes, how little 2 seeds are against Q6's, and how the sets compare."""
    calibrated, uncalibrated = (_primary_set(results[side]) for side in ("calibrated", "uncalibrated"))
    comparisons = len(calibrated.comparisons)
    seeds = facts["seeds"]
    text = (f"**The recommendation rechecked on Q9's runs.** The recommendation set (the methods whose "
            f"{STATISTICS[results['calibrated'].primary]} cannot be told apart from the best's, paired over datasets "
            f"with Holm's correction over the comparisons with the best; default: first the members that run on "
            f"every model, then the lowest mean) computed on Q9's {facts['runs']} paired runs alone, calibrated, and "
            f"on the Q6 runs of the same dataset, sampler and seed, uncalibrated: {facts['datasets']} "
            f"datasets, {len(facts['samplers'])} samplers ({comparisons} comparisons in Holm's family).")
    if "q6" in facts:
        q6 = facts["q6"]
        fewer_seeds = seeds < q6["seeds"]
        every_sampler = len(facts["samplers"]) >= q6["samplers"]
        samplers = (f"all of Q6's {q6['samplers']} samplers" if every_sampler
                    else f"{len(facts['samplers'])} of Q6's {q6['samplers']} samplers")
        scope = (f" Q9 has {plural_count(seeds, 'paired seed')}, "
                 + (f"fewer than Q6's {q6['seeds']}" if fewer_seeds else f"as many as Q6's {q6['seeds']}")
                 + f", and {samplers}: each dataset's mean is over {plural_count(seeds, 'seed')}"
                 + ("" if every_sampler else f", and the family is {comparisons} comparisons, not {q6['samplers'] - 1}")
                 + (", so these sets are a coarser check than Q6's, not a replacement." if fewer_seeds or not
                    every_sampler else "."))
        text += scope
    differing = facts["rmse_differing"]
    text += (" Calibration itself changes no test RMSE, so the two sides can differ only through the paired runs whose "
             "RMSE differs: " + (f"here {differing} of {facts['runs']} (above)." if differing else
                                 "here none, so the two sides must agree."))
    if calibrated.members == uncalibrated.members and calibrated.default == uncalibrated.default:
        text += f" The {SIDE_NAMES['calibrated']} set is the {SIDE_NAMES['uncalibrated']} one, with the same default."
    else:
        comparison = _compare_sets(SIDE_NAMES["calibrated"], calibrated, facts["uncalibrated"],
                                   f"the {SIDE_NAMES['uncalibrated']} set")
        text += f" {comparison[0].upper()}{comparison[1:]}."
    if reference is not None:
        restricted = facts["q6"]["restricted"]
        text += (f" Against Q6's set restricted to these samplers ({_reference_text(restricted, reference)}): "
                 + "; ".join(_compare_sets(SIDE_NAMES[side], _primary_set(results[side]), restricted, "Q6's full set")
                             for side in ("calibrated", "uncalibrated")) + ".")
    return text


def question_calibration(uncalibrated: pd.DataFrame, calibrated: pd.DataFrame, baseline: str = "random",
                         uncalibrated_keys: dict | None = None, source: str = "Q6",
                         reference: stats.RecommendationSet | None = None,
                         every_model: Callable[[str], bool] | None = None,
                         machines: tuple[list[str], list[str]] | None = None) -> Section:
    """Q9: the same samplers on the calibrated model (`calibrated`, Q9's runs) and the uncalibrated
    one: how do final-step LL and coverage move, and does the LL winner change? Where Q9's runs kept
    their raw LL and coverage (own_pairs), each run is its own uncalibrated pair, and `uncalibrated`
    (`source`'s runs of the same dataset, sampler and seed, trained apart) is compared in test RMSE
    only, with the recommendation set recomputed on both; else the LL comparison pairs with
    `uncalibrated` too. With `uncalibrated_keys` ((dataset, sampler, seed) -> the run key of Q9's
    settings with calibration off) the section says whether `source`'s runs are those settings. The
    recommendation set is recomputed on each side's paired runs (method_statistics; `every_model` as
    for Q6's set) and compared with `reference`, Q6's committed set (issue #35). `machines`: where
    each side's runs were trained (`source`'s, Q9's), where the wall-time record has it."""
    title = "Does calibration change which method wins?"
    own, left_out = own_pairs(calibrated)
    pairs = calibration_pairs(uncalibrated, calibrated)
    within = not own.empty
    compared = own if within else pairs
    if compared.empty:
        text = f"No run of Q9 has a run of {source} with the same dataset, sampler and seed: nothing to compare."
        return Section("q9", title, text, text, markdown=[text])
    order = [s for s in dict.fromkeys(calibrated["sampler"]) if s in set(compared["sampler"])]
    agreement = rmse_agreement(compared)
    final = final_steps(compared)
    by_sampler = calibration_by_sampler(final, order)
    by_dataset = calibration_by_dataset(final, baseline, order)
    facts = calibration_facts(compared, calibrated, by_sampler, by_dataset, agreement, baseline, order)
    facts.update(within=within, left_out=left_out if within else 0,
                 keyed=_keyed_runs(pairs, uncalibrated, uncalibrated_keys), source_runs=_runs(pairs),
                 source_unpaired=_runs(bnn_rows(calibrated)) - _runs(pairs))
    if within:
        machine = rmse_agreement(pairs) if not pairs.empty else None
        facts["machine_rmse"] = machine
        intro = own_pairs_intro(facts)
        beside = [beside_paragraph(facts, machine, machines, source)]
    else:
        machine = agreement
        pairing = pairing_sentence(facts, source)
        intro = (f"Each run of Q9 (calibrated) is paired with the run of {source} (uncalibrated) of the same "
                 f"dataset, sampler and seed: {facts['runs']} runs of {len(order)} samplers on {facts['datasets']} "
                 f"datasets, {facts['seeds']} paired seeds. {pairing} Calibration rescales only the predictive std "
                 "the model reports (al_bnn/stack_calibration.py): its training and its picks are the uncalibrated "
                 "run's, so the paired runs should have the same test RMSE at every step. "
                 f"{rmse_agreement_sentence(agreement, machines, source)}")
        beside = []
    tables = calibration_markdown(by_sampler, by_dataset, baseline, order)
    after_tables = (f"Final AL step; a winner is the sampler with the highest mean test log-likelihood (LL) over the "
                    f"seeds (the RMSE winner: lowest mean test RMSE); a {baseline} difference is the mean over "
                    f"{facts['seeds']} paired seeds of the sampler's LL minus {baseline}'s, \"(flips)\" where its sign "
                    "changes with calibration. " + flips_sentence(facts, baseline))
    answer = calibration_answer(facts, baseline)
    set_blocks: list[str] = []
    data = {"q9_by_sampler": by_sampler, "q9_by_dataset": by_dataset}
    missing = sorted(SET_COLUMNS.difference(calibrated.columns).union(SET_COLUMNS.difference(uncalibrated.columns)))
    if pairs.empty:
        set_blocks = [f"The recommendation set is not rechecked on these runs: {source}'s runs of the same dataset, "
                      "sampler and seed are not here."]
    elif missing:
        set_blocks = [f"The recommendation set is not rechecked on these runs: their tables lack {listing(missing)}."]
    elif baseline not in order:
        set_blocks = [f"The recommendation set is not rechecked on these runs: they have no {baseline} runs, with "
                      "which the set's statistics pair every method."]
    else:
        results = calibration_sets(pairs, uncalibrated, calibrated, baseline, every_model)
        facts["recommendation_set"] = calibration_set_facts(results, reference, order, uncalibrated, pairs,
                                                              machine)
        data["q9_recommendation_set"] = calibration_set_table(results, order, reference)
        scope = (None if reference is None else f"{facts['recommendation_set']['q6']['samplers']} samplers, "
                 f"{facts['recommendation_set']['q6']['seeds']} seeds")
        # before the per-sampler table: its rows are named by sampler too, and that table's rows come last
        set_blocks = [calibration_set_paragraph(facts["recommendation_set"], results, reference),
                      calibration_set_markdown(data["q9_recommendation_set"], results, scope)]
        answer += " " + calibration_set_sentence(facts["recommendation_set"], reference)
    section = Section("q9", title, answer, calibration_headline(facts), facts=facts,
                      markdown=[intro, *beside, *set_blocks, "**Per sampler** (means over datasets of the final-step "
                                "means over seeds; rank 1 = highest mean LL):", tables[0], ranks_sentence(facts),
                                "**Per dataset:**", tables[1], after_tables],
                      tables=data)
    return section


def _runs(pairs: pd.DataFrame) -> int:
    return len(pairs[RUN_KEYS].drop_duplicates()) if not pairs.empty else 0


def _keyed_runs(pairs: pd.DataFrame, uncalibrated: pd.DataFrame, uncalibrated_keys: dict | None) -> int | None:
    """How many of the paired runs of `uncalibrated` have the run key of Q9's settings with
    calibration off (None: no keys to check)."""
    if uncalibrated_keys is None or "run_key" not in uncalibrated or pairs.empty:
        return None
    keys = uncalibrated.drop_duplicates(RUN_KEYS).set_index(RUN_KEYS)["run_key"].astype(str)
    runs = pairs[RUN_KEYS].drop_duplicates()
    return int(sum(uncalibrated_keys.get(run) == keys.get(run) for run in runs.itertuples(index=False, name=None)))


def own_pairs_intro(facts: dict) -> str:
    """How Q9 pairs a run with itself, and what that pairing rules out."""
    left_out = (f" {plural_count(facts['left_out'], 'run')} of Q9 kept no raw LL or coverage (taken from a table "
                "that dropped them) and are left out." if facts["left_out"] else "")
    return (f"Each run of Q9 is paired with itself before calibration: after every training phase the loop records "
            "the model's test LL and 90% coverage as trained (`test_log_likelihood_raw`, `test_coverage_90_raw`) "
            "beside the calibrated ones (al_bnn/stack_calibration.py). The raw numbers are what the same settings "
            "record with `calibration: none`: calibration fits a copy of the model and rescales only the predictive "
            "std it reports, so the picks and the test RMSE are the uncalibrated run's bit for bit "
            "(tests/test_loop_calibration.py checks this). "
            f"{facts['runs']} runs of {len(facts['samplers'])} samplers on {facts['datasets']} datasets, "
            f"{facts['seeds']} paired seeds.{left_out} Both sides are the same runs, so their test RMSE, and with it "
            "the RMSE winner, cannot differ, and every difference below is calibration's.")


def beside_paragraph(facts: dict, machine: dict | None, machines: tuple[list[str], list[str]] | None,
                     source: str) -> str:
    """Q9's runs against `source`'s runs of the same settings trained apart: do they reproduce?"""
    if machine is None:
        return f"**Q9's runs beside {source}'s.** {source} has no run of the same dataset, sampler and seed here."
    return (f"**Q9's runs beside {source}'s.** {source} trained the same samplers on the same datasets and seeds "
            f"without calibration ({facts['source_runs']} of Q9's runs have such a run). "
            f"{pairing_sentence(facts, source)} Calibration changes no test RMSE, so these pairs should agree at "
            f"every step. {rmse_agreement_sentence(machine, machines, source)}")


def calibration_facts(pairs: pd.DataFrame, calibrated: pd.DataFrame, by_sampler: pd.DataFrame,
                      by_dataset: pd.DataFrame, agreement: dict, baseline: str, order: Sequence[str]) -> dict:
    """The numbers Q9's sentences state (`pairs`: the runs compared in LL and coverage)."""
    runs = pairs[RUN_KEYS].drop_duplicates()
    calibrated_runs = calibrated[RUN_KEYS].drop_duplicates()
    flipped = by_dataset.loc[by_dataset["ll_winner_uncalibrated"] != by_dataset["ll_winner_calibrated"], "dataset"]
    rmse_flipped = by_dataset.loc[by_dataset["rmse_winner_uncalibrated"] != by_dataset["rmse_winner_calibrated"],
                                  "dataset"]
    sign_flips = {s: list(by_dataset.loc[_sign_flips(by_dataset, s, baseline), "dataset"])
                  for s in order if s != baseline and f"{s}_minus_{baseline}_uncalibrated" in by_dataset}
    compared = {s: int(by_dataset[[f"{s}_minus_{baseline}_{side}" for side in SIDES]].notna().all(axis=1).sum())
                for s in sign_flips}
    clean = [d for d in by_dataset["dataset"] if d not in agreement["datasets_differing"]]
    return dict(runs=len(runs), unpaired=len(calibrated_runs) - len(runs), datasets=int(runs["dataset"].nunique()),
                clean_datasets=clean, clean_flips=[d for d in flipped if d in clean],
                seeds=int(runs["seed"].nunique()), samplers=list(order), rmse=agreement,
                ll_winner_flips=list(flipped), rmse_winner_flips=list(rmse_flipped), sign_flips=sign_flips,
                sign_compared=compared,
                order_uncalibrated=_order_text(by_sampler, "uncalibrated"),
                order_calibrated=_order_text(by_sampler, "calibrated"),
                coverage={s: (float(by_sampler[f"test_coverage_90_{s}"].min()),
                              float(by_sampler[f"test_coverage_90_{s}"].max())) for s in SIDES})


def pairing_sentence(facts: dict, source: str) -> str:
    unpaired = (f" {facts['source_unpaired']} run(s) of Q9 have no {source} run and are left out."
                if facts["source_unpaired"] else "")
    runs = facts["source_runs"]
    if facts["keyed"] is None:
        return (f"Whether the {source} runs are these settings uncalibrated could not be checked (no run keys)."
                f"{unpaired}")
    if facts["keyed"] == runs:
        return (f"Every paired {source} run has the run key of Q9's settings with `calibration: none`: the same "
                f"settings, uncalibrated.{unpaired}")
    consequence = "" if facts["within"] else ", so the differences below are not calibration's alone"
    return (f"Only {facts['keyed']} of the {runs} paired {source} runs have the run key of Q9's settings with "
            f"`calibration: none`; the others differ from Q9's runs in more than calibration{consequence}."
            f"{unpaired}")


def ranks_sentence(facts: dict) -> str:
    if facts["order_uncalibrated"] == facts["order_calibrated"]:
        return (f"Ranked by mean final-step LL over datasets, the order is the same without and with calibration: "
                f"{facts['order_uncalibrated']}.")
    return (f"Ranked by mean final-step LL over datasets, the order is {facts['order_uncalibrated']} uncalibrated and "
            f"{facts['order_calibrated']} calibrated.")


def flips_sentence(facts: dict, baseline: str) -> str:
    flipped = facts["ll_winner_flips"]
    named = f" ({listing(flipped)})" if flipped else ""
    parts = [f"The LL winner changes with calibration on {len(flipped)} of {facts['datasets']} datasets{named}, the "
             f"RMSE winner on {len(facts['rmse_winner_flips'])}."]
    if facts["rmse"]["differing"]:
        clean = facts["clean_flips"]
        parts.append(f"On the {len(facts['clean_datasets'])} datasets whose paired runs all agree in test RMSE "
                     f"(where only calibration differs) the LL winner changes on {len(clean)}"
                     + (f" ({listing(clean)})." if clean else "."))
    for sampler, datasets in facts["sign_flips"].items():
        parts.append(f"{sampler}'s LL difference to {baseline} changes sign on {len(datasets)} of "
                     f"{facts['sign_compared'][sampler]}" + (f" ({listing(datasets)})." if datasets else "."))
    return " ".join(parts)


def _coverage_text(facts: dict) -> str:
    (low_u, high_u), (low_c, high_c) = facts["coverage"]["uncalibrated"], facts["coverage"]["calibrated"]
    return (f"the samplers' mean 90% coverage goes from {low_u:.2f}-{high_u:.2f} uncalibrated to "
            f"{low_c:.2f}-{high_c:.2f} calibrated")


def calibration_answer(facts: dict, baseline: str) -> str:
    """Q9's answer in two sentences, from its numbers."""
    flips = sum(len(d) for d in facts["sign_flips"].values())
    compared = sum(facts["sign_compared"].values())
    ranking = ("leaves the samplers' order by mean final-step LL over datasets as it was "
               f"({facts['order_calibrated']})" if facts["order_uncalibrated"] == facts["order_calibrated"] else
               f"changes their order by mean final-step LL over datasets from {facts['order_uncalibrated']} to "
               f"{facts['order_calibrated']}")
    caveat = ""
    if facts["within"]:
        caveat = (" Each run is compared with itself before calibration (same picks, same test RMSE), so the changes "
                  "are calibration's.")
    elif facts["rmse"]["differing"]:
        caveat = (f" {facts['rmse']['differing']} of the {facts['runs']} paired runs differ in test RMSE as well "
                  f"(up to {facts['rmse']['max_rel']:.1%} relative), so not every change is calibration's alone; on "
                  f"the {len(facts['clean_datasets'])} datasets where all paired runs agree in RMSE the LL winner "
                  f"changes on {len(facts['clean_flips'])}.")
    elif facts["rmse"]["max_abs"] > 0:
        caveat = " The paired runs' test RMSE agrees up to float noise, so the changes are calibration's."
    else:
        caveat = " The paired runs' test RMSE is identical, so the changes are calibration's."
    if not facts["within"] and facts["keyed"] is not None and facts["keyed"] < facts["runs"]:
        caveat += (f" Only {facts['keyed']} of the {facts['runs']} paired runs are Q9's settings uncalibrated "
                   "(run keys).")
    return (f"On {facts['datasets']} datasets with {facts['seeds']} paired seeds, calibration changes the final-step "
            f"LL winner among {len(facts['samplers'])} samplers on {len(facts['ll_winner_flips'])} of them and the "
            f"sign of a sampler's LL difference to {baseline} in {flips} of {compared} dataset-sampler pairs, and "
            f"{ranking}, while {_coverage_text(facts)}.{caveat}")


def _rmse_caveat(facts: dict) -> str:
    rmse = facts["rmse"]
    if not rmse["differing"]:
        return ""
    return (f" (the paired runs' test RMSE differs too on {rmse['differing']} of {facts['runs']}, by up to "
            f"{rmse['max_rel']:.1%}, so not all of it is calibration's)")


def calibration_headline(facts: dict) -> str:
    same = facts["order_uncalibrated"] == facts["order_calibrated"]
    return (f"On {facts['datasets']} datasets ({facts['seeds']} paired seeds, {len(facts['samplers'])} samplers) "
            f"calibration changes the final-step LL winner on {len(facts['ll_winner_flips'])} of {facts['datasets']} "
            + ("datasets and, comparing each run with itself, never the RMSE winner (picks and RMSE are the "
               "uncalibrated run's)" if facts["within"] else
               f"datasets and the RMSE winner on {len(facts['rmse_winner_flips'])}{_rmse_caveat(facts)}")
            + "; the order by mean LL over datasets is " + ("unchanged" if same else "changed")
            + f"; {_coverage_text(facts)}.")


def calibration_summary(facts: dict) -> str:
    """Q9 in one sentence for the report's summary."""
    same = facts["order_uncalibrated"] == facts["order_calibrated"]
    order = ("leaves the samplers' order by mean log-likelihood unchanged" if same else
             "changes the samplers' order by mean log-likelihood")
    return (f"Calibrating the bnn (Q9: {facts['datasets']} datasets, {facts['seeds']} paired seeds, "
            f"{len(facts['samplers'])} samplers) changes the final-step log-likelihood winner on "
            f"{len(facts['ll_winner_flips'])} of {facts['datasets']} datasets{_rmse_caveat(facts)} and {order}.")
