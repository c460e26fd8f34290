"""The held-out check (al_bnn_lab.heldout_check): the study's stated check run on datasets it never used."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn.errors import EXIT_BAD_INPUT
from al_bnn_lab import heldout_check
from al_bnn_lab.heldout_check import (
    STUDY_STATISTIC,
    against_prediction,
    check_verdict,
    choose_datasets,
    study_datasets,
    study_prediction_interval,
    sweep_config,
)
from al_bnn_lab.sweep import load_benchmark_config, run_key

REPO = Path(__file__).resolve().parent.parent


def write_synthetic(folder: Path, rows: int = 120, seed: int = 0) -> None:
    """A dataset in the UCI layout of data/uci/<name>/: whitespace-separated rows, feature and target indices."""
    folder.mkdir(parents=True)
    generator = np.random.default_rng(seed)
    features = generator.uniform(-1, 1, size=(rows, 3))
    target = np.sin(2 * features[:, 0]) + features[:, 1] ** 2 + 0.05 * generator.normal(size=rows)
    np.savetxt(folder / "data.txt", np.column_stack([features, target]), fmt="%.6f")
    (folder / "index_features.txt").write_text("0\n1\n2\n")
    (folder / "index_target.txt").write_text("3\n")


def copy_shipped(root: Path, name: str = "yacht") -> None:
    """A copy (not a symlink) of one of the study's datasets."""
    (root / name).mkdir(parents=True)
    for file in ("data.txt", "index_features.txt", "index_target.txt"):
        shutil.copyfile(REPO / "data" / "uci" / name / file, root / name / file)


@pytest.fixture
def uci_root(tmp_path):
    root = tmp_path / "uci"
    write_synthetic(root / "synth")
    copy_shipped(root)
    return root


def test_the_stated_verdicts_on_fixed_differences():
    assert check_verdict([0.10, 0.12, 0.11, 0.09, 0.13]) == "fails the check"
    assert check_verdict([-0.10, -0.12, -0.11, -0.09, -0.13]) == "passes (clearly better)"
    assert check_verdict([-0.10, 0.10, 0.02, -0.03, 0.01]) == "passes (not distinguishable from random)"
    # every difference above zero but spread so the interval reaches below it: not a failure
    assert check_verdict([0.01, 0.30]) == "passes (not distinguishable from random)"
    assert check_verdict([0.05]) == "passes (not distinguishable from random)"  # one seed: no interval


def test_place_against_the_prediction_interval():
    assert against_prediction(-0.3, -0.2, 0.06) == "below it (better than the study predicts)"
    assert against_prediction(0.1, -0.2, 0.06) == "above it (worse than the study predicts)"
    assert against_prediction(0.0, -0.2, 0.06) == "inside it"
    assert against_prediction(0.0, float("nan"), float("nan")) == "no prediction interval"


def test_the_prediction_interval_is_the_one_the_study_states():
    """Recomputed from the committed runs, on the study's statistic, it is the interval docs/study.md prints
    for the method its "What to expect" paragraph names."""
    text = (REPO / "docs" / "study.md").read_text()
    found = re.search(r"\*\*What to expect\.\*\* Per dataset, (\w+)'s mean log RMSE.*?prediction interval of that "
                      r"difference is ([-+][0-9.]+) to ([-+][0-9.]+)", text)
    assert found, "docs/study.md no longer states a prediction interval"
    interval = study_prediction_interval(found.group(1), STUDY_STATISTIC)
    assert interval is not None and interval.datasets == 15
    assert (f"{interval.low:+.3f}", f"{interval.high:+.3f}") == (found.group(2), found.group(3))
    # the check's own statistic leaves out the initial step: same datasets, differences scaled up
    after = study_prediction_interval("lcmd")
    stated = study_prediction_interval("lcmd", STUDY_STATISTIC)
    assert after.low < stated.low < 0 < stated.high < after.high
    documented = " ".join((REPO / "docs" / "benchmark-results.md").read_text().split())
    assert (f"(lcmd: {after.low:+.3f} to {after.high:+.3f} after the initial step; on all AL steps, the statistic "
            f"the study prints, {stated.low:+.3f} to {stated.high:+.3f}, and {found.group(2)} to {found.group(3)} "
            f"for {found.group(1)})") in documented, "docs/benchmark-results.md states other intervals"


def test_the_study_datasets_are_left_out(uci_root):
    assert set(study_datasets()) >= {"yacht", "housing", "energy"} and len(study_datasets()) == 15
    assert choose_datasets(uci_root, None, study_datasets()) == (["synth"], ["yacht"])
    assert choose_datasets(uci_root, ["synth"], study_datasets()) == (["synth"], ["yacht"])


