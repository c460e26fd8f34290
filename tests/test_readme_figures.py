"""The README's calibration figures are the committed tables' numbers: each figure the paragraph
states is recomputed here from the table it comes from, so a rerun that changes a table fails
this test until the sentence is updated."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from al_bnn.config import TrainSchedule
from al_bnn.recipe import DEFAULT_SAMPLER, recipe_default
from al_bnn_lab.run_key_baseline import RUN_KEY_BASELINE

REPO = Path(__file__).resolve().parent.parent


def paragraph() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("Calibration figures, since they are easy to overstate")
    return " ".join(text[start:text.index("\n\n", start)].split())


def test_the_uci_protocol_figures_are_the_committed_summary():
    summary = pd.read_csv(REPO / "docs" / "uci_protocol" / "summary.csv")
    coverage = summary.groupby("model")["coverage_90"].mean()
    stated = re.search(r"the mean 90% coverage is ([0-9.]+) \(bnn\), ([0-9.]+) \(dropout\) and ([0-9.]+) "
                       r"\(ensemble\), no set below 0\.75", paragraph())
    assert stated, paragraph()
    assert list(stated.groups()) == [f"{coverage[model]:.2f}" for model in ("bnn", "dropout", "ensemble")]
    assert summary["coverage_90"].min() >= 0.75
    bnn = summary[summary.model == "bnn"]
    reached = int((bnn["ll_minus_published"] >= 0).sum())
    assert f"reaches MC dropout's published one on only {reached} of {len(bnn)} sets" in paragraph()
    trailing = sorted(bnn.loc[bnn["rmse_over_published"] > 1.1, "dataset"])
    assert f"its RMSE trails on {' and '.join(trailing)}" in paragraph()


def test_the_benchmark_coverage_figures_are_the_committed_tables():
    summary = pd.read_csv(REPO / "docs" / "benchmark" / "summary.csv")
    random = summary[summary.sampler == "random"].groupby("model")["final_coverage_90"].mean()
    stated = re.search(r"random selection's coverage there: bnn ([0-9.]+), dropout ([0-9.]+), ensemble ([0-9.]+)",
                       paragraph())
    assert stated, paragraph()
    assert list(stated.groups()) == [f"{random[model]:.2f}" for model in ("bnn", "dropout", "ensemble")]
    loop = pd.read_csv(REPO / "docs" / "al_calibration" / "coverage.csv")
    for model, part in loop.groupby("model"):
        before, after = part["coverage_raw"].mean(), part["coverage_calibrated"].mean()
        assert f"{model} {before:.2f} to {after:.2f}" in paragraph(), model


def test_every_interval_the_uci_protocol_page_quotes_is_in_a_generated_report():
    """docs/uci-protocol.md quotes paired gains and means as 'value ± half-width'; each must appear, up to
    its sign, in one of the generated reports it links (UCI protocol, validation, candidate, cost, AL)."""
    page = (REPO / "docs" / "uci-protocol.md").read_text()
    quoted = set(re.findall(r"[-+−]?(\d+\.\d+ ± \d+\.\d+)", page))
    reports = [*(REPO / "docs" / "uci_protocol").rglob("*.md"), *(REPO / "docs" / "recipe_change").rglob("report.md"),
               *(REPO / "docs" / "al_calibration").rglob("*.md")]
    generated = " ".join(path.read_text() for path in reports)
    assert len(quoted) >= 10
    missing = sorted(value for value in quoted if value not in generated)
    assert not missing, f"quoted in docs/uci-protocol.md but in no generated report: {missing}"


# Every other result the README states, each recomputed from the committed table it comes from.

# how the README spells the counts it writes as words (a count without its word fails the test)
CARDINAL, ORDINAL = {14: "Fourteen"}, {15: "fifteenth"}


def readme() -> str:
    """README.md with its line breaks and runs of spaces as single spaces (sentences wrap anywhere)."""
    return " ".join((REPO / "README.md").read_text().split())


def benchmark_tables() -> pd.DataFrame:
    return pd.concat([pd.read_csv(REPO / "docs" / "benchmark" / "benchmark.csv"),
                      pd.read_csv(REPO / "docs" / "benchmark" / "benchmark_dropout_ensemble.csv.gz")])


def test_the_benchmark_grid_and_the_shipped_datasets_are_the_committed_tables():
    """'a benchmark on 15 regression datasets', '15 datasets x 3 models x 8 samplers x 5 seeds' (every
    combination run), 'Fourteen UCI datasets are shipped in data/uci/' and housing 'the benchmark's fifteenth'."""
    table = benchmark_tables()
    sizes = [table[column].nunique() for column in ("dataset", "model", "sampler", "seed")]
    assert table.groupby(["dataset", "model", "sampler", "seed"]).ngroups == sizes[0] * sizes[1] * sizes[2] * sizes[3]
    assert f"benchmark: {sizes[0]} datasets x {sizes[1]} models x {sizes[2]} samplers x {sizes[3]} seeds" in readme()
    assert f"a benchmark on {sizes[0]} regression datasets" in readme()
    shipped = sorted(path.name for path in (REPO / "data" / "uci").iterdir() if path.is_dir())
    assert sorted(set(table["dataset"])) == sorted([*shipped, "housing"])
    assert f"{CARDINAL[len(shipped)]} UCI datasets are shipped in `data/uci/`" in readme()
    assert f"California housing, the benchmark's {ORDINAL[len(shipped) + 1]}" in readme()


