"""Results nobody can hijack or silently corrupt: checkpoints that cannot run code, resumes that
check what they resume, one writer per directory, clear errors instead of tracebacks, and files
readable under the user's umask."""

import errno
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from al_bnn.config import ConfigError, load_config, read_yaml
from al_bnn.results import LOCK_FILE, DirectoryLock, ResultsWriter
from al_bnn.safe_arrays import save_arrays
from al_bnn_lab.published import compare_gpa_rand
from test_scripts import SIZES, tiny_configs

REPO = Path(__file__).resolve().parent.parent

@pytest.fixture(scope="module")
def finished(tmp_path_factory, needs_housing):
    """A finished tiny run, copied by each test that tampers with it."""
    folder = tmp_path_factory.mktemp("finished")
    out = folder / "results"
    assert compare_gpa_rand([*tiny_configs(folder), *SIZES, "--results-dir", str(out)]) == 0
    return out


def copy_of(finished, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    return out


# -- checkpoints that cannot run code -------------------------------------------------------------

class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["checkpoint_0.npz", "checkpoint_0.pkl"])
def test_a_malicious_pickle_checkpoint_is_refused_and_runs_nothing(finished, tmp_path, capsys, name):
    out = copy_of(finished, tmp_path)
    marker = tmp_path / "hijacked"
    (out / "checkpoint_0.npz").unlink()
    (out / name).write_bytes(pickle.dumps(RunsACommand(marker), protocol=4))
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(out / name) in err and "pickle" in err and "refused" in err
    assert not marker.exists()


def test_a_truncated_or_foreign_checkpoint_is_refused_naming_the_file(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    checkpoint = out / "checkpoint_0.npz"
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    assert f"checkpoint refused: {checkpoint}: unreadable (truncated" in capsys.readouterr().err

    save_arrays(checkpoint, "al_bnn checkpoint", 99, {}, {})
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    assert "format version 99 is not one this version of the package reads" in capsys.readouterr().err

    save_arrays(checkpoint, "al_bnn estimator", 1, {}, {})
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    assert "a 'al_bnn estimator' file, not a 'al_bnn checkpoint' file" in capsys.readouterr().err
    for name in ("metrics_lrgpa.csv", "config_lrgpa.yaml"):  # the finished results were left alone
        assert (out / name).read_bytes() == (finished / name).read_bytes()


# -- resume checks what it resumes ----------------------------------------------------------------

def test_an_edited_run_yaml_is_refused_naming_each_changed_key(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    manifest = yaml.safe_load((out / "run.yaml").read_text())
    config = manifest["runs"][0]["config"]  # lrgpa
    config["parms"]["sample_policy"] = "mcdue"
    config["train_schedule"]["num_epochs"] = 9
    config["seed"] = 7
    config["data"]["size_pool"] = 110
    (out / "run.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    before = (out / "config_lrgpa.yaml").read_text()
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    for change in ["lrgpa: parms.sample_policy: 'lrgpa' -> 'mcdue'", "lrgpa: train_schedule.num_epochs: 6 -> 9",
                   "lrgpa: seed: 0 -> 7", "lrgpa: data.size_pool: 120 -> 110", "lrgpa: data arrays: 'housing, pool "
                   "[120, 5]"]:
        assert change in err, change
    assert "random:" not in err  # the untouched run is not reported
    assert (out / "config_lrgpa.yaml").read_text() == before  # nothing was rewritten


def test_changed_data_is_refused(finished, tmp_path, capsys, monkeypatch):
    out = copy_of(finished, tmp_path)
    import al_bnn.data as data

    original = data.housing_arrays

    def edited():
        features, target = original()
        return features, target * 1.01

    monkeypatch.setattr(data, "housing_arrays", edited)
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "lrgpa: data arrays: 'housing, pool [120, 5], test [50, 5], sha256" in err


@pytest.mark.parametrize("text,message", [
    ("runs: [\n", "not valid YAML"),
    ("something: else\n", "not a run manifest of this script"),
    ("runs:\n- label: a\n  label: b\n", "key 'label' is given twice, on lines 2 and 3"),
])
def test_a_malformed_run_yaml_is_a_clear_error(finished, tmp_path, capsys, text, message):
    out = copy_of(finished, tmp_path)
    (out / "run.yaml").write_text(text)
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(out / "run.yaml") in err and message in err and "Traceback" not in err


# -- one writer per directory ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", [["--overwrite"], ["--resume"], []])
def test_a_second_run_into_a_locked_directory_is_refused_naming_the_holder(finished, tmp_path, capsys, mode):
    out = copy_of(finished, tmp_path)
    if not mode:  # a new directory that another run has just taken
        out = tmp_path / "fresh"
        out.mkdir()
    with DirectoryLock(out).acquire():
        before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir() if p.name != LOCK_FILE)
        args = ["--resume", str(out), "--quiet"] if mode == ["--resume"] else [
            *tiny_configs(tmp_path), *SIZES, "--results-dir", str(out), *mode]
        assert compare_gpa_rand(args) == 4
        err = capsys.readouterr().err
        assert f"{out} is in use by another run (PID {os.getpid()} on host {socket.gethostname()}" in err
        assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir() if p.name != LOCK_FILE) == before


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_two_concurrent_runs_the_second_is_refused(tmp_path, capsys):
    out = tmp_path / "contested"
    configs = tiny_configs(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO / "source")}
    first = subprocess.Popen([sys.executable, str(REPO / "source" / "compare_gpa_rand.py"), *configs, *SIZES,
                              "--results-dir", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / LOCK_FILE).exists() or f'"pid": {first.pid}' not in (out / LOCK_FILE).read_text():
        assert first.poll() is None and time.monotonic() < deadline, "the first run did not start"
        time.sleep(0.05)
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out), "--overwrite"]) == 4
    assert f"in use by another run (PID {first.pid}" in capsys.readouterr().err
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert (out / "gpa_vs_rand.png").exists() and "starting 2 run(s)" in (out / "log.txt").read_text()
    assert (out / LOCK_FILE).read_text() == ""  # released


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_FILE).write_text(json.dumps(dict(pid=dead.pid, host=socket.gethostname(), started="earlier",
                                                 command="a killed run")))
    assert compare_gpa_rand([*tiny_configs(tmp_path), *SIZES, "--results-dir", str(out)]) == 0
    log = (out / "log.txt").read_text()
    assert f"took over the lock of {out}, left by a run that is no longer running (PID {dead.pid}" in log


