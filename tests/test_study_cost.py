"""The study's calibration statement and rerun estimates (al_bnn_lab.study_cost): each helper on
hand-made inputs, and the committed report's paragraph against the numbers it is computed from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn_lab import study_cost

REPO = Path(__file__).resolve().parents[1]


def test_runs_are_calibrated_only_where_a_run_recorded_its_scales():
    assert not study_cost.runs_calibrated(pd.DataFrame({"test_rmse": [1.0]}))
    assert not study_cost.runs_calibrated(pd.DataFrame({"calibration_epistemic": [np.nan, np.nan]}))
    assert study_cost.runs_calibrated(pd.DataFrame({"calibration_epistemic": [np.nan, 1.3]}))


def test_configured_calibration_defaults_to_none():
    assert study_cost.configured_calibration({}) == "none"
    raw = {"experiment": {"train_schedule": {"calibration": "holdout"}}}
    assert study_cost.configured_calibration(raw) == "holdout"


def _fits(seconds: dict[tuple[str, str], tuple[list[float], list[float]]]) -> pd.DataFrame:
    rows = []
    for (dataset, model), (plain, calibrated) in seconds.items():
        for split, (a, b) in enumerate(zip(plain, calibrated, strict=True)):
            rows += [{"dataset": dataset, "model": model, "split": split, "calibration": "none", "fit_seconds": a},
                     {"dataset": dataset, "model": model, "split": split, "calibration": "holdout", "fit_seconds": b}]
    return pd.DataFrame(rows)


def test_cost_ratio_is_the_median_over_datasets_of_the_ratio_of_median_seconds():
    fits = _fits({("a", "bnn"): ([1.0, 2.0, 9.0], [2.0, 4.0, 4.0]),     # medians 2 -> 4: ratio 2
                  ("b", "bnn"): ([1.0, 1.0, 1.0], [3.0, 3.0, 3.0]),     # 3
                  ("c", "bnn"): ([2.0, 2.0, 2.0], [5.0, 5.0, 5.0]),     # 2.5
                  ("a", "ensemble"): ([4.0, 4.0, 4.0], [6.0, 6.0, 6.0])})  # 1.5
    ratios = study_cost.calibration_cost_ratios(fits)
    assert ratios["bnn"] == study_cost.CostRatio(median=2.5, low=2.0, high=3.0, datasets=3)
    assert ratios["ensemble"] == study_cost.CostRatio(median=1.5, low=1.5, high=1.5, datasets=1)


def test_cost_ratio_refuses_a_table_without_both_settings():
    fits = _fits({("a", "bnn"): ([1.0], [2.0])})
    with pytest.raises(ValueError, match="none and holdout"):
        study_cost.calibration_cost_ratios(fits[fits["calibration"] == "none"])


def test_seconds_per_trained_run_leaves_reused_runs_out():
    assert study_cost.seconds_per_trained_run({"seconds": 600.0, "parts": 2, "reused_runs": 40}, 100) == 10.0
    assert study_cost.seconds_per_trained_run({"seconds": 600.0, "parts": 1}, 100) == 6.0
    assert study_cost.seconds_per_trained_run(None, 100) is None
    assert study_cost.seconds_per_trained_run({"seconds": 0.0, "parts": 0, "reused_runs": 100}, 100) is None
    assert study_cost.seconds_per_trained_run({"seconds": 5.0, "parts": 1, "reused_runs": 100}, 100) is None


def test_training_share_counts_each_runs_part_of_its_stack():
    table = pd.DataFrame({"training_seconds": [40.0, 40.0, 9.0], "runs_in_stack": [4, 4, 1],
                          "selection_seconds": [1.0, 1.0, 6.0]})
    assert study_cost.training_share(table) == pytest.approx((10 + 10 + 9) / (10 + 10 + 9 + 8))


def test_rerun_hours_scale_only_the_training_share_by_the_median_then_the_extreme_ratios():
    bnn = study_cost.CostRatio(median=2.0, low=1.5, high=2.5, datasets=3)
    ensemble = study_cost.CostRatio(median=3.0, low=2.0, high=4.0, datasets=3)
    # 36 s per run, 100 runs = 1 h uncalibrated; three quarters of it training
    assert study_cost.rerun_hours(36.0, 100, [bnn], share=0.75) == pytest.approx((1.75, 1.375, 2.125))
    assert study_cost.rerun_hours(36.0, 100, [bnn, ensemble]) == pytest.approx((2.5, 1.5, 4.0))
    assert study_cost.hours_text((2.5, 1.5, 4.0)) == "2.5 h (1.5-4.0 h)"


def _median_ratios(cost: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """Without study_cost: per dataset and model the ratio of median fit seconds, then per model the
    median, lowest and highest over datasets."""
    medians = cost.groupby(["model", "dataset", "calibration"])["fit_seconds"].median().unstack("calibration")
    ratio = (medians["holdout"] / medians["none"]).groupby(level="model")
    return {m: (r.median(), r.min(), r.max()) for m, r in ratio}


def test_the_committed_report_states_the_estimates_its_numbers_give():
    """docs/study.md's calibration paragraph, recomputed without study_cost from the committed wall
    times, run tables and cost report: the ratios, Q6's rate, training share and hours, and the
    calibrated questions' rates."""
    import json

    text = (REPO / "docs" / "study.md").read_text()
    paragraph = next(line for line in text.splitlines() if line.startswith("**Calibration.**"))
    assert paragraph.startswith("**Calibration.** The runs of Q7 and Q9 are calibrated; those of Q1, Q2, Q3, Q4 and "
                                "Q6 are not.")
    assert "`run_study.py --questions q6 --reuse docs/study_data/q9.csv.gz`" in paragraph
    walls = json.loads((REPO / "docs" / "study_data" / "wall_times.json").read_text())
    ratios = _median_ratios(pd.read_csv(REPO / "docs/uci_protocol/cost/calibration_cost.csv"))
    for model, (median, low, high) in ratios.items():
        assert f"{median:.2f}x ({model}; {low:.2f}-{high:.2f} over 6 datasets)" in paragraph
    keys = ["dataset", "model", "sampler", "seed"]
    tables = {q: pd.read_csv(REPO / "docs" / "study_data" / f"{q}.csv.gz") for q in ("q6", "q7", "q9")}
    def where(wall: dict) -> str:  # the machines the record names, else "here"
        return f"on {' and '.join(wall['machines'])}" if wall.get("machines") else "here"

    for question, reusable in (("q6", len(tables["q9"].drop_duplicates(keys))),):  # Q7 is calibrated now
        table, wall = tables[question], walls[question]
        runs = len(table.drop_duplicates(keys))
        trained = runs - wall.get("reused_runs", 0)
        rate = wall["seconds"] / trained
        training = (table["training_seconds"] / table["runs_in_stack"]).sum()
        share = training / (training + table["selection_seconds"].sum())
        models = sorted(set(table["model"]))
        middle = np.mean([ratios[m][0] for m in models])
        low, high = min(ratios[m][1] for m in models), max(ratios[m][2] for m in models)
        hours = [rate * (runs - reusable) * (share * r + 1 - share) / 3600 for r in (middle, low, high)]
        less = f" (less the {reusable:,} of Q9)" if reusable else ""
        assert (f"{question.upper()} trained {trained:,} runs in {wall['seconds'] / 60:.0f} min {where(wall)} "
                f"({rate:.1f} s per run, {share:.0%} of it training), so its {runs:,} runs calibrated{less} would "
                "take about "
                f"{hours[0]:.1f} h ({hours[1]:.1f}-{hours[2]:.1f} h)") in paragraph, question
    for question in ("q7", "q9"):
        wall = walls[question]
        rate = wall["seconds"] / (len(tables[question].drop_duplicates(keys)) - wall.get("reused_runs", 0))
        assert f"{question.upper()}'s calibrated runs took {rate:.1f} s each {where(wall)}" in paragraph


