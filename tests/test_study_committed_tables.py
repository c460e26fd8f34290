"""The committed derived tables of the study (docs/study_data/q6_corrected_verdicts.csv,
q6_recommendation_set.csv, q9_recommendation_set.csv) and the sets docs/study.md names, recomputed
from the committed tidy tables (q6.csv.gz, q9.csv.gz) with numpy, scipy and pandas only: nothing of
al_bnn_lab is imported, so a wrong statistic in the code under test and a stale or hand-edited
committed table both fail here.

Definitions, as docs/study.md states them: a run's statistic is its mean log test RMSE over all its AL
steps; a per-dataset paired test compares a sampler's runs with random's of the same seed (t-test
over seeds); the recommendation set pairs each method's per-dataset mean (over seeds) with the
best's (lowest mean over datasets), t-test over datasets, Holm over these comparisons, and keeps the
best and every method not clearly worse after the correction; the default is, of the members that
run on every model (name not ending in "_exact"), the one with the lowest mean.

Tolerances: the committed CSVs hold 10 significant digits, so numbers are compared to 1e-6
relative (abs 1e-12 for values near 0): far tighter than any change of data or definition, far
looser than the rounding. Verdicts, memberships, bests and defaults are compared exactly."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDY_DATA = REPO_ROOT / "docs" / "study_data"
REPORT = REPO_ROOT / "docs" / "study.md"

ALPHA = 0.05
REL, ABS = 1e-6, 1e-12  # see the module docstring


# -- independent re-implementations ---------------------------------------------------------------------

def per_run_statistic(table: pd.DataFrame) -> pd.Series:
    """Mean log test RMSE over all AL steps of each run, indexed by (dataset, sampler, seed)."""
    assert table.test_rmse.gt(0).all() and table.test_rmse.notna().all()
    log_rmse = np.log(table.test_rmse)
    return log_rmse.groupby([table.dataset, table.sampler, table.seed]).mean()


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, (m - i) * p_(i), kept monotone, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - i) * p[index]))
        adjusted[index] = running
    return adjusted


def textbook_holm(p_values, alpha: float = ALPHA) -> np.ndarray:
    """Holm's procedure as stated: reject while p_(i) <= alpha / (m - i), stop at the first that is not."""
    p = np.asarray(p_values, dtype=float)
    reject = np.zeros(len(p), dtype=bool)
    for i, index in enumerate(np.argsort(p, kind="stable")):
        if p[index] > alpha / (len(p) - i):
            break
        reject[index] = True
    return reject


def signed(mean: float, p: float) -> str:
    return "unclear" if not p < ALPHA else ("lower" if mean < 0 else "higher")


def half_width(values: np.ndarray) -> float:
    return scipy_stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))


def recommendation_set(per_run: pd.Series) -> dict:
    """The set, its comparisons with the best, and its default, from per-run statistics."""
    per_dataset = per_run.groupby(level=["dataset", "sampler"]).mean().unstack("sampler")
    assert per_dataset.notna().all().all()
    means = per_dataset.mean()
    best = means.idxmin()
    rows = []
    for method in [m for m in per_dataset.columns if m != best]:
        difference = (per_dataset[method] - per_dataset[best]).to_numpy()
        rows.append(dict(method=method, datasets=len(difference), difference=difference.mean(),
                         half_width=half_width(difference),
                         p_value=scipy_stats.ttest_rel(per_dataset[method], per_dataset[best]).pvalue))
    comparisons = pd.DataFrame(rows).set_index("method")
    comparisons["p_holm"] = holm_adjusted(comparisons.p_value)
    rejected = textbook_holm(comparisons.p_value.to_numpy())
    comparisons["distinguishable"] = rejected & (comparisons.difference > 0).to_numpy()
    # the adjusted p-values and the textbook procedure agree on every comparison
    assert list(comparisons.p_holm < ALPHA) == list(rejected)
    members = sorted([best, *comparisons.index[~comparisons.distinguishable]], key=lambda m: means[m])
    uncorrected = sorted([best, *comparisons.index[~((comparisons.p_value < ALPHA) & (comparisons.difference > 0))]],
                         key=lambda m: means[m])
    every_model = [m for m in members if not m.endswith("_exact")]
    default = min(every_model or members, key=lambda m: means[m])
    return dict(best=best, members=members, default=default, comparisons=comparisons, means=means,
                uncorrected_members=uncorrected, seeds=per_run.index.get_level_values("seed").nunique())


