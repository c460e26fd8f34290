"""The study's data next to the report (docs/study_data) is a function of the runs alone: rebuilt
from the committed per-run tables it is byte for byte the committed data, and runs read in another
order (a sweep's or --reuse's table listing them differently) give the same bytes. The derived tables
once depended on the order in which a CPU's unstable sort left runs with equal n_train, and their
last digits on the order of the sums over runs."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn_lab import study as run_study

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITTED = REPO_ROOT / "docs" / "study_data"
MEASURED = ("q5_pool_scaling.csv", "q8_selection_benchmark.csv")  # timings the report reads, not derives


@pytest.fixture(scope="module")
def sweeps() -> dict[str, dict]:
    """The committed report's sweeps, as `run_study.py --report-only` reads them."""
    return {q: run_study.question_sweep(q, False) for q in run_study.SWEEP_QUESTIONS
            if q not in run_study.DERIVED_QUESTIONS}


def build(results_dir: Path, data_dir: Path, sweeps: dict[str, dict]) -> dict[str, bytes]:
    """write_study_data into `data_dir` (what --report-only writes next to the report, figures left
    out); the bytes of every file there afterwards."""
    from al_bnn_lab.plotting import plt

    try:
        run_study.write_study_data(results_dir, data_dir, sweeps, quick=False)
    finally:
        plt.close("all")  # the sections' figures: the report saves them, this test does not
    return {path.name: path.read_bytes() for path in sorted(data_dir.iterdir())}


def inputs_only(data_dir: Path, keep_runs: bool = True) -> None:
    """Copy of the committed data less everything the report derives (so each must be written again)."""
    shutil.copytree(COMMITTED, data_dir)
    for path in data_dir.iterdir():
        run_table = path.name.endswith(".csv.gz")
        if (run_table and not keep_runs) or not (run_table or path.name in MEASURED):
            path.unlink()


def shuffled(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    order = np.random.default_rng(seed).permutation(len(table))
    assert not (order == np.arange(len(table))).all()
    return table.iloc[order].reset_index(drop=True)


def committed_bytes(names) -> dict[str, bytes]:
    return {name: (COMMITTED / name).read_bytes() for name in names}


def differing(rebuilt: dict[str, bytes], names) -> list[str]:
    committed = committed_bytes(names)
    return [name for name in names if rebuilt.get(name) != committed[name]]


def derived_names() -> list[str]:
    return sorted(p.name for p in COMMITTED.glob("*.csv") if p.name not in MEASURED)


@pytest.mark.slow
def test_the_committed_study_data_is_rebuilt_byte_for_byte(tmp_path, sweeps):
    data_dir = tmp_path / "study_data"
    inputs_only(data_dir)
    rebuilt = build(tmp_path / "results", data_dir, sweeps)
    names = sorted(p.name for p in COMMITTED.iterdir() if p.name != "wall_times.json")
    assert len(derived_names()) >= 10 and set(names) == set(rebuilt)  # every derived table written again
    assert differing(rebuilt, names) == []


@pytest.mark.slow
def test_runs_read_in_another_order_give_the_same_bytes(tmp_path, sweeps):
    """Every question's runs, rows shuffled, as the results directory's tables: the per-run copies and
    every derived table are still the committed bytes."""
    results, data_dir = tmp_path / "results", tmp_path / "study_data"
    inputs_only(data_dir, keep_runs=False)
    questions = [q for q in run_study.SWEEP_QUESTIONS if (COMMITTED / run_study.run_table_name(q)).exists()]
    assert {"q1", "q6", "q7"} <= set(questions)
    for index, question in enumerate(sorted(questions)):
        (results / question).mkdir(parents=True)
        table = pd.read_csv(COMMITTED / run_study.run_table_name(question))
        shuffled(table, index).to_csv(results / question / "benchmark.csv", index=False)
    rebuilt = build(results, data_dir, sweeps)
    assert differing(rebuilt, [*(run_study.run_table_name(q) for q in questions), *derived_names()]) == []


def test_q1_runs_in_another_order_give_the_committed_q1_tables(tmp_path, sweeps):
    """The fast check of the same: Q1 alone (runs shuffled, also within each run) gives the committed
    Q1 tables and per-run copy."""
    results, data_dir = tmp_path / "results", tmp_path / "study_data"
    (results / "q1").mkdir(parents=True)
    data_dir.mkdir()
    shuffled(pd.read_csv(COMMITTED / "q1.csv.gz"), 1).to_csv(results / "q1" / "benchmark.csv", index=False)
    rebuilt = build(results, data_dir, sweeps)
    assert differing(rebuilt, ["q1.csv.gz", "q1_final_rmse.csv", "q1_paired.csv"]) == []


def test_canonical_rows_follow_the_sweep_and_put_unlisted_values_last():
    raw = {"datasets": ["b", {"name": "a"}], "models": ["bnn"], "samplers": ["random", "gpa"], "seeds": [1, 0]}
    table = pd.DataFrame({"dataset": ["a", "c", "b", "b", "b", "a", "a"], "model": "bnn",
                          "sampler": ["gpa", "gpa", "gpa", "zz", "random", "random", "gpa"],
                          "seed": [0, 0, 0, 1, 1, 1, 0], "al_iter": [1, 0, 0, 0, 0, 0, 0]})
    ordered = run_study.canonical_rows(table, raw)
    assert list(zip(ordered.dataset, ordered.seed, ordered.sampler, ordered.al_iter, strict=True)) == [
        ("b", 1, "random", 0), ("b", 1, "zz", 0), ("b", 0, "gpa", 0), ("a", 1, "random", 0), ("a", 0, "gpa", 0),
        ("a", 0, "gpa", 1), ("c", 0, "gpa", 0)]
    assert run_study.canonical_rows(ordered, raw).equals(ordered)
    assert run_study.canonical_rows(shuffled(table, 3), raw).equals(ordered)
