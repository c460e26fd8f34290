"""The AL calibration report: final rows paired run by run with the uncalibrated benchmark."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn_lab import al_calibration

REPO_ROOT = Path(__file__).resolve().parent.parent


def runs(coverage_final: float, ll_final: float, rmse_final: float = 1.0, seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for dataset in ("a", "b"):
        for seed in seeds:
            for step in (0, 1, 2):
                final = step == 2
                rows.append(dict(dataset=dataset, model="bnn", sampler="random", seed=seed, al_iter=step,
                                 test_rmse=rmse_final if final else 5.0,
                                 test_coverage_90=coverage_final + 0.02 * seed if final else 0.1,
                                 test_log_likelihood=ll_final if final else -9.0))
    return pd.DataFrame(rows)


def test_the_final_step_is_paired_run_by_run_and_summarised_per_dataset():
    table = al_calibration.coverage_table(al_calibration.paired_final(runs(0.90, -1.0), runs(0.70, -2.0)))
    assert table["runs"].tolist() == [2, 2]
    assert table["coverage_calibrated"].tolist() == pytest.approx([0.91, 0.91])
    assert table["coverage_raw"].tolist() == pytest.approx([0.71, 0.71])
    assert table["max_rmse_difference"].tolist() == [0.0, 0.0]
    text = al_calibration.render(table, "cmd")
    assert "| a | bnn | 2 | 0.71 | 0.91 | -2 | -1 | 0 |" in text
    assert "- bnn, uncalibrated: mean 90% coverage 0.71" in text
    assert "below 0.75 on: a, b." in text  # the uncalibrated line names both
    assert "test LL gain from calibration +1.000" in text


def test_a_rmse_difference_between_paired_runs_is_reported_not_hidden():
    table = al_calibration.coverage_table(al_calibration.paired_final(runs(0.9, -1.0, rmse_final=1.5),
                                                                      runs(0.7, -2.0, rmse_final=1.0)))
    assert table["max_rmse_difference"].tolist() == [0.5, 0.5]


def test_a_calibrated_run_without_its_baseline_is_named():
    with pytest.raises(al_calibration.DataFileError, match="a / bnn / random / seed 7"):
        al_calibration.paired_final(runs(0.9, -1.0, seeds=(7,)), runs(0.7, -2.0))


def test_the_committed_report_is_what_the_committed_runs_give():
    folder = REPO_ROOT / "docs" / "al_calibration"
    baseline = pd.concat([pd.read_csv(REPO_ROOT / "docs" / "benchmark" / name)
                          for name in ("benchmark.csv", "benchmark_dropout_ensemble.csv.gz")])
    paired = al_calibration.paired_final(pd.read_csv(folder / al_calibration.RUNS_FILE), baseline)
    table = al_calibration.coverage_table(paired)
    committed = pd.read_csv(folder / al_calibration.TABLE_FILE)
    pd.testing.assert_frame_equal(table, committed, check_dtype=False, rtol=1e-12)
    report = (folder / al_calibration.REPORT_FILE).read_text()
    winners = al_calibration.winners_lines(al_calibration.winners(paired))
    assert winners  # the committed runs hold lcmd and random: the report answers Q9
    for line in [*al_calibration.summary_lines(table), *winners]:
        assert line.strip() in report


def test_the_sweep_keeps_a_calibrated_loop_s_raw_values_beside_the_calibrated_ones():
    """A calibrated run's tidy rows carry test_coverage_90_raw etc. (so a report can pair the raw and
    calibrated values of the same run); an uncalibrated run's rows have no such columns."""
    from types import SimpleNamespace

    from al_bnn.checkpoint import CALIBRATION_COLUMNS
    from al_bnn_lab.sweep import tidy_rows

    base = dict(n_train=10, test_rmse=1.0, test_log_likelihood=-1.0, test_coverage_90=0.9)
    acquisitions = [dict(al_iter=0, selection_seconds=0.0, training_seconds=1.0)]
    config = SimpleNamespace(seed=0)
    plain = SimpleNamespace(metrics=[dict(al_iter=0, **base)], acquisitions=acquisitions, config=config)
    extra = dict(test_log_likelihood_raw=-3.0, test_coverage_90_raw=0.5, calibration_epistemic=2.0,
                 calibration_aleatoric=4.0)
    calibrated = SimpleNamespace(metrics=[dict(al_iter=0, **base, **extra)], acquisitions=acquisitions, config=config)
    assert not set(CALIBRATION_COLUMNS) & set(tidy_rows("a", "bnn", "random", plain, 100, 1)[0])
    row = tidy_rows("a", "bnn", "random", calibrated, 100, 1)[0]
    assert {key: row[key] for key in CALIBRATION_COLUMNS} == extra


