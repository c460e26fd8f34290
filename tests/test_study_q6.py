"""The study's second edition (Q6-Q8 and the recommendation): the tables recomputed independently
from a synthetic tidy table with known answers, the recommendation rule (including a case where
it recommends nothing over random), and a --quick end-to-end run of q6, q7 and q8."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from al_bnn_lab import study as run_study
from al_bnn_lab import study_methods

REPO_ROOT = Path(__file__).resolve().parent.parent
UCI_ROOT = REPO_ROOT / "data" / "uci"
DATASETS = ["d0", "d1", "d2", "d3"]
# Per dataset, each method's shift of log RMSE against random, and per seed its noise. gpa is best
# on average but clearly worse on d3; lcmd is a little better everywhere; maxdist is noise.
EFFECTS = {"random": [0.0, 0.0, 0.0, 0.0], "gpa": [-0.3, -0.3, -0.3, 0.3], "lcmd": [-0.1, -0.1, -0.1, -0.1],
           "maxdist": [0.0, 0.05, -0.05, 0.02]}
NOISE = {"random": [0.01, -0.01, 0.0], "gpa": [-0.01, 0.01, 0.0], "lcmd": [-0.01, 0.01, 0.0],
         "maxdist": [0.2, -0.2, 0.0]}


def synthetic_table(samplers=tuple(EFFECTS), steps: int = 4) -> pd.DataFrame:
    rows = []
    for j, dataset in enumerate(DATASETS):
        for sampler in samplers:
            for seed, noise in enumerate(NOISE[sampler]):
                for step in range(steps):
                    log_rmse = 1.0 + j - 0.1 * step + EFFECTS[sampler][j] + noise
                    rows.append(dict(dataset=dataset, model="bnn", sampler=sampler, seed=seed, al_iter=step,
                                     n_train=10 + 5 * step, test_rmse=math.exp(log_rmse), test_log_likelihood=-log_rmse,
                                     selection_seconds=0.01, training_seconds=1.0, pool_size=100 * (j + 1),
                                     runs_in_stack=len(samplers) * 3))
    return pd.DataFrame(rows)


def t_interval(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if values.std() == 0:
        return float(values.mean()), 0.0
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return float(values.mean()), float((high - low) / 2)


def expected_aggregate(table: pd.DataFrame) -> dict[str, dict]:
    """Recomputed without study_methods: mean log RMSE per run, per dataset paired differences to
    random with their t interval over seeds, then means and t intervals over datasets."""
    per_run = np.log(table.test_rmse).groupby([table.dataset, table.sampler, table.seed]).mean().unstack("sampler")
    result = {}
    for sampler in per_run.columns:
        differences, counts = [], {"better": 0, "within": 0, "worse": 0}
        for dataset in DATASETS:
            paired = (per_run.loc[dataset, sampler] - per_run.loc[dataset, "random"]).to_numpy()
            mean, half = t_interval(paired)
            differences.append(mean)
            counts["better" if mean + half < 0 else "worse" if mean - half > 0 else "within"] += 1
        mean_log = float(per_run[sampler].groupby(level="dataset").mean().mean())
        result[sampler] = dict(mean_log_rmse=mean_log, difference=t_interval(differences), **counts)
    return result


def test_the_aggregate_over_datasets_matches_an_independent_computation_and_the_known_answers():
    table = synthetic_table()
    expected = expected_aggregate(table)
    # the known answers, from the construction
    assert expected["gpa"]["difference"][0] == pytest.approx(-0.15)
    assert (expected["gpa"]["better"], expected["gpa"]["within"], expected["gpa"]["worse"]) == (3, 0, 1)
    assert (expected["lcmd"]["better"], expected["lcmd"]["worse"]) == (4, 0)
    assert (expected["maxdist"]["within"], expected["maxdist"]["worse"]) == (4, 0)
    section = study_methods.question_methods(table)
    aggregate = section.tables["q6_aggregate"].set_index("sampler")
    assert list(aggregate.index) == ["gpa", "lcmd", "random", "maxdist"]  # best mean log RMSE first
    for sampler in ("gpa", "lcmd", "maxdist"):
        row = aggregate.loc[sampler]
        mean, half = expected[sampler]["difference"]
        assert row.mean_log_rmse == pytest.approx(expected[sampler]["mean_log_rmse"])
        assert row.log_rmse_difference == pytest.approx(mean)
        assert row.interval == pytest.approx(half, abs=1e-9)
        assert (row.better, row.within, row.worse) == tuple(expected[sampler][k] for k in ("better", "within", "worse"))
    assert aggregate.loc["gpa", "worse_datasets"] == "d3"
    # the rendered table says the same
    text = section.markdown[0]
    cells = next(line for line in text.splitlines() if line.startswith("| gpa |")).strip("|").split("|")
    cells = [cell.strip() for cell in cells]
    mean, half = expected["gpa"]["difference"]
    assert cells[3] == f"{mean:+.3f} ± {half:.3f}" and cells[5] == "3 / 0 / 1" and cells[-1] == "d3"
    # per dataset: the paired difference and its interval over seeds, and the final RMSE
    per_dataset = section.tables["q6_per_dataset"].set_index(["dataset", "sampler"])
    final = table[table.al_iter == table.al_iter.max()].pivot_table(index=["dataset", "seed"], columns="sampler",
                                                                     values="test_rmse")
    relative = ((final["gpa"] - final["random"]) / final["random"]).loc["d3"]
    assert per_dataset.loc[("d3", "gpa"), "final_rmse_relative_difference"] == pytest.approx(relative.mean())
    assert per_dataset.loc[("d3", "gpa"), "verdict"] == "worse"
    assert per_dataset.loc[("d1", "maxdist"), "log_rmse_difference_interval"] == pytest.approx(
        t_interval(np.array([0.19, -0.19, 0.0]))[1])
    from al_bnn_lab.plotting import plt

    for figure in section.figures.values():
        plt.close(figure)


def test_the_recommendation_follows_the_rule():
    recommendation = study_methods.recommend(study_methods.question_methods(synthetic_table()))
    # gpa has the best mean log RMSE but is clearly worse than random on d3; lcmd and maxdist are
    # never worse, and lcmd is better on average, clearly (its interval over datasets is below zero)
    assert recommendation.method == "lcmd" and recommendation.supported and recommendation.default == "lcmd"
    text = "\n".join(recommendation.markdown)
    assert "**The rule's pick: lcmd**, clearly better than random averaged over datasets" in text
    assert "expected to be no worse" not in text  # a claim the prediction interval does not support
    assert "- **gpa**: clearly worse than random on d3." in text
    assert "- **maxdist**: never clearly worse than random." in text
    assert "clearly lower on d0 (100), d1 (200) and d2 (300) and clearly higher on d3 (400)" in text
    assert recommendation.sentence.startswith("The second edition's rule picks lcmd: mean log RMSE")
    assert recommendation.sentence.endswith(
        "GPA on its published MC kernel (gpa) is -0.150 ± 0.477 against random over the same datasets, clearly "
        "better than random on 3 and clearly worse on d3; paired with lcmd it is clearly worse on 1 and clearly "
        "better on 3 (per-dataset 95% intervals, uncorrected).")


def test_the_recommendation_names_a_method_for_the_other_models_when_its_pick_was_not_run_there():
    """Q7 ran without the default (lcmd): among the methods run there, the rule on Q6's record picks
    maxdist (never worse in Q6), not gpa (better on average, worse on d3); whether the default could
    run there is read from its kernel, and the other model's own verdict is stated."""
    other = synthetic_table(("random", "gpa", "maxdist")).assign(model="ensemble")
    q7 = study_methods.question_models(other, synthetic_table(), "Chosen by hand.", "random", pick="lcmd")
    maxdist = study_methods.aggregate_methods(study_methods.per_dataset_methods(other, "random"), "random")
    entry = maxdist[maxdist.sampler == "maxdist"].iloc[0]
    assert entry.log_rmse_difference + entry.interval > 0  # maxdist's effects are noise
    verdict = (f"Of the methods it ran, maxdist has the best Q6 (bnn) record by the rule; on ensemble "
               f"{entry.log_rmse_difference:+.3f} ± {entry.interval:.3f} against random over 4 datasets (not clearly "
               "better than random on average; clearly worse on 0 of them).")
    text = "\n".join(study_methods.recommend(study_methods.question_methods(synthetic_table()), q7).markdown)
    assert " lcmd was not among the methods Q7 ran. " + verdict in text
    kinds = {s: (s, "mc") for s in EFFECTS} | {"lcmd": ("lcmd", "exact")}
    q6_exact = study_methods.question_methods(synthetic_table(), kinds=kinds)
    text = "\n".join(study_methods.recommend(q6_exact, q7).markdown)
    assert " lcmd needs the bnn's closed-form last-layer kernel, so Q7 could not run it. " + verdict in text