def test_without_flock_a_live_holder_on_this_host_is_refused_and_a_dead_one_replaced(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "no locks on this file system")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    alive = dict(pid=os.getppid(), host=socket.gethostname(), started="now", command="another run")
    (tmp_path / LOCK_FILE).write_text(json.dumps(alive))
    with pytest.raises(RuntimeError, match=f"in use by another run \\(PID {os.getppid()}"):
        DirectoryLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE).write_text(json.dumps({**alive, "pid": 2**22 + 12345}))  # no such process
    lock = DirectoryLock(tmp_path).acquire()
    assert lock.taken_over["pid"] == 2**22 + 12345
    lock.release()
    assert (tmp_path / LOCK_FILE).read_text() == ""


# -- permissions ----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
@pytest.mark.parametrize("umask", [0o022, 0o007])
def test_result_files_get_the_permissions_of_the_users_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        out = tmp_path / "shared_results"
        assert compare_gpa_rand([*tiny_configs(tmp_path), *SIZES, "--results-dir", str(out)]) == 0
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in out.iterdir()}
    assert {"metrics_lrgpa.csv", "config_lrgpa.yaml", "run.yaml", "gpa_vs_rand.png", "log.txt",
            "checkpoint_0.npz", LOCK_FILE} <= set(modes)
    assert set(modes.values()) == {0o666 & ~umask}, modes


# -- clear errors instead of tracebacks -----------------------------------------------------------

