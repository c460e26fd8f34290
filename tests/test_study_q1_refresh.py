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


def test_q1s_gpa_is_q6s_gpa_the_same_rule_on_the_same_kernel(committed):
    sweeps, _ = committed
    q1, q6 = run_study.sampler_kinds(sweeps["q1"]), run_study.sampler_kinds(sweeps["q6"])
    assert q1["lrgpa"] == q6["gpa"] == ("lrgpa", "mc")
    assert q1["mcdue"] == q6["mcdue"] and q1["random"] == q6["random"]


def test_the_refresh_adds_its_own_tables_and_keeps_q1s(committed):
    sweeps, tables = committed
    q1 = study_report.question_samplers(tables["q1"])
    section = run_study.with_recipe_refresh(q1, tables["q6"], sweeps["q1"], sweeps["q6"])
    assert set(section.tables) == {*q1.tables, "q1_recipe_final_rmse", "q1_recipe_paired"}
    for name, table in q1.tables.items():
        pd.testing.assert_frame_equal(section.tables[name], table)
    assert section.markdown[:len(q1.markdown)] == q1.markdown and section.answer == q1.answer
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