def names(text: str) -> list[str]:
    """'a, b, c and d' -> ['a', 'b', 'c', 'd']."""
    return [name.strip() for name in text.replace(" and ", ", ").split(",")]


# -- the committed tables, read once --------------------------------------------------------------------

@pytest.fixture(scope="module")
def data():
    q6 = pd.read_csv(STUDY_DATA / "q6.csv.gz")
    q9 = pd.read_csv(STUDY_DATA / "q9.csv.gz")
    q6_runs, q9_runs = per_run_statistic(q6), per_run_statistic(q9)
    paired = q6_runs.loc[q9_runs.index]  # the Q6 (uncalibrated) runs of Q9's dataset, sampler and seed
    assert len(paired) == len(q9_runs) and paired.notna().all()
    return dict(
        q6_runs=q6_runs, q9_runs=q9_runs,
        q6_set=recommendation_set(q6_runs),
        q9_sets=dict(calibrated=recommendation_set(q9_runs), uncalibrated=recommendation_set(paired)),
        verdicts=pd.read_csv(STUDY_DATA / "q6_corrected_verdicts.csv"),
        q6_set_csv=pd.read_csv(STUDY_DATA / "q6_recommendation_set.csv"),
        q9_set_csv=pd.read_csv(STUDY_DATA / "q9_recommendation_set.csv"),
        report=REPORT.read_text(),
    )


# -- 1. Q6's per-dataset verdicts against random, Holm over all and within each method -------------------

def recomputed_verdicts(per_run: pd.Series) -> pd.DataFrame:
    runs = per_run.unstack("sampler")  # index (dataset, seed)
    rows = []
    for method in [m for m in runs.columns if m != "random"]:
        for dataset in runs.index.get_level_values("dataset").unique():
            difference = (runs.loc[dataset, method] - runs.loc[dataset, "random"]).dropna().to_numpy()
            rows.append(dict(method=method, dataset=dataset, count=len(difference), mean=difference.mean(),
                             half_width=half_width(difference),
                             p_value=scipy_stats.ttest_1samp(difference, 0.0).pvalue))
    tests = pd.DataFrame(rows)
    tests["verdict"] = [signed(r.mean, r.p_value) for r in tests.itertuples()]
    tests["p_holm_all"] = holm_adjusted(tests.p_value)
    tests["reject_all"] = textbook_holm(tests.p_value.to_numpy())
    tests["p_holm_method"] = np.nan
    tests["reject_method"] = False
    for _, group in tests.groupby("method"):
        tests.loc[group.index, "p_holm_method"] = holm_adjusted(group.p_value)
        tests.loc[group.index, "reject_method"] = textbook_holm(group.p_value.to_numpy())
    for scope in ("all", "method"):
        tests[f"verdict_holm_{scope}"] = [
            "unclear" if not reject else ("lower" if mean < 0 else "higher")
            for mean, reject in zip(tests["mean"], tests[f"reject_{scope}"], strict=True)]
    return tests.set_index(["method", "dataset"])


def test_q6_corrected_verdicts_csv_is_recomputed(data):
    expected = recomputed_verdicts(data["q6_runs"])
    committed = data["verdicts"].set_index(["method", "dataset"])
    assert len(expected) == 165 and sorted(committed.index) == sorted(expected.index)  # 11 samplers x 15 datasets
    assert (committed["count"] == 10).all()
    for key, row in committed.iterrows():
        want = expected.loc[key]
        assert row["count"] == want["count"], key
        for column in ("mean", "half_width", "p_value", "p_holm_all", "p_holm_method"):
            assert row[column] == pytest.approx(want[column], rel=REL, abs=ABS), (key, column)
        for column in ("verdict", "verdict_holm_all", "verdict_holm_method"):
            assert row[column] == want[column], (key, column)
    # the counts, which the docs state: 9 uncorrected "worse", 3 survive Holm over all 165 tests
    assert (committed.verdict == "higher").sum() == 9 and (committed.verdict_holm_all == "higher").sum() == 3



