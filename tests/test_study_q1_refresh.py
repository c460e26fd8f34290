"""Q1 refreshed on Q6's runs (run_study.with_recipe_refresh): the mapping of Q1's samplers onto
Q6's, what happens without one of them, and the committed report's refreshed table recomputed from
the committed Q6 runs independently of study_report."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from al_bnn_lab import study as run_study
from al_bnn_lab import study_report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "docs" / "study_data"


@pytest.fixture(scope="module")
def committed():
    sweeps = {q: run_study.question_sweep(q, quick=False) for q in ("q1", "q6")}
    tables = {q: pd.read_csv(DATA / f"{q}.csv.gz") for q in ("q1", "q6")}
    return sweeps, tables


def test_q1s_samplers_sample_exactly_as_q6s_and_of_q2_to_q4_only_gpa_exact_does(committed):
    sweeps, _ = committed
    assert run_study.same_samplers(sweeps["q1"], sweeps["q6"]) == {"random": "random", "mcdue": "mcdue",
                                                                    "lrgpa": "gpa"}
    parms = run_study.sampler_parms(sweeps["q1"])["lrgpa"]
    assert parms == run_study.sampler_parms(sweeps["q6"])["gpa"]
    assert parms["n_mc_samples"] == 100 and parms["sampling_batch_size"] == 10
    others = {q: run_study.question_sweep(q, quick=False) for q in ("q2", "q3", "q4")}
    assert run_study.same_samplers(others["q2"], sweeps["q6"]) == {"gpa_exact": "gpa_exact"}
    assert run_study.same_samplers(others["q3"], sweeps["q6"]) == {"gpa_exact": "gpa_exact"}
    assert run_study.same_samplers(others["q4"], sweeps["q6"]) == {}
    changed = {**sweeps["q6"], "sampler_settings": {**sweeps["q6"]["sampler_settings"],
                                                    "gpa": {"parms": {"sample_policy": "lrgpa", "n_mc_samples": 30}}}}
    assert "lrgpa" not in run_study.same_samplers(sweeps["q1"], changed)  # one setting apart: not the same


def test_the_refresh_adds_its_own_tables_and_keeps_q1s(committed):
    sweeps, tables = committed
    q1 = study_report.question_samplers(tables["q1"])
    section = run_study.with_recipe_refresh(q1, tables["q6"], sweeps["q1"], sweeps["q6"])
    assert set(section.tables) == {*q1.tables, "q1_recipe_final_rmse", "q1_recipe_paired"}
    for name, table in q1.tables.items():
        pd.testing.assert_frame_equal(section.tables[name], table)
    assert section.markdown == q1.markdown and section.answer == q1.answer  # the refresh comes after the answer
    assert section.appendix[0].startswith("**Q1 refreshed on Q6's runs**")
    assert set(section.appendix_figures) == {"q1_recipe_rmse.png", "q1_recipe_log_likelihood.png"}
    assert section.headline.startswith(q1.headline) and section.facts["recipe"]["datasets"] == 15
    assert set(section.tables["q1_recipe_paired"]["sampler"]) == {"gpa", "mcdue"}


def test_without_one_of_q1s_samplers_in_q6_q1_is_left_as_it_is(committed):
    sweeps, tables = committed
    q1 = study_report.question_samplers(tables["q1"])
    no_mcdue = {**sweeps["q6"], "samplers": [s for s in sweeps["q6"]["samplers"] if s != "mcdue"]}
    assert run_study.with_recipe_refresh(q1, tables["q6"], sweeps["q1"], no_mcdue) is q1


def _final(table: pd.DataFrame) -> pd.DataFrame:
    last = table.loc[table.groupby(["dataset", "sampler", "seed"])["al_iter"].idxmax()]
    return last.pivot_table(index=["dataset", "seed"], columns="sampler", values="test_rmse")


def _t_half(values: np.ndarray) -> float:
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return (high - low) / 2


def test_the_committed_refresh_is_the_q6_runs_final_rmse(committed):
    """Each dataset's row of the refreshed final-RMSE table: means with Student-t intervals, the
    paired relative differences to random and the W/T/L counts, from q6.csv.gz."""
    _, tables = committed
    report = (REPO / "docs" / "study.md").read_text()
    q1 = report.split("\n## Q1.")[1].split("\n## Q2.")[0]
    refreshed = q1.split("**Q1 refreshed on Q6's runs**")[1]
    header_line = next(line for line in refreshed.splitlines() if line.startswith("| dataset | pool |"))
    header = [cell.strip() for cell in header_line.strip("|").split("|")]
    final = _final(tables["q6"])
    for dataset in tables["q6"]["dataset"].unique():
        line = next(line for line in refreshed.splitlines() if line.startswith(f"| {dataset} |"))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        values = final.loc[dataset]
        for sampler in ("random", "gpa", "mcdue"):
            column = values[sampler].to_numpy()
            assert cells[header.index(f"{sampler}: final RMSE")] == f"{column.mean():.4g} ± {_t_half(column):.2g}"
        for sampler in ("gpa", "mcdue"):
            relative = ((values[sampler] - values["random"]) / values["random"].abs()).to_numpy()
            index = header.index(f"{sampler} vs random: final RMSE difference")
            assert cells[index] == f"{relative.mean() * 100:+.1f}% ± {_t_half(relative) * 100:.1f}", (dataset, sampler)
            wins, ties = int((relative < -0.005).sum()), int((np.abs(relative) <= 0.005).sum())
            assert cells[index + 1] == f"{wins}/{ties}/{len(relative) - wins - ties}", (dataset, sampler)


def _verdict(values: np.ndarray) -> str:
    half = _t_half(values)
    return "lower" if values.mean() + half < 0 else "higher" if values.mean() - half > 0 else "within"


def test_the_committed_refreshed_headline_counts_are_recomputed(committed):
    """GPA clearly better than random where the paired final RMSE or the area under the RMSE curve
    (trapezoid over labelled points, divided by their span) is clearly lower and neither clearly
    higher; clearly worse the other way round."""
    _, tables = committed
    runs = tables["q6"][tables["q6"]["sampler"].isin(["random", "gpa"])].sort_values("n_train")
    areas = {}
    for key, run in runs.groupby(["dataset", "sampler", "seed"]):
        x, y = run["n_train"].to_numpy(float), run["test_rmse"].to_numpy(float)
        areas[key] = float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / (x[-1] - x[0]))
    area = pd.Series(areas).rename_axis(["dataset", "sampler", "seed"]).unstack("sampler")
    final = _final(runs)
    helps, hurts = [], []
    for dataset in dict.fromkeys(tables["q6"]["dataset"]):
        outcome = {_verdict(((table.loc[dataset, "gpa"] - table.loc[dataset, "random"])
                             / table.loc[dataset, "random"].abs()).to_numpy()) for table in (final, area)}
        if "lower" in outcome and "higher" not in outcome:
            helps.append(dataset)
        elif "higher" in outcome and "lower" not in outcome:
            hurts.append(dataset)
    report = " ".join((REPO / "docs" / "study.md").read_text().split())
    headline = report.split("- **Q1.**")[1].split("- **Q2.**")[0].split("With the recipe on Q6's runs")[1]
    assert (f"in test RMSE GPA beats random selection clearly on {len(helps)} of 15 datasets "
            f"({study_report.listing(helps)}), loses on {len(hurts)}") in headline