@pytest.mark.slow
def test_a_calibrated_sweep_s_tables_keep_the_raw_values(tmp_path):
    """The consolidated tables (finished_runs.csv, benchmark.csv) keep what each calibrated run file
    holds: the raw LL and coverage and the scales, beside the calibrated values."""
    import yaml

    from al_bnn.checkpoint import CALIBRATION_COLUMNS
    from al_bnn_lab import benchmark

    root = Path(__file__).resolve().parent.parent / "data" / "uci"
    config = {"datasets": ["yacht"], "uci_root": str(root), "samplers": ["random"], "seeds": [0],
              "schedule": {"default": {"num_train_init": 0.2, "num_al_incr": 0.1, "al_iter": 0}},
              "experiment": {"net_config": {"layer_sizes": [8, 8], "learning_rate": 0.01},
                             "train_schedule": {"num_epochs": 3, "eval_after_epochs": 3, "log_after_epochs": 3,
                                                "calibration": "holdout"}}}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert benchmark.main(["--config", str(path), "--out", str(out), "--workers", "1"]) == 0
    for name in ("finished_runs.csv", "benchmark.csv"):
        table = pd.read_csv(out / name)
        assert set(CALIBRATION_COLUMNS) <= set(table), name
        last = table[table.al_iter == table.al_iter.max()].iloc[0]
        assert last.test_coverage_90_raw >= 0 and last.calibration_epistemic > 0
        assert last.test_log_likelihood != last.test_log_likelihood_raw


def test_the_report_says_whether_calibration_changes_which_method_wins():
    """Q9: lcmd - random at the final step, in log RMSE and in test LL before and after calibration;
    here lcmd has the higher raw LL on both datasets but, calibrated, the lower one on b: a flip."""
    def two_samplers(ll: dict, rmse: dict) -> pd.DataFrame:
        parts = []
        for sampler in ("random", "lcmd"):
            part = runs(0.9, 0.0).assign(sampler=sampler)
            final = part["al_iter"] == 2
            part.loc[final, "test_log_likelihood"] = part.loc[final, "dataset"].map(ll[sampler])
            part.loc[final, "test_rmse"] = rmse[sampler]
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    rmse = {"random": 1.0, "lcmd": 0.9}
    baseline = two_samplers({"random": {"a": -2.0, "b": -2.0}, "lcmd": {"a": -1.5, "b": -1.8}}, rmse)
    calibrated = two_samplers({"random": {"a": -1.2, "b": -1.0}, "lcmd": {"a": -1.0, "b": -1.1}}, rmse)
    table = al_calibration.winners(al_calibration.paired_final(calibrated, baseline))
    assert table["dataset"].tolist() == ["a", "b"] and table["seeds"].tolist() == [2, 2]
    assert table["log_rmse_difference"].tolist() == pytest.approx([np.log(0.9)] * 2)
    assert table["ll_difference_raw"].tolist() == pytest.approx([0.5, 0.2])
    assert table["ll_difference_calibrated"].tolist() == pytest.approx([0.2, -0.1])
    assert table["ll_winner_flips"].tolist() == [False, True]
    text = "\n".join(al_calibration.winners_lines(table))
    assert "| b | bnn | 2 | -0.105 | +0.200 | -0.100 | yes |" in text
    assert "- bnn: lcmd has the higher test LL on 2 of 2 datasets uncalibrated and 1 calibrated; the winner flips " \
           "on 1 (b)." in text
    assert al_calibration.winners(al_calibration.paired_final(runs(0.9, -1.0), runs(0.7, -2.0))).empty  # random only


def test_the_command_joins_several_calibrated_sweeps(tmp_path):
    first, second = runs(0.9, -1.0), runs(0.9, -1.0).assign(model="dropout")
    baseline = pd.concat([runs(0.7, -2.0), runs(0.6, -3.0).assign(model="dropout")])
    for name, table in (("first.csv", first), ("second.csv", second), ("baseline.csv", baseline)):
        table.to_csv(tmp_path / name, index=False)
    out = tmp_path / "out"
    assert al_calibration.main(["--calibrated", str(tmp_path / "first.csv"), str(tmp_path / "second.csv"),
                                "--baseline", str(tmp_path / "baseline.csv"), "--out", str(out)]) == 0
    table = pd.read_csv(out / al_calibration.TABLE_FILE)
    assert sorted(set(zip(table.dataset, table.model, strict=True))) == [("a", "bnn"), ("a", "dropout"), ("b", "bnn"),
                                                             ("b", "dropout")]
    assert len(pd.read_csv(out / al_calibration.RUNS_FILE)) == len(first) + len(second)