def test_q7_coverage_without_the_column_or_for_some_datasets_only():
    bnn = synthetic_table()  # no test_coverage_90 column at all (tables written before it existed)
    other = synthetic_table(("random", "gpa")).assign(model="dropout", test_coverage_90=0.5)
    other.loc[other.dataset == "d0", "test_coverage_90"] = np.nan
    section = study_methods.question_models(other, bnn, "", "random")
    assert ("Random's 90% predictive interval held, averaged over the datasets: dropout 0.50 (over 3 of the 4) "
            "of the test targets") in section.answer
    assert "over-confident; uncalibrated runs: bnn (Q6 runs) and dropout):" in section.markdown[1]
    other["calibration_epistemic"] = 1.2  # a calibrated run records its fitted scales
    section = study_methods.question_models(other, bnn, "", "random")
    assert "over-confident; calibrated runs: dropout; uncalibrated runs: bnn (Q6 runs)):" in section.markdown[1]
    assert "| d0 | " in section.markdown[1] and "nan" not in section.markdown[1]


def test_the_recommendation_can_fail():
    """Without lcmd the rule picks maxdist (never worse), which is not clearly better than random
    over the datasets: then nothing is recommended over random."""
    recommendation = study_methods.recommend(
        study_methods.question_methods(synthetic_table(samplers=("random", "gpa", "maxdist"))))
    assert recommendation.method == "maxdist" and not recommendation.supported
    assert recommendation.default == "random"
    text = "\n".join(recommendation.markdown)
    assert "**Default: random.** The rule's pick, maxdist, is not clearly better than random" in text
    assert "no method is recommended over random" in text
    assert "Better on average but clearly worse than random on more datasets: gpa" in text
    # what a new dataset may give: the t prediction interval over the per-dataset differences
    per_run = (lambda t: np.log(t.test_rmse).groupby([t.dataset, t.sampler, t.seed]).mean().unstack("sampler"))(
        synthetic_table(samplers=("random", "maxdist")))
    differences = (per_run["maxdist"] - per_run["random"]).groupby(level="dataset").mean().to_numpy()
    half = stats.t.ppf(0.975, 3) * differences.std(ddof=1) * math.sqrt(1 + 1 / 4)
    assert (f"the 95% prediction interval of that difference is {differences.mean() - half:+.3f} to "
            f"{differences.mean() + half:+.3f}") in text and "so it may well come out worse than random." in text