@pytest.mark.usefixtures("needs_housing")
@pytest.mark.parametrize("changes,key", [
    ({"parms": {"n_mc_samples": 10_000_000_000}}, "parms.n_mc_samples"),
    ({"net_config": {"layer_sizes": [1_000_000_000]}}, "net_config.layer_sizes"),
])
def test_settings_that_cannot_fit_in_memory_are_refused_before_training(tmp_path, capsys, changes, key):
    out = tmp_path / "huge"
    assert compare_gpa_rand([*tiny_configs(tmp_path, **changes), *SIZES, "--results-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "are available on this machine; lower " + key in err
    assert not out.exists()


def test_the_memory_estimate_names_the_largest_part():
    from al_bnn.config import config_from_dict
    from al_bnn.memory import MemoryEstimateError, check_fits

    config = config_from_dict({"parms": {"sample_policy": "gpa"}})
    check_fits([config], ["gpa"], n_pool=14448, n_test=6192, n_features=5, available=8 * 2**30)  # published: fits
    with pytest.raises(MemoryEstimateError, match=r"dense 14,448 x 14,448 pool covariance: 1.8 GiB.*lower data"):
        check_fits([config], ["gpa"], n_pool=14448, n_test=6192, n_features=5, available=2**30)


def test_the_memory_estimate_counts_the_gradient_features_of_lcmd_on_grad():
    from al_bnn.config import config_from_dict
    from al_bnn.memory import MemoryEstimateError, acquisition_parts, check_fits

    grad = config_from_dict({"parms": {"sample_policy": "lcmd", "family_kernel": "grad"}})
    mc = config_from_dict({"parms": {"sample_policy": "lcmd", "family_kernel": "mc"}})
    features = [part for part in acquisition_parts(grad, 10**6) if part.key.startswith("parms.family_sketch_dim")]
    assert len(features) == 1 and features[0].bytes == 2.0 * 10**6 * 512 * 8  # float64 features and a copy
    assert not [part for part in acquisition_parts(mc, 10**6) if part.key.startswith("parms.family_sketch_dim")]
    with pytest.raises(MemoryEstimateError, match=r"gradient features of 1,000,000 points x 512 sketch columns"):
        check_fits([grad], ["lcmd"], n_pool=10**6, n_test=100, n_features=8, available=6 * 2**30)


def test_the_memory_estimate_counts_the_calibration_copy():
    from al_bnn.config import config_from_dict
    from al_bnn.memory import training_parts

    def parts(calibration):
        config = config_from_dict({"net_config": {"layer_sizes": [512, 512]},
                                   "train_schedule": {"calibration": calibration}})
        return training_parts(config, 10, 8, 100)

    plain, calibrated = parts("none"), parts("holdout")
    assert calibrated[:len(plain)] == plain and len(calibrated) == len(plain) + 1
    copy, weights = calibrated[-1], plain[0]
    assert copy.key == "train_schedule.calibration" and "calibration copy" in copy.what
    assert weights.what.startswith("network weights") and copy.bytes == weights.bytes  # the same 10 networks again


@pytest.mark.usefixtures("needs_housing")
def test_a_read_only_results_file_system_is_one_message_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    out = tmp_path / "ro"
    assert compare_gpa_rand([*tiny_configs(tmp_path), *SIZES, "--results-dir", str(out)]) == 5
    err = capsys.readouterr().err
    assert f"error: could not write the results file {out / 'run.yaml'}: Read-only file system" in err
    assert "Traceback" not in err and not out.exists()


def test_a_log_that_cannot_be_written_warns_once_and_is_reported(tmp_path, capsys):
    import logging

    writer = ResultsWriter(tmp_path / "r")
    log = logging.getLogger("al_bnn.test_full_log")
    log.propagate = False
    writer.attach_log(log)

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self):
            pass

    writer._log_handler.stream = FullDisk()
    for line in range(10):
        log.warning("line %d", line)
    err = capsys.readouterr().err
    assert err.count("could not write the log") == 1 and "Traceback" not in err
    writer._log_handler.stream = open(os.devnull, "w")
    writer.detach_log(log)
    assert "No space left on device" in str(writer.log_failure)


def test_duplicate_keys_and_non_utf8_configs_are_named(tmp_path):
    duplicated = tmp_path / "twice.yaml"
    duplicated.write_text("train_schedule:\n  num_epochs: 3\nparms:\n  n_mc_samples: 5\ntrain_schedule:\n"
                          "  batch_size: 4\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: key 'train_schedule' is given twice, on lines 1 and 5"):
        load_config(duplicated)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("seed: 1  # café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.yaml: not a UTF-8 text file \(byte 0xe9 at line 1\)"):
        load_config(latin)
    merged = tmp_path / "merge.yaml"
    merged.write_text("base: &base {a: 1, b: 2}\nvariant:\n  <<: *base\n  b: 3\n")  # overriding a merge is fine
    assert read_yaml(merged) == {"base": {"a": 1, "b": 2}, "variant": {"a": 1, "b": 3}}


def test_plugins_that_are_missing_or_raise_are_named(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('plugin is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for module, message in [("no_such_plugin", "there is no module 'no_such_plugin'"),
                            ("broken_plugin", "importing it raised RuntimeError: plugin is broken at ")]:
        assert compare_gpa_rand([*tiny_configs(tmp_path), *SIZES, "--results-dir", str(tmp_path / "p"),
                                 "--plugins", module]) == 2
        err = capsys.readouterr().err
        assert f"--plugins {module}: could not import the module: {message}" in err and "Traceback" not in err


def test_a_resume_needs_the_plugins_the_run_was_started_with(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    manifest = yaml.safe_load((out / "run.yaml").read_text())
    manifest["plugins"] = ["my_samplers"]
    (out / "run.yaml").write_text(yaml.safe_dump(manifest))
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    assert "started with --plugins my_samplers; pass the same --plugins to resume" in capsys.readouterr().err


def test_data_files_without_rows_or_with_object_arrays_are_named(tmp_path):
    from al_bnn.data import DataFileError, read_table

    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(DataFileError, match="header.csv: no data rows"):
        read_table(header_only, "a")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([[1], [2]], dtype=object), y=np.array([1.0, 2.0]))
    with pytest.raises(DataFileError, match="objects.npz: holds object"):
        read_table(objects, None)
