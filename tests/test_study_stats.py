"""al_bnn_lab.stats on hand-computed cases, one interval convention for every helper of the lab,
and the study's scrutiny of Q6 (the aggregate, Holm-corrected verdicts, the recommendation set,
its leave-one-dataset-out stability, three statistics) recomputed from the committed tidy table
without the code under test."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from al_bnn_lab import bench_models, plotting, stats, study_report, uci_protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDY_DATA = REPO_ROOT / "docs" / "study_data"


# -- hand-computed cases --------------------------------------------------------------------------------

def test_interval_of_the_mean_and_prediction_interval_by_hand():
    # [1, 2, 4]: mean 7/3, sd sqrt(7/3), t(0.975, 2) = 4.302653
    mean, half = stats.mean_interval([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert half == pytest.approx(4.302653 * math.sqrt(7 / 3) / math.sqrt(3), rel=1e-6)
    low, high = stats.prediction_interval([1.0, 2.0, 4.0])
    assert (high - low) / 2 == pytest.approx(4.302653 * math.sqrt(7 / 3) * math.sqrt(1 + 1 / 3), rel=1e-6)
    assert stats.interval_bounds([1.0, 2.0, 4.0]) == pytest.approx((mean, mean - half, mean + half))
    assert stats.mean_interval([1.0, np.nan, 2.0, np.inf, 4.0]) == (mean, half)  # non-finite values dropped


def test_the_single_value_convention():
    assert all(math.isnan(v) for v in stats.mean_interval([]))
    mean, half = stats.mean_interval([3.0])
    assert mean == 3.0 and math.isnan(half)
    assert math.isnan(stats.standard_error([3.0])) and math.isnan(stats.paired_p_value([3.0]))
    assert stats.verdict([-3.0]) == "unclear"
    assert stats.mean_interval([2.0, 2.0]) == (2.0, 0.0)  # no spread: a zero-width interval ...
    assert stats.paired_p_value([2.0, 2.0]) == 0.0 and stats.verdict([2.0, 2.0]) == "higher"  # ... which excludes 0
    assert stats.paired_p_value([0.0, 0.0]) == 1.0 and stats.verdict([0.0, 0.0]) == "unclear"


def test_every_helper_of_the_lab_follows_the_convention():
    """Before, plotting gave a zero half-width for one run while the study and bench_models gave nan,
    and the UCI protocol computed its own standard errors; now all take stats' numbers."""
    for values in ([3.0], [1.0, 2.0, 4.0], [2.0, 2.0]):
        mean, half = stats.mean_interval(values)
        assert study_report.interval(values) == pytest.approx((mean, half), nan_ok=True)
        assert bench_models.t_interval(np.array(values)) == pytest.approx((mean, mean - half, mean + half),
                                                                          nan_ok=True)
        centre, band = plotting.mean_and_band(np.array(values)[:, None])
        assert centre[0] == pytest.approx(mean)
        assert band[0] == pytest.approx(half, nan_ok=True)  # before: 0 from one run where the study gave nan
        table = pd.DataFrame({"dataset": "d", "model": "bnn", "split": range(len(values)), "rmse": values,
                              "log_likelihood": values, "coverage_90": values, "coverage_50": values,
                              "fit_seconds": 1.0})
        summary = uci_protocol.summarise(table).iloc[0]
        expected = stats.standard_error(values)
        assert summary["rmse_se"] == pytest.approx(expected, nan_ok=True)


def test_the_paired_test_agrees_with_scipy_and_with_the_interval():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.3, 0.6, 1.0, -0.8):
        differences = rng.normal(shift, 1.0, size=8)
        p_value = stats.paired_p_value(differences)
        assert p_value == pytest.approx(scipy_stats.ttest_1samp(differences, 0.0).pvalue)
        assert (p_value < 0.05) == (stats.verdict(differences) != "unclear")


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept monotone: 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = stats.holm([0.01, np.nan, 0.04])  # a test that could not be made does not count
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert stats.signed_verdict(-0.2, 0.01) == "lower" and stats.signed_verdict(0.2, 0.01) == "higher"
    assert stats.signed_verdict(0.2, 0.06) == "unclear"