def test_q7_takes_the_best_methods_that_can_run_on_its_models():
    table = synthetic_table()
    chosen, skipped = study_methods.best_methods(table, 2, lambda label: label != "gpa")
    assert chosen == ["lcmd", "maxdist"] and skipped == ["gpa"]
    assert study_methods.best_methods(table, 2, lambda label: True) == (["gpa", "lcmd"], [])


def test_q7_reports_each_models_accuracy_and_coverage_beside_the_differences():
    """Q7's table of the models themselves: random's coverage per dataset and model, averaged over
    steps and seeds, next to its mean log RMSE; the bnn part comes from the Q6 table."""
    bnn = synthetic_table().assign(test_coverage_90=0.9)
    other = synthetic_table(("random", "gpa", "lcmd")).assign(model="dropout")
    other["test_coverage_90"] = np.where(other.sampler == "random", 0.25 + 0.1 * other.seed, 0.0)
    section = study_methods.question_models(other, bnn, "Chosen by hand.", "random", pick="lcmd")
    table = section.markdown[1].split("\n\n", 1)[1].splitlines()
    assert table[0] == ("| dataset | bnn (Q6 runs): mean log RMSE | bnn (Q6 runs): 90% coverage "
                        "| dropout: mean log RMSE | dropout: 90% coverage |")
    for line, dataset in zip(table[2:], DATASETS, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == dataset and cells[2] == "0.90" and cells[4] == "0.35"  # seeds 0-2: 0.25, 0.35, 0.45
    assert "lcmd, against random: bnn (Q6 runs) -0.1" in section.headline
    assert "Random's 90% predictive interval held, averaged over the datasets: bnn (Q6 runs) 0.90, dropout 0.35" \
        in section.answer


@pytest.mark.slow
def test_a_report_without_second_edition_data_says_not_run_yet(tmp_path):
    """Only the first edition's data (as committed): Q6-Q8 and the recommendation are 'not run yet'."""
    import shutil

    shutil.copytree(REPO_ROOT / "docs" / "study_data", tmp_path / "study_data")
    for name in ("q6.csv.gz", "q7.csv.gz", "q8_selection_benchmark.csv"):
        (tmp_path / "study_data" / name).unlink(missing_ok=True)
    assert run_study.main(["--report-only", "--results-dir", str(tmp_path)]) == 0
    report = (tmp_path / "study.md").read_text()
    for question in ("Q6", "Q7", "Q8"):
        part = report.split(f"\n## {question}.", 1)[1].split("\n## ", 1)[0]
        assert "Not run yet." in part
    assert "Not run yet: the recommendation is computed from Q6" in report
    assert run_study.main(["--report-only", "--results-dir", str(tmp_path), "--questions", "q7"]) == 0
    assert run_study.main(["--results-dir", str(tmp_path), "--questions", "q7"]) == 2  # q7 needs q6


@pytest.fixture(scope="module")
def quick_second_edition(tmp_path_factory, sweeps_in_process):
    results = tmp_path_factory.mktemp("study_q6")
    committed = {path: path.read_bytes() for path in (REPO_ROOT / "docs" / "study.md", run_study.HEADLINE_PAGE)}
    with sweeps_in_process():  # the runs of Q6 and Q7 in the test process (the sweep's workers are tested apart)
        assert run_study.main(["--quick", "--results-dir", str(results), "--uci-root", str(UCI_ROOT),
                               "--questions", "q6", "q7", "q8"]) == 0
    return results, committed


@pytest.mark.slow
def test_quick_q6_q7_q8_run_end_to_end(quick_second_edition):
    results, committed = quick_second_edition
    report = (results / "study.md").read_text()
    for question in ("Q6", "Q7", "Q8"):
        part = report.split(f"\n## {question}.", 1)[1].split("\n## ", 1)[0]
        assert "**Answer.**" in part and "Not run yet" not in part and "| " in part
    assert "**Default: " in report and "## Which method when: the recommendation" in report
    for image in ("q6_difference_heatmap.png", "q6_aggregate.png", "q7_models.png", "q8_selection_cost.png"):
        assert (results / "images" / image).stat().st_size > 1000
    q6 = pd.read_csv(results / "study_data" / "q6.csv.gz")
    assert {"random", "gpa", "lcmd", "lcmd_exact"} <= set(q6.sampler)
    q7 = pd.read_csv(results / "study_data" / "q7.csv.gz")
    assert set(q7.model) == {"dropout", "ensemble"} and "lcmd_exact" not in set(q7.sampler)
    assert {"random", "gpa"} <= set(q7.sampler)
    bench = pd.read_csv(results / "study_data" / "q8_selection_benchmark.csv")
    assert {"maxdet", "lrgpa-b1", "lcmd"} <= set(bench.method)
    for path, before in committed.items():
        assert path.read_bytes() == before, f"--quick must not touch {path}"


@pytest.mark.slow
def test_the_quick_q6_aggregate_is_recomputed_from_its_tidy_csv(quick_second_edition):
    results, _ = quick_second_edition
    table = pd.read_csv(results / "study_data" / "q6.csv.gz")
    per_run = np.log(table.test_rmse).groupby([table.dataset, table.sampler, table.seed]).mean().unstack("sampler")
    report = (results / "study.md").read_text()
    q6 = report.split("\n## Q6.", 1)[1].split("\n## ", 1)[0]
    for sampler in per_run.columns.drop("random"):
        means = [(per_run.loc[d, sampler] - per_run.loc[d, "random"]).mean() for d in table.dataset.unique()]
        mean, half = t_interval(means)
        row = next(line for line in q6.splitlines() if line.startswith(f"| {sampler} |"))
        assert f"| {mean:+.3f} ± {half:.3f}" in row, (sampler, row)


@pytest.mark.slow
def test_a_rerun_of_q8_reuses_the_selection_benchmark(quick_second_edition):
    results, _ = quick_second_edition
    path = results / "q8" / "selection_benchmark.csv"
    before = path.read_bytes()
    assert run_study.main(["--quick", "--results-dir", str(results), "--uci-root", str(UCI_ROOT),
                           "--questions", "q8"]) == 0
    assert path.read_bytes() == before


@pytest.mark.slow
def test_every_run_of_the_benchmark_bnn_sweep_is_a_run_of_q6_so_q6_can_reuse_them():
    """Q6 takes the benchmark's runs with --reuse (docs/sweeps.md: runs carried between sweeps): that only
    works while the two configs agree on everything that determines those runs' numbers."""
    from al_bnn_lab.sweep import benchmark_config_from_dict, load_benchmark_config, run_key

    repo = Path(__file__).resolve().parent.parent
    benchmark = load_benchmark_config(repo / "configs" / "benchmark.yaml")
    q6 = benchmark_config_from_dict(run_study.question_sweep("q6", quick=False), "q6")
    q6_runs = {run_key(q6, entry, "bnn", sampler, seed): (entry.name, sampler, seed)
               for entry in q6.datasets for sampler in q6.samplers for seed in q6.seeds}
    shared = {}
    for entry in benchmark.datasets:
        for sampler in benchmark.samplers:
            for seed in benchmark.seeds:
                found = q6_runs.get(run_key(benchmark, entry, "bnn", sampler, seed))
                assert found is not None, f"the benchmark's {entry.name} / {sampler} / seed {seed} is not a Q6 run"
                assert found[0] == entry.name and found[2] == seed
                shared[sampler] = found[1]
    assert shared["lrgpa"] == "gpa" and all(shared[s] == s for s in shared if s != "lrgpa")
    assert len(q6_runs) == 15 * 12 * 10


@pytest.mark.slow
def test_every_run_q7_can_choose_is_a_run_of_the_benchmark_so_q7_can_reuse_them():
    """Q7 (dropout and ensemble models) picks its samplers from Q6's, so every Q6 method that runs on
    those models, on Q7's datasets and seeds, must have the settings of a benchmark run: then the
    benchmark's dropout and ensemble sweep, reused with --reuse, holds all of Q7."""
    from al_bnn_lab.sweep import benchmark_config_from_dict, load_benchmark_config, run_key

    repo = Path(__file__).resolve().parent.parent
    benchmark = load_benchmark_config(repo / "configs" / "benchmark.yaml")
    benchmark_runs = {run_key(benchmark, entry, model, sampler, seed): (entry.name, model, sampler, seed)
                      for entry in benchmark.datasets for model in ("dropout", "ensemble")
                      for sampler in benchmark.samplers for seed in benchmark.seeds}
    q6 = run_study.question_sweep("q6", quick=False)
    raw, _ = run_study.question_settings("q7", quick=False)
    runnable = [s for s in q6["samplers"] if not s.endswith("_exact")]  # the exact kernel is the bnn's alone
    q7 = benchmark_config_from_dict(dict(raw, samplers=runnable, sampler_settings={
        s: q6["sampler_settings"][s] for s in runnable if s in q6["sampler_settings"]}), "q7")
    assert set(q7.models) == {"dropout", "ensemble"} and len(q7.datasets) == 4
    for entry in q7.datasets:
        for model in q7.models:
            for sampler in q7.samplers:
                for seed in q7.seeds:
                    found = benchmark_runs.get(run_key(q7, entry, model, sampler, seed))
                    assert found is not None, f"Q7 run {entry.name} / {model} / {sampler} / {seed}: no benchmark run"
                    assert found[:2] == (entry.name, model) and found[3] == seed
                    assert found[2] == ("lrgpa" if sampler == "gpa" else sampler)
