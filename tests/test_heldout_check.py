"""The held-out check (al_bnn_lab.heldout_check): the study's stated check run on datasets it never used."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn.data import housing_arrays
from al_bnn.errors import EXIT_BAD_INPUT
from al_bnn.results import ResultsDirectoryExistsError
from al_bnn_lab import heldout_check
from al_bnn_lab.heldout_check import (
    DIGESTS_FILE,
    STUDY_STATISTIC,
    against_prediction,
    check_verdict,
    choose_datasets,
    dataset_digest,
    read_digests,
    record_digests,
    study_datasets,
    study_prediction_interval,
    sweep_config,
    uncompared_study_datasets,
)
from al_bnn_lab.sweep import load_benchmark_config, run_file, run_key

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


def copy_shipped(root: Path, name: str = "yacht", as_name: str | None = None) -> None:
    """A copy (not a symlink) of one of the study's datasets, under its own name or `as_name`."""
    (root / (as_name or name)).mkdir(parents=True)
    for file in ("data.txt", "index_features.txt", "index_target.txt"):
        shutil.copyfile(REPO / "data" / "uci" / name / file, root / (as_name or name) / file)


def resave(folder: Path, table: np.ndarray) -> None:
    """data.txt written again with other spelling: tabs, CRLF line ends, shortest round-trip numbers."""
    (folder / "data.txt").write_bytes("".join("\t".join(f"{v!r}" for v in row) + "\r\n" for row in table.tolist())
                                      .encode())


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
    assert (f"(lcmd: {after.low:+.3f} to {after.high:+.3f} after the initial step, as the study's \"Checking the "
            f"default on a new dataset\" states it; on all AL steps {stated.low:+.3f} to {stated.high:+.3f}, and "
            f"{found.group(2)} to {found.group(3)} for {found.group(1)}, the statistic and the method of the second "
            "edition's \"What to expect\")") in documented, "docs/benchmark-results.md states other intervals"
    # the study states the check for its default on the check's own statistic
    default = re.search(r"\*\*Checking the default on a new dataset\*\* \(the rule, fixed before any check "
                        r"ran\)\. Run (\w+) and random.*?its 95% prediction interval is ([-+][0-9.]+) to "
                        r"([-+][0-9.]+)", text)
    assert default, "docs/study.md no longer states the check of its default"
    checked = study_prediction_interval(default.group(1))
    assert (f"{checked.low:+.3f}", f"{checked.high:+.3f}") == (default.group(2), default.group(3))


def test_the_study_datasets_are_left_out(uci_root):
    assert set(study_datasets()) >= {"yacht", "housing", "energy"} and len(study_datasets()) == 15
    assert choose_datasets(uci_root, None, study_datasets()) == (["synth"], ["yacht"])
    assert choose_datasets(uci_root, ["synth"], study_datasets()) == (["synth"], ["yacht"])


def test_a_renamed_copy_of_a_study_dataset_is_left_out_by_content(uci_root):
    """A study dataset copied under another name, byte for byte or saved again with other spelling of the
    same numbers, is the study's data: left out and named with the dataset it duplicates. One changed
    value makes it another dataset."""
    copy_shipped(uci_root, "yacht", as_name="boats")
    copy_shipped(uci_root, "concrete", as_name="mixture")
    resave(uci_root / "mixture", np.loadtxt(REPO / "data" / "uci" / "concrete" / "data.txt"))
    copy_shipped(uci_root, "energy", as_name="nearly")
    table = np.loadtxt(REPO / "data" / "uci" / "energy" / "data.txt")
    table[0, 0] += 0.5
    resave(uci_root / "nearly", table)
    study = study_datasets()
    assert choose_datasets(uci_root, None, study) == (
        ["nearly", "synth"], ["yacht", "boats (the data of yacht)", "mixture (the data of concrete)"])
    assert dataset_digest(uci_root / "mixture") == dataset_digest(REPO / "data" / "uci" / "concrete")
    with pytest.raises(heldout_check.DataFileError, match=r"--datasets boats \(the data of the study's yacht\): "):
        choose_datasets(uci_root, ["synth", "boats"], study)