def test_paired_tests_correct_all_together_and_within_each_method():
    differences = {("a", "d1"): [-1.0, -1.1, -0.9], ("a", "d2"): [0.1, -0.2, 0.3],
                   ("b", "d1"): [0.5, 0.45, 0.55], ("b", "d2"): [-0.04, -0.05, -0.03]}
    tests = stats.paired_tests(differences).set_index(["method", "dataset"])
    p = tests["p_value"]
    assert tests.loc[("a", "d1"), "p_holm_method"] == pytest.approx(min(1, 2 * p[("a", "d1")]))
    ordered = p.sort_values()
    assert tests.loc[ordered.index[0], "p_holm_all"] == pytest.approx(4 * ordered.iloc[0])
    assert tests.loc[("a", "d1"), "verdict"] == "lower" and tests.loc[("b", "d1"), "verdict"] == "higher"
    counts = stats.verdict_counts(tests.reset_index(), "verdict").set_index("method")
    assert counts.loc["a", "lower"] == 1 and counts.loc["a", "unclear"] == 1


def _set_table() -> pd.DataFrame:
    """Four datasets: A is best, B ties with it, C is far worse, D is worse with p = 0.03 alone."""
    a = np.array([0.0, 0.1, 0.2, 0.3])
    return pd.DataFrame({"A": a, "B": a + [0.1, -0.1, 0.05, -0.04], "C": a + [1.0, 1.1, 0.9, 1.0],
                         "D": a + [0.25, 0.05, 0.2, 0.1]}, index=["d1", "d2", "d3", "d4"])


def test_the_recommendation_set_by_hand():
    table = _set_table()
    p_d = scipy_stats.ttest_1samp(table["D"] - table["A"], 0.0).pvalue
    p_c = scipy_stats.ttest_1samp(table["C"] - table["A"], 0.0).pvalue
    p_b = scipy_stats.ttest_1samp(table["B"] - table["A"], 0.0).pvalue
    assert p_c < 0.05 / 3 and 0.05 / 2 < p_d < 0.05 and p_b > 0.05  # what the construction is for
    holm_set = stats.recommendation_set(table)
    assert holm_set.best == "A" and holm_set.members == ["A", "B", "D"] and holm_set.excluded == ["C"]
    plain = stats.recommendation_set(table, correction="none")
    assert plain.members == ["A", "B"] and plain.excluded == ["D", "C"]
    assert stats.recommendation_set(table, candidates=["B", "C", "D"]).best == "B"
    with pytest.raises(ValueError, match="correction"):
        stats.recommendation_set(table, correction="bonferroni")


def test_the_default_inside_the_set():
    every_model = lambda method: not method.endswith("_exact")  # noqa: E731
    assert stats.choose_default(["a_exact", "b", "c"], every_model, {"b": 2.0, "c": 1.0, "a_exact": 0.1}) == (
        "c", "runs on every model, then the lowest selection cost")
    assert stats.choose_default(["a_exact", "b", "c"], every_model)[0] == "b"  # no cost: the set's order
    assert stats.choose_default(["a_exact", "b_exact"], every_model, {"b_exact": 1.0})[0] == "b_exact"
    assert stats.choose_default(["a_exact", "b"], every_model, {"a_exact": 0.1})[0] == "b"
    with pytest.raises(ValueError):
        stats.choose_default([], every_model)


