"""The study runs its own held-out check: `run_study.py --uci-root DIR` checks the recommended
default against random on every dataset of DIR the study did not use, and the report states the
check (with Q6's prediction interval) and, where it ran, its results."""

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn.recipe import DEFAULT_SAMPLER
from al_bnn_lab import heldout_check
from al_bnn_lab import study as run_study

REPO_ROOT = Path(__file__).resolve().parent.parent
UCI_ROOT = REPO_ROOT / "data" / "uci"


def write_synthetic(folder: Path, rows: int = 60) -> None:
    folder.mkdir(parents=True)
    generator = np.random.default_rng(0)
    features = generator.uniform(-1, 1, size=(rows, 2))
    np.savetxt(folder / "data.txt", np.column_stack([features, features.sum(axis=1)]), fmt="%.6f")
    (folder / "index_features.txt").write_text("0\n1\n")
    (folder / "index_target.txt").write_text("2\n")


def copy_shipped(root: Path, name: str, as_name: str | None = None) -> None:
    shutil.copytree(UCI_ROOT / name, root / (as_name or name))


def test_the_check_runs_on_the_datasets_the_study_did_not_use(tmp_path, caplog):
    root = tmp_path / "uci"
    copy_shipped(root, "yacht")
    assert run_study.heldout_datasets(str(root)) == []  # only the study's own
    assert run_study.heldout_datasets(str(UCI_ROOT)) == []  # the shipped sets are all the study's
    assert run_study.heldout_datasets(None) == []
    copy_shipped(root, "energy", as_name="renamed")  # the study's data under another name
    write_synthetic(root / "synth")
    assert run_study.heldout_datasets(str(root)) == ["synth"]
    (root / "synth").rename(root / "file")  # a name the data loader reads otherwise: logged, not raised
    with caplog.at_level(logging.WARNING, logger="al_bnn.study"):
        assert run_study.heldout_datasets(str(root)) == []
    assert "held-out check: not run" in caplog.text and "reserved" in caplog.text


def test_the_study_runs_the_check_after_its_questions_only_when_asked_to_run(tmp_path, monkeypatch):
    root = tmp_path / "uci"
    for name in ("yacht", "energy"):  # the quick study's datasets
        copy_shipped(root, name)
    write_synthetic(root / "synth")
    calls = []
    monkeypatch.setattr(heldout_check, "run_check", lambda args, command: calls.append(args))
    results = tmp_path / "results"
    common = ["--quick", "--results-dir", str(results), "--uci-root", str(root)]
    assert run_study.main([*common, "--report-only"]) == 0
    assert calls == []  # --report-only runs nothing
    assert run_study.main([*common, "--questions", "q5"]) == 0
    (args,) = calls
    assert args.sampler == DEFAULT_SAMPLER and args.seeds == [0, 1, 2, 3, 4] and args.quick
    assert Path(args.out) == results / run_study.HELDOUT_DIR and args.uci_root == str(root)


@pytest.mark.slow
def test_the_report_states_the_check_and_shows_its_results(tmp_path):
    """Without a check's table: the committed report (test_study.py rebuilds it exactly from the
    committed data). With one in the results directory: --report-only over a copy of the committed data."""
    text = (REPO_ROOT / "docs" / "study.md").read_text()
    stated = re.search(r"\*\*Checking the default on a new dataset\*\* \(the rule, fixed before any check ran\)\. "
                       r"Run (\w+) and random.*?its 95% prediction interval is ([-+][0-9.]+) to ([-+][0-9.]+)", text)
    assert stated and stated.group(1) == DEFAULT_SAMPLER
    interval = heldout_check.study_prediction_interval(DEFAULT_SAMPLER)  # from docs/study_data/q6.csv.gz
    assert (stated.group(2), stated.group(3)) == (f"{interval.low:+.3f}", f"{interval.high:+.3f}")
    committed_check = REPO_ROOT / "docs" / "study_data" / "heldout_check.csv"
    assert ("The check has not run with this report." in text) != committed_check.exists()
    shutil.copytree(REPO_ROOT / "docs" / "study_data", tmp_path / "study_data")

    rows = pd.DataFrame([
        dict(dataset="synth", pool_size=96, paired_seeds=5, random_mean_log_rmse=0.5, sampler=DEFAULT_SAMPLER,
             sampler_mean_log_rmse=0.6, difference=0.1, half_width=0.05, low=0.05, high=0.15,
             verdict=heldout_check.check_verdict([0.1, 0.12, 0.08, 0.11, 0.09]), prediction_low=interval.low,
             prediction_high=interval.high, against_prediction=heldout_check.against_prediction(0.1, interval.low,
                                                                                                interval.high)),
        dict(dataset="other", pool_size=1200, paired_seeds=5, random_mean_log_rmse=0.5, sampler=DEFAULT_SAMPLER,
             sampler_mean_log_rmse=0.45, difference=-0.05, half_width=0.01, low=-0.06, high=-0.04,
             verdict=heldout_check.check_verdict([-0.05, -0.04, -0.06, -0.05, -0.05]), prediction_low=interval.low,
             prediction_high=interval.high, against_prediction="below it (from an older Q6)")])
    (tmp_path / run_study.HELDOUT_DIR).mkdir()
    rows.to_csv(tmp_path / run_study.HELDOUT_DIR / heldout_check.TABLE_FILE, index=False)
    assert run_study.main(["--report-only", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "study.md").read_text()
    assert "The check has not run with this report" not in text
    assert "**The check on 2 datasets the study never used** (synth and other): 1 fail (synth)." in text
    assert f"| synth | 96 | 5 | +0.100 ± 0.050 | {heldout_check.VERDICTS['higher']} | above it" in text
    # recomputed against this report's interval, not copied from the check's table
    assert "| other | 1,200 | 5 | -0.050 ± 0.010 |" in text and "from an older Q6" not in text
    copied = pd.read_csv(tmp_path / "study_data" / "heldout_check.csv")
    assert copied["dataset"].tolist() == ["synth", "other"]  # next to the report, so --report-only rebuilds it


def test_a_check_that_cannot_finish_leaves_the_report_to_be_written(tmp_path, monkeypatch, caplog):
    from al_bnn.results import ResultsDirectoryExistsError

    def refused(args, command):
        raise ResultsDirectoryExistsError(f"{args.out}: made with other settings; pass --overwrite")

    monkeypatch.setattr(heldout_check, "run_check", refused)
    with caplog.at_level(logging.WARNING, logger="al_bnn.study"):
        run_study.run_heldout_check(str(UCI_ROOT), tmp_path, 1, quick=True)  # logged, not raised
    assert "held-out check: not finished, so the report leaves it out" in caplog.text
    assert "--overwrite to start it over" in caplog.text


def test_an_empty_or_broken_table_next_to_the_runs_is_one_named_error(tmp_path):
    from al_bnn.data import DataFileError

    (tmp_path / run_study.HELDOUT_DIR).mkdir()
    broken = tmp_path / run_study.HELDOUT_DIR / heldout_check.TABLE_FILE
    broken.write_bytes(b"")  # a write cut short
    with pytest.raises(DataFileError, match=r"heldout_check\.csv: not readable as a table .*delete it"):
        run_study._first_table(broken, tmp_path / "study_data" / "heldout_check.csv")
    assert run_study._first_table(tmp_path / "missing.csv").empty