def test_the_uci_protocol_size_is_the_committed_runs():
    """'on the standard UCI protocol (20 splits of six sets)': every (set, model) of the committed runs."""
    runs = pd.read_csv(REPO / "docs" / "uci_protocol" / "runs.csv")
    splits = runs.groupby(["dataset", "model"])["split"].nunique()
    assert splits.nunique() == 1 and runs["dataset"].nunique() == 6
    assert f"on the standard UCI protocol ({splits.iloc[0]} splits of six sets)" in readme()


def q6_mean_log_rmse() -> pd.Series:
    """Per method, Holzmueller et al.'s measure recomputed from Q6's per-step table: log test RMSE
    averaged over a run's AL steps, then over seeds, then over datasets."""
    q6 = pd.read_csv(REPO / "docs" / "study_data" / "q6.csv.gz")
    runs = q6.assign(log_rmse=np.log(q6["test_rmse"])).groupby(["dataset", "sampler", "seed"])["log_rmse"].mean()
    return runs.groupby(["dataset", "sampler"]).mean().groupby("sampler").mean().sort_values()


def test_the_default_sampler_is_the_lowest_mean_of_the_q6_recommendation_set_that_runs_on_every_model():
    """'pick with `lcmd` ...: of the recommended set's members that run on every model, it had the lowest
    mean log RMSE (on the models before calibration)'. The set is Q6's best method and those its committed
    comparisons cannot tell apart from it; the exact kernel is the bnn's alone."""
    means = q6_mean_log_rmse()
    comparisons = pd.read_csv(REPO / "docs" / "study_data" / "q6_recommendation_set.csv")
    best = means.index[0]
    assert best not in set(comparisons["method"]) and set(comparisons["method"]) == set(means.index) - {best}
    members = [best, *comparisons.loc[~comparisons["distinguishable"], "method"]]
    every_model = [method for method in members if not method.endswith("_exact")]
    default = min(every_model, key=means.get)
    assert DEFAULT_SAMPLER == default
    assert (f"`al-bnn-suggest` pick with `{default}` on sketched gradient features, the [study's recommended "
            "default](docs/study.md): of the recommended set's members that run on every model, it had the lowest "
            "mean log RMSE (on the models before calibration)") in readme()
    # the qualifier is needed: members with a lower mean are the bnn's exact-kernel ones alone
    lower = [method for method in members if means[method] < means[default]]
    assert all(method.endswith("_exact") for method in lower), lower
    # before calibration: Q6's runs of the default and of random that the benchmark also holds carry its run
    # keys, and the benchmark's stored settings leave calibration at its run-key baseline, none
    q6 = pd.read_csv(REPO / "docs" / "study_data" / "q6.csv.gz")
    shared = q6[q6["sampler"].isin([default, "random"]) & (q6["seed"] < 5)]
    assert shared["run_key"].isin(set(pd.read_csv(REPO / "docs" / "benchmark" / "benchmark.csv")["run_key"])).all()
    assert benchmark_calibration() == {"none"}


def benchmark_calibration() -> set[str]:
    """The calibration every run group of docs/benchmark/settings.yaml was made with (a key the stored
    settings lack counts as at its frozen run-key baseline value)."""
    stored = yaml.safe_load((REPO / "docs" / "benchmark" / "settings.yaml").read_text())
    baseline = RUN_KEY_BASELINE["train_schedule"]["calibration"]
    return {group["settings"]["train_schedule"].get("calibration", baseline) for group in stored["run_groups"]}