def test_leave_one_out_and_rankings_by_hand():
    outcomes = stats.leave_one_out(["d1", "d2", "d3"], lambda subset: "x" if "d1" in subset else "y")
    assert outcomes == {"x": ["d2", "d3"], "y": ["d1"]}
    ranks = stats.rankings({"s1": pd.Series({"a": 1.0, "b": 2.0, "c": 3.0}),
                            "s2": pd.Series({"a": 1.0, "b": 3.0, "c": 2.0})})
    assert list(ranks.index) == ["a", "b", "c"] and not stats.rankings_agree(ranks)
    assert stats.rank_moves(ranks, "s1") == {"s2": [("b", 2, 3), ("c", 3, 2)]}
    assert stats.rankings_agree(ranks[["s1"]])


def test_run_scalars_three_statistics_by_hand():
    table = pd.DataFrame(dict(dataset="d", sampler="s", seed=0, pool_size=100, n_train=[10, 20, 40],
                              test_rmse=[np.e**3, np.e**2, np.e], test_log_likelihood=[-3.0, -2.0, -1.0]))
    row = study_report.run_scalars(table).iloc[0]
    assert row.mean_log_rmse == pytest.approx(2.0) and row.mean_log_rmse_after_initial == pytest.approx(1.5)
    assert row.final_log_rmse == pytest.approx(1.0)
    assert row.log_rmse_auc == pytest.approx(((3 + 2) / 2 * 10 + (2 + 1) / 2 * 20) / 30)


# -- the committed second edition, recomputed -----------------------------------------------------------