# -- the committed sample of Q6's runs rerun calibrated --------------------------------------------------

def _sample_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = REPO / "docs" / "study_data"
    return pd.read_csv(data / "q6.csv.gz"), pd.read_csv(data / "q6_calibrated_sample.csv.gz")


def test_the_calibrated_sample_is_q6s_runs_with_q9s_calibrated_settings_and_reproduces_them():
    """Recomputed without the study code: the sample's runs are Q6's runs (dataset, sampler, seed)
    with the calibrated settings (run keys equal Q9's, which are Q6's settings calibrated, where Q9
    has the run), and their RMSE and raw LL and coverage equal Q6's at every step, as the report says."""
    from al_bnn_lab import study as run_study

    q6, sample = _sample_tables()
    keys = ["dataset", "sampler", "seed", "al_iter"]
    assert sample["test_coverage_90_raw"].notna().all() and sample["calibration_epistemic"].notna().any()
    q9 = pd.read_csv(REPO / "docs" / "study_data" / "q9.csv.gz").drop_duplicates(keys[:3]).set_index(keys[:3])
    sample_keys = sample.drop_duplicates(keys[:3]).set_index(keys[:3])["run_key"]
    shared = sample_keys.index.intersection(q9.index)
    assert len(shared) == sample["dataset"].nunique() * 12 * 2  # Q9's seeds 0 and 1 of every sampler
    assert (sample_keys.loc[shared] == q9.loc[shared, "run_key"]).all()
    merged = sample.merge(q6, on=keys, suffixes=("", "_q6"))
    assert len(merged) == len(sample)
    for mine, theirs in (("test_rmse", "test_rmse_q6"), ("test_log_likelihood_raw", "test_log_likelihood_q6"),
                         ("test_coverage_90_raw", "test_coverage_90_q6")):
        assert (merged[mine] == merged[theirs]).all(), mine
    runs = sample.groupby(keys[:3]).ngroups
    final = sample[sample.al_iter == sample.groupby(keys[:3]).al_iter.transform("max")]
    paragraph = next(line for line in (REPO / "docs" / "study.md").read_text().splitlines()
                     if line.startswith("**Calibration.**"))
    assert (f"Measured on a sample: Q6's {runs:,} runs on energy and concrete (12 samplers, 10 seeds) rerun with "
            "its calibrated settings") in paragraph
    assert (f"at every one of their {len(sample):,} steps, bit for bit; their mean final-step 90% coverage is "
            f"{final.test_coverage_90.mean():.2f} calibrated, {final.test_coverage_90_raw.mean():.2f} raw."
            ) in paragraph
    assert run_study.calibrated_sample_text(q6, sample) in paragraph


def test_a_sample_step_that_differs_from_q6_is_counted_not_hidden():
    from al_bnn_lab import study as run_study

    q6, sample = _sample_tables()
    moved = sample.copy()
    moved.loc[5, "test_coverage_90_raw"] += 0.01
    moved.loc[7, "test_rmse"] *= 1.0000001
    text = run_study.calibrated_sample_text(q6, moved)
    assert f"only {len(sample) - 2:,} of their {len(sample):,} steps equal Q6's" in text and "bit for bit" not in text
    assert run_study.calibrated_sample_text(q6, pd.DataFrame()) == ""