def test_the_per_dataset_matrix_marks_the_verdicts_that_survive_holm(data):
    """docs/study.md's Q6 per-dataset matrix: a ✓/✗ cell is starred exactly where the recomputed Holm
    correction over all 165 tests still rejects."""
    expected = recomputed_verdicts(data["q6_runs"])
    text = data["report"]
    start = text.index("**Per dataset**: mean log RMSE minus random's")
    lines = [line for line in text[start:].splitlines()[2:] if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    methods = header[3:]
    starred, marked = set(), set()
    for line in lines[1:]:  # the |---| row does not start with "| "
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != len(header):
            break
        for method, cell in zip(methods, cells[3:], strict=True):
            if "✓" in cell or "✗" in cell:
                marked.add((method, cells[0]))
            if cell.endswith("\\*"):
                starred.add((method, cells[0]))
    assert len(marked) == (expected["verdict"] != "unclear").sum()  # every uncorrected verdict is marked
    assert starred == {key for key, row in expected.iterrows() if row["verdict_holm_all"] != "unclear"}
    assert len(starred) == 45

# -- 2. Q6's recommendation set ----------------------------------------------------------------------------

def test_q6_recommendation_set_csv_is_recomputed(data):
    want = data["q6_set"]
    committed = data["q6_set_csv"].set_index("method")
    assert want["best"] == "lcmd_exact" and want["best"] not in committed.index
    assert sorted(committed.index) == sorted(want["comparisons"].index)
    for method, row in committed.iterrows():
        expected = want["comparisons"].loc[method]
        assert row.datasets == expected.datasets == 15
        for column in ("difference", "half_width", "p_value", "p_holm"):
            assert row[column] == pytest.approx(expected[column], rel=REL, abs=ABS), (method, column)
        assert bool(row.distinguishable) == bool(expected.distinguishable), method
    members = [want["best"], *committed.index[~committed.distinguishable.astype(bool)]]
    assert sorted(members) == sorted(want["members"])
    # the report's paragraph names the same set (best first, by mean), the uncorrected set and the default
    match = re.search(r"with the method of the lowest mean log RMSE over all AL steps \((\S+)\), with Holm's "
                      r"correction over these (\d+) comparisons, (\d+) methods cannot be told apart from it: "
                      r"(.+?); clearly worse than it: (.+?) \(without the correction the set would be (.+?)\)\. "
                      r"\*\*Default inside the set: (\S+)\*\*", data["report"])
    assert match, "the Q6 recommendation paragraph is not in docs/study.md"
    best, family, count, stated, worse, uncorrected, default = match.groups()
    assert best == want["best"] and int(family) == len(want["comparisons"]) and int(count) == len(want["members"])
    assert names(stated) == want["members"]
    assert sorted(names(worse)) == sorted(want["comparisons"].index[want["comparisons"].distinguishable])
    assert names(uncorrected) == want["uncorrected_members"]
    assert default == want["default"] == "lcmd"


# -- 3. Q9's sets, calibrated (q9.csv.gz) and uncalibrated (the paired q6.csv.gz runs) -------------------

SIDES = ("uncalibrated", "calibrated")


def test_q9_recommendation_set_csv_is_recomputed(data):
    committed = data["q9_set_csv"].set_index("method")
    sets = data["q9_sets"]
    assert sorted(committed.index) == sorted(sets["calibrated"]["means"].index)
    for side in SIDES:
        want = sets[side]
        assert want["seeds"] == 2
        for method, row in committed.iterrows():
            assert bool(row[f"best_{side}"]) == (method == want["best"]), (side, method)
            assert bool(row[f"in_set_{side}"]) == (method in want["members"]), (side, method)
            assert bool(row[f"default_{side}"]) == (method == want["default"]), (side, method)
            if method == want["best"]:
                assert math.isnan(row[f"difference_{side}"]) and not row[f"distinguishable_{side}"]
                continue
            expected = want["comparisons"].loc[method]
            for column in ("difference", "half_width", "p_value", "p_holm"):
                assert row[f"{column}_{side}"] == pytest.approx(expected[column], rel=REL, abs=ABS), \
                    (side, method, column)
            assert bool(row[f"distinguishable_{side}"]) == bool(expected.distinguishable), (side, method)
    # Q6's set restricted to Q9's samplers: Q9 runs all of Q6's, so it is Q6's set itself
    q6 = data["q6_set"]
    assert set(committed.index) == set(q6["means"].index)
    for method, row in committed.iterrows():
        assert bool(row.in_set_q6) == (method in q6["members"]), method
        assert bool(row.best_q6) == (method == q6["best"]) and bool(row.default_q6) == (method == q6["default"])


def test_q9_sets_named_in_the_report_are_recomputed(data):
    sets, q6, report = data["q9_sets"], data["q6_set"], data["report"]
    match = re.search(r"On Q9's runs \((\d+) datasets, (\d+) paired seeds, (\d+) samplers\) the recommendation set "
                      r"is (.+?) \(best (\S+), default (\S+)\) and on Q6's runs of the same seeds (.+?) \(best (\S+), "
                      r"default (\S+)\); Q6's set restricted to these samplers \((\d+) seeds\) is (.+?) "
                      r"\(its best (\S+); its default (\S+)\)\.", report)
    assert match, "the Q9 sentence on the recommendation set is not in docs/study.md"
    (datasets, seeds, samplers, calibrated, best_c, default_c, uncalibrated, best_u, default_u, q6_seeds, q6_members,
     q6_best, q6_default) = match.groups()
    assert (int(datasets), int(seeds), int(samplers)) == (15, 2, len(sets["calibrated"]["means"]))
    # members are listed best first, by mean over datasets, as the recomputation orders them
    assert names(calibrated) == sets["calibrated"]["members"]
    assert (best_c, default_c) == (sets["calibrated"]["best"], sets["calibrated"]["default"])
    assert names(uncalibrated) == sets["uncalibrated"]["members"]
    assert (best_u, default_u) == (sets["uncalibrated"]["best"], sets["uncalibrated"]["default"])
    assert int(q6_seeds) == q6["seeds"] == 10
    assert names(q6_members) == q6["members"] and (q6_best, q6_default) == (q6["best"], q6["default"])
    # the facts the section's paragraph draws from them
    assert sets["calibrated"]["best"] == "maxdist_exact" and sets["uncalibrated"]["best"] == "lcmd_exact"
    extra = [m for m in sets["calibrated"]["members"] if m not in sets["uncalibrated"]["members"]]
    assert extra == ["random"]
    assert (f"The Q9 (calibrated) set has {', '.join(extra)} beyond the members of the Q6 (uncalibrated, Q9's "
            f"seeds) set; its "
            f"default ({sets['calibrated']['default']}) is the same; its best is {sets['calibrated']['best']}, not "
            f"{sets['uncalibrated']['best']}.") in report


def test_q9_table_in_the_report_is_recomputed(data):
    """The section's table: each side's difference to its best with the interval, Holm p and membership."""
    sets, q6, report = data["q9_sets"], data["q6_set"], data["report"]
    header = (f"| method | Q6 (uncalibrated, Q9's seeds): difference to {sets['uncalibrated']['best']} (95% interval "
              f"over datasets) | Holm verdict | in the set | Q9 (calibrated): difference to "
              f"{sets['calibrated']['best']}")
    start = report.index(header)
    lines = report[start:].split("\n\n")[0].splitlines()[2:]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}
    assert sorted(rows) == sorted(sets["calibrated"]["means"].index)
    for method, cells in rows.items():
        for side, (difference, verdict, in_set) in zip(SIDES, (cells[0:3], cells[3:6]), strict=True):
            want = sets[side]
            member = "yes" if method in want["members"] else "no"
            assert in_set == member + (" (default)" if method == want["default"] else ""), (side, method)
            if method == want["best"]:
                assert (difference, verdict) == ("(the best)", ""), (side, method)
                continue
            row = want["comparisons"].loc[method]
            # printed to 4 and 3 decimals: compared as printed from the recomputed numbers
            assert difference == f"{row.difference:+.4f} ± {row.half_width:.4f}", (side, method)
            label = "clearly worse" if row.distinguishable else "within noise"
            assert verdict == f"{label} (Holm p {row.p_holm:.3f})", (side, method)
        q6_cell = "yes" if method in q6["members"] else "no"
        q6_cell += " (best)" if method == q6["best"] else " (default)" if method == q6["default"] else ""
        assert cells[6] == q6_cell, method
