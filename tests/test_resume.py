"""Nothing lost: SIGKILL, Ctrl-C (SIGINT) and SIGTERM mid-run, a full disk, then resume, and get the numbers
of an uninterrupted run."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from al_bnn_lab.published import compare_gpa_rand
from test_scripts import tiny_configs

# Every test here trains models beyond a few steps or runs scripts: the slow tier (pytest -m slow).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
CONFIG = {
    "al_schedule": {"al_iter": 3, "num_al_incr": 10, "num_train_init": 20},
    "net_config": {"layer_sizes": [16, 16], "learning_rate": 0.003},
    "parms": {"n_mc_samples": 20, "sampling_batch_size": 5},
    "train_schedule": {"batch_size": 8, "num_epochs": 40, "eval_after_epochs": 5, "log_after_epochs": 40},
}
SIZES = ["--size-pool", "150", "--size-test", "60", "--quiet"]
TIMING = {"selection_seconds", "training_seconds", "calibration_seconds"}  # wall-clock: differ between runs


def configs(tmp_path):
    """test_scripts' tiny configs with every section key replaced by CONFIG's (a longer run to interrupt)."""
    return tiny_configs(tmp_path, **CONFIG)


def table(path):
    with open(path) as stream:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(stream)]


def start(tmp_path, out):
    env = {**os.environ, "PYTHONPATH": str(REPO / "source")}
    return subprocess.Popen([sys.executable, str(REPO / "source" / "compare_gpa_rand.py"), *configs(tmp_path), *SIZES,
                             "--results-dir", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the test could interrupt it:\n{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, needs_housing):
    tmp_path = tmp_path_factory.mktemp("reference")
    out = tmp_path / "uninterrupted"
    assert compare_gpa_rand([*configs(tmp_path), *SIZES, "--results-dir", str(out)]) == 0
    return out


def assert_same_results(out, reference):
    for name in ("metrics_lrgpa.csv", "metrics_random.csv", "selected_lrgpa.csv", "selected_random.csv",
                 "acquisitions_lrgpa.csv"):
        assert table(out / name) == table(reference / name), name
    assert (out / "gpa_vs_rand.png").exists()


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_numbers(tmp_path, reference):
    out = tmp_path / "killed"
    process = start(tmp_path, out)
    checkpoint = out / "checkpoint_0.npz"
    wait_for(checkpoint.exists, process)  # the first phase is done and saved
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "metrics_lrgpa.csv").exists()
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, reference)
    assert "resuming" in (out / "log.txt").read_text()


def test_ctrl_c_saves_a_checkpoint_and_partial_metrics_and_resumes_exactly(tmp_path, reference):
    out = tmp_path / "interrupted"
    process = start(tmp_path, out)
    wait_for(lambda: (out / "checkpoint_0.npz").exists(), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "Resume with" in log and f"--resume {out}" in log
    partial = table(out / "metrics_lrgpa.csv")
    assert 0 < len(partial) < len(table(reference / "metrics_lrgpa.csv"))
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, reference)


def test_resume_of_a_finished_run_rewrites_the_same_results(tmp_path, reference):
    import shutil
    out = tmp_path / "again"
    shutil.copytree(reference, out)
    (out / "metrics_lrgpa.csv").unlink()
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 0
    assert table(out / "metrics_lrgpa.csv") == table(reference / "metrics_lrgpa.csv")


def test_resume_needs_a_results_directory(tmp_path, capsys):
    assert compare_gpa_rand(["--resume", str(tmp_path), "--quiet"]) == 2
    assert "has no run.yaml" in capsys.readouterr().err


@pytest.mark.usefixtures("needs_housing")
def test_divergence_stops_with_a_message_naming_run_iteration_and_epoch(tmp_path, monkeypatch, capsys):
    from al_bnn.models.trainer import StackedTrainer
    original_fit = StackedTrainer.fit
    calls = {"count": 0}

    def fit_then_diverge(self, *args, on_evaluation=None, **kwargs):
        def poisoned(metrics):
            calls["count"] += 1
            if calls["count"] > 9:  # 8 evaluations per phase of 40 epochs: the 10th is phase 1, epoch 10
                metrics.train_rmse = metrics.train_rmse * np.nan
            return on_evaluation(metrics)
        return original_fit(self, *args, on_evaluation=poisoned, **kwargs)

    monkeypatch.setattr(StackedTrainer, "fit", fit_then_diverge)
    out = tmp_path / "diverged"
    small = [*configs(tmp_path), *SIZES, "--results-dir", str(out)]
    assert compare_gpa_rand(small) == 3
    log = (out / "log.txt").read_text()
    assert "training diverged (NaN or inf) in run(s) lrgpa, random at AL iteration 1, epoch 10" in log
    from al_bnn.checkpoint import load_checkpoint
    kept = load_checkpoint(out / "checkpoint_0.npz")  # the last good one: the end of phase 0
    assert (kept.phase, kept.epoch, kept.finished) == (1, 0, False)


def test_ctrl_c_in_the_first_phase_saves_and_resumes_exactly(tmp_path, reference):
    from al_bnn.checkpoint import load_checkpoint

    out = tmp_path / "first_phase"
    process = start(tmp_path, out)
    wait_for(lambda: (out / "run.yaml").exists(), process)  # training is about to start: phase 0
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130, stderr[-3000:]
    saved = load_checkpoint(out / "checkpoint_0.npz")
    assert saved.phase == 0 and 0 < saved.epoch < 40  # stopped inside the first phase
    assert "Resume with" in (out / "log.txt").read_text()
    assert 0 < len(table(out / "metrics_lrgpa.csv")) < 8 and (out / "selected_lrgpa.csv").exists()
    assert not (out / "acquisitions_lrgpa.csv").exists()  # no phase finished yet
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, reference)


def test_sigterm_in_the_second_phase_saves_and_resumes_exactly(tmp_path, reference):
    out = tmp_path / "terminated"
    process = start(tmp_path, out)
    wait_for(lambda: (out / "checkpoint_0.npz").exists(), process)  # phase 0 done: now in phase 1
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 143, stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "SIGTERM: stopping at the next evaluation point" in log and f"--resume {out}" in log
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, reference)


@pytest.mark.usefixtures("needs_housing")
def test_a_second_signal_aborts_at_once(tmp_path):
    out = tmp_path / "aborted"
    process = start(tmp_path, out)
    wait_for(lambda: (out / "run.yaml").exists(), process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 143 and "aborted by a second SIGTERM" in stderr, stderr[-3000:]


@pytest.mark.usefixtures("needs_housing")
def test_a_full_disk_stops_with_one_message_and_resume_continues_once_there_is_space(tmp_path, monkeypatch, capsys,
                                                                                     reference):
    import errno

    from al_bnn.models.trainer import StackedTrainer
    original_fit = StackedTrainer.fit
    disk = {"full": False}

    def fit_then_fill_the_disk(self, *args, phase=0, **kwargs):
        disk["full"] = phase >= 2  # phases 0 and 1 are saved; the disk fills up during phase 2
        return original_fit(self, *args, phase=phase, **kwargs)

    real_fsync = os.fsync

    def fsync(fd):
        if disk["full"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(StackedTrainer, "fit", fit_then_fill_the_disk)
    monkeypatch.setattr("al_bnn.safe_arrays.os.fsync", fsync)
    out = tmp_path / "full"
    assert compare_gpa_rand([*configs(tmp_path), *SIZES, "--results-dir", str(out)]) == 5
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert f"could not write the checkpoint {out / 'checkpoint_0.npz'}: No space left on device" in err
    assert f"--resume {out}" in err
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.tmp"))  # nothing half-written
    from al_bnn.checkpoint import load_checkpoint
    assert load_checkpoint(out / "checkpoint_0.npz").phase == 2  # the end of phase 1, untouched
    assert not (out / "metrics_lrgpa.csv").exists()  # no partial table that looks complete

    monkeypatch.setattr(StackedTrainer, "fit", original_fit)
    disk["full"] = False  # space is back
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, reference)