def textbook_holm(p_values: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Holm's procedure as stated: sort ascending; reject while p_(i) <= alpha / (m - i) (i from 0),
    stop at the first that is not."""
    order = np.argsort(p_values)
    reject = np.zeros(len(p_values), dtype=bool)
    for i, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - i):
            break
        reject[index] = True
    return reject


@pytest.fixture(scope="module")
def q6():
    table = pd.read_csv(STUDY_DATA / "q6.csv.gz")
    log_rmse = np.log(table.test_rmse)
    per_run = log_rmse.groupby([table.dataset, table.sampler, table.seed]).mean().unstack("sampler")
    last = table.loc[table.groupby(["dataset", "sampler", "seed"]).al_iter.idxmax()]
    final = np.log(last.set_index(["dataset", "seed", "sampler"]).test_rmse).unstack("sampler")
    datasets = list(dict.fromkeys(table.dataset))
    # Q8's cost: selection seconds per AL step after the initial one, on the largest pool
    steps = table[(table.al_iter > 0) & (table.pool_size == table.pool_size.max())]
    cost = steps.groupby("sampler").selection_seconds.mean().to_dict()
    result = study_report.method_statistics(table, cost=cost, cost_source=f"Q8 on {steps.dataset.iloc[0]}")
    return dict(table=table, per_run=per_run, final=final, datasets=datasets, cost=cost, result=result)


def independent_tests(per_run: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    rows = []
    for method in [m for m in per_run.columns if m != "random"]:
        for dataset in datasets:
            difference = (per_run.loc[dataset, method] - per_run.loc[dataset, "random"]).to_numpy()
            result = scipy_stats.ttest_1samp(difference, 0.0)
            rows.append(dict(method=method, dataset=dataset, mean=difference.mean(), p=result.pvalue))
    return pd.DataFrame(rows)


def test_the_committed_aggregate_is_recomputed(q6):
    committed = pd.read_csv(STUDY_DATA / "q6_aggregate.csv").set_index("sampler")
    per_dataset = q6["per_run"].groupby(level="dataset").mean()
    assert len(committed) == 12 and len(per_dataset) == 15
    for method in committed.index:
        assert committed.loc[method, "mean_log_rmse"] == pytest.approx(per_dataset[method].mean())
        if method == "random":
            continue
        differences = per_dataset[method] - per_dataset["random"]
        low, high = scipy_stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(),
                                           scale=scipy_stats.sem(differences))
        assert committed.loc[method, "log_rmse_difference"] == pytest.approx(differences.mean())
        assert committed.loc[method, "interval"] == pytest.approx((high - low) / 2)
    result = q6["result"]
    assert list(result.ranks.index) == list(committed.index)  # the same order, best first
    assert result.means["mean_log_rmse"].mean().to_dict() == pytest.approx(committed["mean_log_rmse"].to_dict())


def test_the_holm_corrected_verdicts_are_the_issues(q6):
    expected = independent_tests(q6["per_run"], q6["datasets"])
    worse = (expected.p < 0.05) & (expected["mean"] > 0)
    better = (expected.p < 0.05) & (expected["mean"] < 0)
    survive = textbook_holm(expected.p.to_numpy())
    assert worse.sum() == 9 and len(expected) == 165
    assert sorted(expected[worse & survive].dataset) == ["airfoil", "kin8nm", "parkinsons-telemonitoring"]
    assert set(expected[worse & survive].method) == {"mcdue"}
    lcmd_exact = expected.method == "lcmd_exact"
    assert (better & lcmd_exact).sum() == 15 and (better & lcmd_exact & survive).sum() == 6
    within = textbook_holm(expected[lcmd_exact].p.to_numpy())
    assert (better[lcmd_exact] & within).sum() == 11
    tests = q6["result"].tests["mean_log_rmse"].set_index(["method", "dataset"])
    for row in expected.itertuples():
        code = tests.loc[(row.method, row.dataset)]
        assert code.p_value == pytest.approx(row.p)
        assert (code.verdict_holm_all != "unclear") == survive[row.Index]
    sentence = study_report.corrected_verdicts_sentence(q6["result"], "lcmd_exact")
    assert sentence.startswith('Of the 9 uncorrected "clearly worse than random" verdicts, 3 survive Holm')
    assert "clearly better than random on 6 of 15 datasets after it (11 if corrected within the method only, 15" \
        in sentence


def test_the_recommendation_set_and_its_stability(q6):
    per_dataset = q6["per_run"].groupby(level="dataset").mean().loc[q6["datasets"]]
    best = per_dataset.mean().idxmin()
    assert best == "lcmd_exact"
    others = [m for m in per_dataset.columns if m != best]
    p = np.array([scipy_stats.ttest_rel(per_dataset[m], per_dataset[best]).pvalue for m in others])
    worse_than_best = textbook_holm(p) & (per_dataset[others].mean() > per_dataset[best].mean()).to_numpy()
    members = {best, *[m for m, out in zip(others, worse_than_best, strict=True) if not out]}
    chosen = q6["result"].sets["mean_log_rmse"]
    assert set(chosen.members) == members and chosen.best == best
    assert {"maxdist_exact", "lcmd", "bait"} <= members and "gpa" not in members and "random" not in members
    # the issue's numbers: lcmd_exact against maxdist_exact -0.0005 +- 0.0078 (p = 0.88), against lcmd p = 0.17
    row = chosen.comparisons.set_index("method").loc["maxdist_exact"]
    assert round(-row.difference, 4) == -0.0005 and round(row.half_width, 4) == 0.0078
    assert round(row.p_value, 2) == 0.88
    assert round(chosen.comparisons.set_index("method").loc["lcmd", "p_value"], 2) == 0.17
    # the second edition's rule, leaving one dataset out at a time, recomputed here
    verdicts = independent_tests(q6["per_run"], q6["datasets"])
    candidates = [m for m in per_dataset.columns if m != "random"]
    picks = {}
    for left_out in q6["datasets"]:
        kept = verdicts[verdicts.dataset != left_out]
        worse = kept[(kept.p < 0.05) & (kept["mean"] > 0)].groupby("method").size().reindex(candidates,
                                                                                              fill_value=0)
        means = per_dataset.drop(index=left_out).mean()
        fewest = [m for m in candidates if worse[m] == worse.min()]
        picks.setdefault(min(fewest, key=lambda m: means[m]), []).append(left_out)
    stability = q6["result"].rule_pick_stability
    assert {k: sorted(v) for k, v in picks.items()} == {k: sorted(v) for k, v in stability.items()}
    assert len(picks["lcmd_exact"]) == 9 and picks["bait"] == ["energy"]
    assert sorted(picks["maxdist_exact"]) == ["airfoil", "bike-sharing", "concrete", "cpu-act", "kin8nm"]


def test_three_statistics_side_by_side(q6):
    final = q6["final"]
    per_dataset = final.groupby(level="dataset").mean()
    order = list(per_dataset.mean().sort_values().index)
    assert order.index("kmeanspp_exact") == 2 and order.index("lcmd") == 3 and order.index("bait") == 4
    ranks = q6["result"].ranks
    assert int(ranks.loc["kmeanspp_exact", "final_log_rmse"]) == 3 and int(ranks.loc["kmeanspp_exact",
                                                                                     "mean_log_rmse"]) == 5
    tests = q6["result"].tests["final_log_rmse"]
    for method, dataset in (("maxdist", "airfoil"), ("maxdist", "kin8nm")):
        difference = (final.loc[dataset, method] - final.loc[dataset, "random"]).to_numpy()
        assert scipy_stats.ttest_1samp(difference, 0.0).pvalue < 0.05 and difference.mean() > 0
    assert sorted(tests[(tests.method == "maxdist") & (tests.verdict == "higher")].dataset) == ["airfoil", "kin8nm"]
    assert ((tests.method == "lcmd_exact") & (tests.verdict == "lower")).sum() == 10
    assert not stats.rankings_agree(ranks)
    sentence = study_report.statistics_sentence(q6["result"])
    assert sentence.startswith("The rankings do not agree") and "kmeanspp_exact moves from 5 to 3" in sentence


def test_the_committed_report_states_the_scrutiny_and_not_the_overstatements(q6):
    report = (REPO_ROOT / "docs" / "study.md").read_text()
    result = q6["result"]
    for sentence in (study_report.corrected_verdicts_sentence(result, "lcmd_exact"),
                     study_report.statistics_sentence(result), study_report.scrutiny_sentence(result),
                     *study_report.recommendation_set_markdown(result)):
        assert sentence in report
    chosen = result.sets["mean_log_rmse"]
    general = [m for m in chosen.members if not m.endswith("_exact")]  # those that run on every model
    assert chosen.default == general[0]  # the set is ordered by mean: the most accurate that runs everywhere
    assert f"**Default inside the set: {chosen.default}**" in report
    assert "expected to be no worse than" not in report
    assert "On none of the 15 datasets is GPA the better choice" not in report
    assert "within noise on 8, with a lower point estimate on 3 of them" in report


def test_variant_rankings_are_ready_for_q9():
    """Two model variants of the same runs: the second swaps the two samplers' curves on every
    seed, so the ranks swap and the best changes."""
    rows = []
    for dataset in ("d1", "d2", "d3"):
        for seed in range(3):
            for sampler, level in (("random", 1.0), ("a", 0.8), ("b", 0.9)):
                for step, n_train in enumerate((10, 20)):
                    rows.append(dict(dataset=dataset, sampler=sampler, seed=seed, pool_size=100, n_train=n_train,
                                     al_iter=step, test_rmse=level * (1 + 0.01 * seed) / (1 + step),
                                     test_log_likelihood=-1.0))
    first = pd.DataFrame(rows)
    second = first.assign(sampler=first.sampler.map({"a": "b", "b": "a", "random": "random"}))
    ranks, sets = study_report.variant_rankings({"calibrated": first, "uncalibrated": second})
    assert ranks.loc["a", "calibrated"] == 1 and ranks.loc["a", "uncalibrated"] == 2
    assert sets["calibrated"].best == "a" and sets["uncalibrated"].best == "b"
    text = study_report.variant_rankings_markdown(ranks, sets)
    assert "The rankings do not agree; the best is not the same" in text