def test_the_sweep_has_the_benchmarks_settings(tmp_path):
    """A dataset of the check runs with exactly the settings the benchmark gives a default-schedule dataset
    (the same run key), random and lcmd on the gradient kernel, bnn only; lcmd_exact on the exact kernel."""
    config = sweep_config(tmp_path, ["concrete"], [0, 1, 2, 3, 4])
    benchmark = load_benchmark_config(REPO / "configs" / "benchmark.yaml")
    entry = next(e for e in benchmark.datasets if e.name == "concrete")
    assert config.samplers == ["random", "lcmd"] and config.models == ["bnn"]
    for sampler in config.samplers:
        assert run_key(config, config.datasets[0], "bnn", sampler, 3) == run_key(benchmark, entry, "bnn", sampler, 3)
    exact = sweep_config(tmp_path, ["concrete"], [0, 1], "lcmd_exact")
    assert exact.sampler_settings["lcmd_exact"]["parms"] == {"sample_policy": "lcmd", "family_kernel": "exact"}
    quick = sweep_config(tmp_path, ["concrete"], [0, 1], quick=True)
    assert quick.schedule["default"]["al_iter"] == 2 and quick.seeds == [0, 1]
    assert quick.experiment["train_schedule"]["num_epochs"] == 20


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder"),
    ("only_study", "no dataset the study did not use"),
    ("unknown", "--datasets nothere: not in"),
    ("study_named", "--datasets yacht: the study used it"),
    ("one_seed", "at least two distinct paired seeds"),
    ("reserved", "is reserved"),
])
def test_errors_a_user_can_cause_are_one_message_and_exit_2(tmp_path, uci_root, capsys, case, message):
    out = tmp_path / "out"
    only_study = tmp_path / "only_study"
    copy_shipped(only_study)
    if case == "reserved":
        write_synthetic(uci_root / "file")
    args = {"missing": ["--uci-root", str(tmp_path / "nowhere")],
            "only_study": ["--uci-root", str(only_study)],
            "unknown": ["--uci-root", str(uci_root), "--datasets", "nothere"],
            "study_named": ["--uci-root", str(uci_root), "--datasets", "yacht"],
            "one_seed": ["--uci-root", str(uci_root), "--seeds", "0"],
            "reserved": ["--uci-root", str(uci_root)]}[case]
    assert heldout_check.main([*args, "--out", str(out), "--quick"]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1, error
    assert not out.exists()  # refused before anything is written


@pytest.mark.slow
def test_the_check_runs_on_a_new_dataset_and_a_rerun_continues(tmp_path, uci_root, capsys):
    out = tmp_path / "out"
    args = ["--uci-root", str(uci_root), "--seeds", "0", "1", "--out", str(out), "--quick"]
    assert heldout_check.main(args) == 0
    rows = pd.read_csv(out / "heldout_check.csv")
    assert rows["dataset"].tolist() == ["synth"] and rows["paired_seeds"].tolist() == [2]
    assert not (out / "runs" / "yacht").exists()  # the study's dataset was not run
    # the difference recomputed from the sweep's own table: mean log RMSE over the AL steps after the initial one
    table = pd.read_csv(out / "benchmark.csv")
    assert sorted(table["sampler"].unique()) == ["lcmd", "random"] and sorted(table["seed"].unique()) == [0, 1]
    after = table[table["al_iter"] >= 1].assign(log_rmse=lambda t: np.log(t["test_rmse"]))
    per_run = after.groupby(["sampler", "seed"])["log_rmse"].mean()
    differences = (per_run["lcmd"] - per_run["random"]).to_numpy()
    assert rows["difference"].iloc[0] == pytest.approx(differences.mean())
    assert rows["verdict"].iloc[0] == check_verdict(differences)
    interval = study_prediction_interval("lcmd")
    assert rows["prediction_low"].iloc[0] == pytest.approx(interval.low)
    assert rows["against_prediction"].iloc[0] == against_prediction(differences.mean(), interval.low, interval.high)
    report = (out / "heldout_check.md").read_text()
    assert "Left out (the study's own datasets): yacht." in report
    assert "Only 2 seeds" in report and "--quick" in report
    assert re.search(r"\| synth \| 96 \| 2 \| .* \| " + re.escape(rows["verdict"].iloc[0]) + r" \| ", report)
    assert f"{interval.low:+.3f} to {interval.high:+.3f}" in report
    first = (out / "heldout_check.csv").read_bytes()
    capsys.readouterr()
    assert heldout_check.main(args) == 0  # a rerun continues: every run is finished, none is trained again
    assert "4 runs, 4 already finished, 0 to do" in capsys.readouterr().out
    assert (out / "heldout_check.csv").read_bytes() == first
