"""Issue #35: Q9 rechecks the study's recommendation set on the calibrated runs. On synthetic Q9
(calibrated) and Q6 (uncalibrated) tables with known sets: each side's set is computed on the paired
runs only (Q9's samplers and seeds, and only the runs Q9 has), with Q6's procedure (mean log RMSE,
paired over datasets with the best, Holm over the comparisons, default: runs on every model, then the
lowest mean), and compared with Q6's committed set restricted to Q9's samplers."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from al_bnn_lab import stats, study_report
from al_bnn_lab import study as run_study

DATASETS = [f"d{j}" for j in range(6)]
BASE = [0.0, 0.3, -0.2, 0.5, 0.1, -0.4]  # lcmd's log RMSE per dataset, on both sides
NOISE = [0.02, -0.015, 0.01, -0.02, 0.015, -0.005]  # maxdist - lcmd, calibrated: within noise
MISSING = ("d0", "maxdist", 1)  # a run Q9 lacks: its Q6 run is not paired


def log_rmse(side: str, dataset: int, sampler: str, seed: int) -> float:
    """Known answers: random is clearly worse than lcmd on both sides, maxdist only uncalibrated.
    Traps that only a wrong restriction sees: Q6's seed 2 (not Q9's) and Q6's lcmd_exact (not a Q9
    sampler) are far better than everything, and so is Q6's run of MISSING."""
    value = BASE[dataset] + 0.001 * seed
    if sampler == "random":
        value += 0.3 + 0.01 * (dataset % 2)
    elif sampler == "maxdist":
        value += NOISE[dataset] if side == "calibrated" else 0.2 + 0.01 * (dataset % 3)
    elif sampler == "lcmd_exact":
        value -= 10.0
    if side == "uncalibrated" and sampler == "maxdist" and (seed == 2 or (DATASETS[dataset], sampler, seed) == MISSING):
        value -= 6.0
    return value


def table(side: str) -> pd.DataFrame:
    samplers = ["random", "lcmd", "maxdist"] + (["lcmd_exact"] if side == "uncalibrated" else [])
    seeds = [0, 1] + ([2] if side == "uncalibrated" else [])
    rows = []
    for j, dataset in enumerate(DATASETS):
        for seed in seeds:
            for sampler in samplers:
                if side == "calibrated" and (dataset, sampler, seed) == MISSING:
                    continue
                rmse = math.exp(log_rmse(side, j, sampler, seed))
                for step in range(2):
                    rows.append(dict(dataset=dataset, model="bnn", sampler=sampler, seed=seed, al_iter=step,
                                     n_train=10 + 5 * step, pool_size=100, test_rmse=rmse,
                                     test_log_likelihood=-1.0 - 0.1 * seed - 0.01 * j,
                                     test_coverage_90=0.8 if side == "uncalibrated" else 0.9))
    return pd.DataFrame(rows)


# Q6's committed set, as the report holds it (its best is not a Q9 sampler)
Q6_SET = stats.RecommendationSet("lcmd_exact", ["lcmd_exact", "lcmd", "maxdist"], ["random"], pd.DataFrame(),
                                 default="lcmd")


def expected(side: str) -> dict:
    """Recomputed without study_report: per dataset the mean log RMSE over the paired seeds, each
    method's difference to the best over datasets, its t-test and Holm's correction."""
    means = {}
    for sampler in ("random", "lcmd", "maxdist"):
        means[sampler] = np.array([np.mean([log_rmse(side, j, sampler, seed) for seed in (0, 1)
                                            if (d, sampler, seed) != MISSING]) for j, d in enumerate(DATASETS)])
    best = min(means, key=lambda m: means[m].mean())
    others = [m for m in means if m != best]
    result = {}
    for method in others:
        difference = means[method] - means[best]
        half = scipy_stats.t.ppf(0.975, len(difference) - 1) * difference.std(ddof=1) / math.sqrt(len(difference))
        result[method] = dict(difference=difference.mean(), half_width=half,
                              p_value=scipy_stats.ttest_1samp(difference, 0.0).pvalue)
    ordered = sorted(others, key=lambda m: result[m]["p_value"])
    running = 0.0
    for rank, method in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * result[method]["p_value"]))
        result[method]["p_holm"] = running
    return dict(best=best, comparisons=result)


def section(every_model=None) -> study_report.Section:
    return study_report.question_calibration(table("uncalibrated"), table("calibrated"), "random",
                                             reference=Q6_SET, every_model=every_model)


def test_each_sides_set_is_recomputed_on_the_paired_runs_and_compared_with_q6s():
    result = section()
    facts = result.facts["recommendation_set"]
    assert facts["calibrated"] == dict(members=["lcmd", "maxdist"], best="lcmd", default="lcmd")
    assert facts["uncalibrated"] == dict(members=["lcmd"], best="lcmd", default="lcmd")
    assert facts["runs"] == 35 and facts["seeds"] == 2 and facts["datasets"] == 6
    assert facts["q6"]["restricted"] == dict(members=["lcmd", "maxdist"], best=None, default="lcmd")
    assert facts["q6"]["seeds"] == 3 and facts["q6"]["samplers"] == 4
    assert ("On Q9's runs (6 datasets, 2 paired seeds, 3 samplers) the recommendation set is lcmd and maxdist "
            "(best lcmd, default lcmd) and on Q6's runs of the same seeds lcmd (best lcmd, default lcmd); Q6's set "
            "restricted to these samplers (3 seeds) is lcmd and maxdist (its best lcmd_exact, which Q9 does not "
            "run; its default lcmd).") in result.answer
    paragraph = next(block for block in result.markdown if block.startswith("**The recommendation rechecked"))
    assert "Q9 has 2 paired seeds, fewer than Q6's 3, and 3 of Q6's 4 samplers" in paragraph
    assert "the family is 2 comparisons, not 3" in paragraph
    assert ("The Q9 (calibrated) set has maxdist beyond the members of the Q6 (uncalibrated, Q9's seeds) set; its "
            "best (lcmd) and its default (lcmd)") in paragraph
    assert ("the Q6 (uncalibrated, Q9's seeds) set lacks maxdist of the members of Q6's full set; its default (lcmd) "
            "is the same; its best is lcmd (that of Q6's full set is not among these samplers)") in paragraph