@pytest.mark.usefixtures("needs_housing")
def test_a_copy_of_housing_is_left_out_when_its_cache_is_there(uci_root, tmp_path, monkeypatch):
    features, target = housing_arrays()
    (uci_root / "california").mkdir()
    resave(uci_root / "california", np.column_stack([features, target]))
    (uci_root / "california" / "index_features.txt").write_text("0\n1\n2\n3\n4\n")
    (uci_root / "california" / "index_target.txt").write_text("5\n")
    study = study_datasets()
    assert uncompared_study_datasets(study) == []
    assert choose_datasets(uci_root, None, study) == (["synth"], ["yacht", "california (the data of housing)"])
    # without the cache housing is not downloaded to compare: the copy is not caught, and the report says so
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "empty"))
    assert uncompared_study_datasets(study) == ["housing"]
    assert choose_datasets(uci_root, None, study) == (["california", "synth"], ["yacht"])
    text = heldout_check.render(pd.DataFrame(columns=["dataset", "verdict"]), "lcmd", ["yacht"], None, None, [0, 1],
                                "cmd", True, uncompared=["housing"])
    assert "Not compared by content, so a renamed copy would not be caught: housing" in text
    assert not (tmp_path / "empty").exists()  # nothing created looking for the cache


def test_a_dataset_changed_under_its_name_is_refused_while_its_runs_are_there(tmp_path, uci_root):
    """The digests in --out: recorded on the first run, kept on an unchanged rerun (data saved again with
    other spelling of the same numbers counts as unchanged), a changed dataset refused while its runs
    are there, accepted (and recorded anew) once they are deleted."""
    out = tmp_path / "out"
    config = sweep_config(uci_root, ["synth"], [0, 1], quick=True)
    first = dataset_digest(uci_root / "synth")[0]
    record_digests(out, config, {"synth": first})
    assert read_digests(out) == {"synth": first}
    written = (out / DIGESTS_FILE).read_bytes()
    run = run_file(out, "synth", "bnn", "lcmd", 1)
    run.parent.mkdir(parents=True)
    run.write_text("a finished run\n")
    table = np.loadtxt(uci_root / "synth" / "data.txt")
    resave(uci_root / "synth", table)
    record_digests(out, config, {"synth": dataset_digest(uci_root / "synth")[0]})
    assert (out / DIGESTS_FILE).read_bytes() == written
    table[5, 3] += 1.0
    resave(uci_root / "synth", table)
    changed = dataset_digest(uci_root / "synth")[0]
    with pytest.raises(ResultsDirectoryExistsError, match=r"dataset 'synth': its data in .* differ .* choose a new "
                                                         r"--out, or delete .*runs/synth to run that dataset again"):
        record_digests(out, config, {"synth": changed})
    assert read_digests(out) == {"synth": first}
    shutil.rmtree(out / "runs" / "synth")
    record_digests(out, config, {"synth": changed, "other": "0" * 64})
    assert read_digests(out) == {"other": "0" * 64, "synth": changed}


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
    ("copy_named", "--datasets boats (the data of the study's yacht): the same data the study used"),
    ("one_seed", "at least two distinct paired seeds"),
    ("reserved", "is reserved"),
])
def test_errors_a_user_can_cause_are_one_message_and_exit_2(tmp_path, uci_root, capsys, case, message):
    out = tmp_path / "out"
    only_study = tmp_path / "only_study"
    copy_shipped(only_study)
    if case == "reserved":
        write_synthetic(uci_root / "file")
    if case == "copy_named":
        copy_shipped(uci_root, "yacht", as_name="boats")
    args = {"missing": ["--uci-root", str(tmp_path / "nowhere")],
            "only_study": ["--uci-root", str(only_study)],
            "unknown": ["--uci-root", str(uci_root), "--datasets", "nothere"],
            "study_named": ["--uci-root", str(uci_root), "--datasets", "yacht"],
            "copy_named": ["--uci-root", str(uci_root), "--datasets", "boats"],
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
    assert read_digests(out) == {"synth": dataset_digest(uci_root / "synth")[0]}
    # the same numbers saved again with other spelling: the same data, so the runs are still reused
    table = np.loadtxt(uci_root / "synth" / "data.txt")
    resave(uci_root / "synth", table)
    assert heldout_check.main(args) == 0
    assert "4 runs, 4 already finished, 0 to do" in capsys.readouterr().out
    # other data under the same name: refused, not reported from the runs made on the old data
    table[0, 3] += 1.0
    resave(uci_root / "synth", table)
    assert heldout_check.main(args) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "already finished" not in captured.out
    assert captured.err.startswith("error: dataset 'synth': its data in ") and captured.err.count("\n") == 1
    assert "choose a new --out, or delete" in captured.err
    assert (out / "heldout_check.csv").read_bytes() == first