def test_the_published_experiment_figures_are_the_experiments_page_and_q1():
    """'With seed 0, GPA ends at test RMSE 0.682 against random's 1.126; over five paired seeds 0.685
    [0.682, 0.687] against 0.839 [0.648, 1.086] (...: the intervals overlap; the study's Q1 compares the two
    with 10 paired seeds)'. The runs' metrics are not committed (only their plots, whose titles give the
    same numbers): the figures are checked against docs/experiments.md's, and Q1's seeds against its table."""
    page = " ".join((REPO / "docs" / "experiments.md").read_text().split())
    seed0 = re.search(r"seed 0\): final test RMSE ([0-9.]+) for GPA against ([0-9.]+) for random", page)
    five = re.search(r"over five seeds ([0-9.]+) \[([0-9.]+), ([0-9.]+)\] against ([0-9.]+) \[([0-9.]+), ([0-9.]+)\]",
                     page)
    assert seed0 and five, page
    gpa, random = (f"{float(value):.3f}" for value in seed0.groups())
    assert f"With seed 0, GPA ends at test RMSE {gpa} against random's {random};" in readme()
    g, g_low, g_high, r, r_low, r_high = five.groups()
    assert f"over five paired seeds {g} [{g_low}, {g_high}] against {r} [{r_low}, {r_high}]" in readme()
    overlap = float(g_low) <= float(r_high) and float(r_low) <= float(g_high)
    assert ("the intervals overlap" if overlap else "the intervals do not overlap") in readme()
    q1 = pd.read_csv(REPO / "docs" / "study_data" / "q1.csv.gz")
    seeds = q1[q1["sampler"].isin(["lrgpa", "random"])].groupby(["dataset", "sampler"])["seed"].apply(frozenset)
    assert seeds.nunique() == 1  # the same seeds for both samplers on every dataset: paired
    assert f"the study's Q1 compares the two with {len(seeds.iloc[0])} paired seeds" in readme()


def test_the_reproduced_results_are_the_study_tables():
    """The opening's 'reproduces two published results, GPA ... beating random selection and fast GPA selecting
    the same points as batch GPA', and '`lrgpa` (GPA's picks, ...)': Q1 (GPA's final RMSE clearly lower than
    random's on some datasets, clearly higher on none) and Q4 (on identical samples in float64, fast and
    low-rank GPA pick exactly batch GPA's points at every acquisition)."""
    paired = pd.read_csv(REPO / "docs" / "study_data" / "q1_paired.csv")
    gpa = paired[(paired["sampler"] == "lrgpa") & (paired["baseline"] == "random")]
    assert (gpa["final_verdict"] == "lower").any() and not (gpa["final_verdict"] == "higher").any()
    q4 = pd.read_csv(REPO / "docs" / "study_data" / "q4.csv.gz")
    for column in ("overlap_fast_float64", "overlap_lowrank_float64"):
        compared = q4[column].dropna()
        assert len(compared) > 0 and (compared == 1.0).all(), column
    assert ("GPA (Gaussian-process active learning on the network's function samples) beating random selection "
            "and fast GPA selecting the same points as batch GPA") in readme()
    assert "`lrgpa` (GPA's picks, faster" in readme()


def test_the_lower_kl_weight_figures_are_the_candidate_and_recipe_change_tables():
    """'a lower KL weight lifts its log-likelihood to 4 of 6 but makes active learning worse on noisy sets':
    the candidate's UCI summary (bnn's LL at least MC dropout's published one) and the AL rerun's paired
    verdicts (clearly worse only on abalone and housing, the noisy sets of docs/uci-protocol.md)."""
    default = yaml.safe_load((REPO / "docs" / "uci_protocol" / "protocol.yaml").read_text())
    candidate = yaml.safe_load((REPO / "docs" / "uci_protocol" / "candidate_kl0.1" / "protocol.yaml").read_text())
    assert flat_value(candidate, "divergence_scale") < flat_value(default, "divergence_scale")
    summary = pd.read_csv(REPO / "docs" / "uci_protocol" / "candidate_kl0.1" / "summary.csv")
    bnn = summary[summary["model"] == "bnn"]
    reached = int((bnn["ll_minus_published"] >= 0).sum())
    assert f"a lower KL weight lifts its log-likelihood to {reached} of {len(bnn)} but makes active learning " \
           "worse on noisy sets" in readme()
    changes = pd.read_csv(REPO / "docs" / "recipe_change" / "changes.csv")
    worse = set(changes.loc[changes["verdict"] == "worse", "dataset"])
    assert worse and worse <= {"abalone", "housing"}, worse