def test_with_every_one_of_q6s_samplers_the_scope_says_so_and_names_no_smaller_family():
    reference = stats.RecommendationSet("lcmd", ["lcmd", "maxdist"], ["random"], pd.DataFrame(), default="lcmd")
    calibrated, uncalibrated = table("calibrated"), table("uncalibrated")
    uncalibrated = uncalibrated[uncalibrated["sampler"].isin(set(calibrated["sampler"]))]  # Q6 runs no other
    result = study_report.question_calibration(uncalibrated, calibrated, "random", reference=reference)
    paragraph = next(block for block in result.markdown if block.startswith("**The recommendation rechecked"))
    assert ("and all of Q6's 3 samplers: each dataset's mean is over 2 seeds, so these sets are a coarser check "
            "than Q6's, not a replacement.") in paragraph
    assert "the family is" not in paragraph


def test_the_table_holds_each_sides_comparisons_with_its_best():
    result = section()
    data = result.tables["q9_recommendation_set"].set_index("method")
    assert list(data.index) == ["random", "lcmd", "maxdist"]
    for side in study_report.SIDES:
        want = expected(side)
        assert want["best"] == "lcmd" and data.loc["lcmd", f"best_{side}"]
        assert math.isnan(data.loc["lcmd", f"difference_{side}"])
        for method, numbers in want["comparisons"].items():
            for column, value in numbers.items():
                assert data.loc[method, f"{column}_{side}"] == pytest.approx(value, rel=1e-9, abs=1e-12), \
                    (side, method, column)
    assert list(data["in_set_calibrated"]) == [False, True, True]
    assert list(data["in_set_uncalibrated"]) == [False, True, False]
    assert list(data["distinguishable_uncalibrated"]) == [True, False, True]
    assert list(data["in_set_q6"]) == [False, True, True] and not data["best_q6"].any()
    assert list(data["default_q6"]) == [False, True, False]
    rows = {line.split(" | ")[0].lstrip("| "): [c.strip() for c in line.strip("|").split("|")]
            for block in result.markdown if "difference to lcmd" in block for line in block.splitlines()}
    maxdist = expected("calibrated")["comparisons"]["maxdist"]
    assert rows["maxdist"][4:8] == [f"{maxdist['difference']:+.4f} ± {maxdist['half_width']:.4f}",
                                    f"within noise (Holm p {maxdist['p_holm']:.3f})", "yes", "yes"]
    assert rows["maxdist"][2:4] == [rows["maxdist"][2], "no"] and rows["maxdist"][2].startswith("clearly worse")
    assert rows["lcmd"][1:] == ["(the best)", "", "yes (default)", "(the best)", "", "yes (default)", "yes (default)"]
    assert "in Q6's set (4 samplers, 3 seeds)" in rows["method"]


def test_the_traps_bite_the_set_without_the_restriction_would_differ():
    """The fixture's traps matter: on all of Q6's rows the best is lcmd_exact, on Q6's rows of Q9's
    samplers but all its seeds (or with the run Q9 lacks) maxdist is the best."""
    q6 = table("uncalibrated")
    assert study_report.method_statistics(q6).sets["mean_log_rmse"].best == "lcmd_exact"
    samplers = q6[q6.sampler != "lcmd_exact"]
    assert study_report.method_statistics(samplers).sets["mean_log_rmse"].best == "maxdist"
    seeds = samplers[samplers.seed < 2]
    assert study_report.method_statistics(seeds).sets["mean_log_rmse"].best == "maxdist"
    paired = seeds[~((seeds.dataset == MISSING[0]) & (seeds.sampler == MISSING[1]) & (seeds.seed == MISSING[2]))]
    assert study_report.method_statistics(paired).sets["mean_log_rmse"].members == ["lcmd"]


def test_the_default_follows_the_criterion_passed_in():
    facts = section(every_model=lambda method: method != "lcmd").facts["recommendation_set"]
    assert facts["calibrated"]["default"] == "maxdist" and facts["uncalibrated"]["default"] == "lcmd"


def test_the_study_passes_q6s_set_and_writes_the_table_as_data():
    uncalibrated, calibrated = table("uncalibrated"), table("calibrated")
    scrutiny = study_report.method_statistics(uncalibrated)
    result = run_study._calibration_section({"q6": uncalibrated, "q9": calibrated}, None, False, scrutiny)
    facts = result.facts["recommendation_set"]
    assert facts["q6"]["best"] == "lcmd_exact" and facts["q6"]["members"] == scrutiny.sets["mean_log_rmse"].members
    numbers = run_study.StudyNumbers({}, {}, {}, {"q9": result}, None, None, pd.DataFrame())
    assert run_study.data_tables(numbers)["q9_recommendation_set"] is result.tables["q9_recommendation_set"]


def test_no_set_without_the_baseline():
    uncalibrated, calibrated = table("uncalibrated"), table("calibrated")
    result = study_report.question_calibration(uncalibrated, calibrated[calibrated.sampler != "random"], "random",
                                               reference=Q6_SET)
    assert "recommendation_set" not in result.facts and "q9_recommendation_set" not in result.tables
    assert "they have no random runs" in result.markdown[1]