def flat_value(mapping: object, key: str) -> object:
    """The first value of `key` anywhere in a nested YAML mapping (depth first)."""
    if isinstance(mapping, dict):
        if key in mapping:
            return mapping[key]
        for value in mapping.values():
            found = flat_value(value, key)
            if found is not None:
                return found
    if isinstance(mapping, list):
        for value in mapping:
            found = flat_value(value, key)
            if found is not None:
                return found
    return None


def test_the_loop_calibration_counts_are_the_committed_runs():
    """'bnn 0.80 to 0.91, dropout 0.72 to 0.90 and ensemble 0.56 to 0.91 (15 sets; 2 seeds and random
    selection for the last two)': the set counts, seeds and samplers of the calibrated runs, and the
    benchmark's stored settings made before the loop calibrated."""
    coverage = pd.read_csv(REPO / "docs" / "al_calibration" / "coverage.csv")
    runs = pd.read_csv(REPO / "docs" / "al_calibration" / "calibrated_runs.csv")
    sets = coverage.groupby("model")["dataset"].nunique()
    assert set(runs.groupby("model")["dataset"].nunique().items()) == set(sets.items())
    seeds = {model: part["seed"].nunique() for model, part in runs.groupby("model")}
    samplers = {model: sorted(set(part["sampler"])) for model, part in runs.groupby("model")}
    assert seeds["dropout"] == seeds["ensemble"] and samplers["dropout"] == samplers["ensemble"] == ["random"]
    stated = re.search(r"bnn [0-9.]+ to [0-9.]+, dropout [0-9.]+ to [0-9.]+ and ensemble [0-9.]+ to [0-9.]+ "
                       r"\(([0-9]+) sets; ([0-9]+) seeds and random selection for the last two\)", readme())
    assert stated, readme()
    assert sets["bnn"] == sets["dropout"] == sets["ensemble"]  # one count stated for the three
    assert [int(value) for value in stated.groups()] == [sets["bnn"], seeds["ensemble"]]
    assert benchmark_calibration() == {"none"}
    assert "were made before the loop calibrated" in readme()


def test_the_min_steps_figure_is_the_default_recipe():
    """'`n_epochs` is raised to `min_steps` optimiser steps (800 by default): on 200 rows this fits 800 epochs'
    (the README's scikit-learn example, n_epochs=100 on make_regression's 200 rows)."""
    schedule = {key: recipe_default("train_schedule", key, None) for key in ("batch_size", "min_steps")}
    epochs = TrainSchedule(num_epochs=100, **schedule).epochs_for(200)
    assert f"`n_epochs` is raised to `min_steps` optimiser steps ({schedule['min_steps']} by default): on 200 rows " \
           f"this fits {epochs} epochs" in readme()


def test_the_calibrated_reruns_and_balanced_minibatches_are_the_committed_tables():
    """README: rerun calibrated (random and lcmd, 5 seeds) no set is clearly worse; balanced minibatches
    are clearly better or worse (Holm-corrected) on the sets it names. (That a calibrated run's RMSE and
    picks are bitwise the uncalibrated run's on one machine is tests/test_loop_calibration.py's.)"""
    calibrated = pd.read_csv(REPO / "docs" / "recipe_change" / "calibration" / "changes.csv")
    assert set(calibrated["sampler"]) == {"random", "lcmd"} and set(calibrated["runs"]) == {5}
    assert not (calibrated["verdict"] == "worse").any()
    assert "rerun calibrated, random and lcmd over 5 seeds, no set is clearly worse" in paragraph()
    balanced = pd.read_csv(REPO / "docs" / "recipe_change" / "balanced" / "changes.csv")
    assert balanced["dataset"].nunique() == 15 and set(balanced["sampler"]) == {"random", "lcmd"}

    def named(verdict: str) -> str:
        sets = list(dict.fromkeys(balanced.loc[balanced["verdict_holm"] == verdict, "dataset"]))
        return " and ".join(sets) if len(sets) < 3 else ", ".join(sets[:-1]) + " and " + sets[-1]

    assert (f"over 15 sets and two samplers they make active learning clearly more accurate on {named('better')} "
            f"and clearly less accurate on {named('worse')} (Holm-corrected;") in paragraph()
