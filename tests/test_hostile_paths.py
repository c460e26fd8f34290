"""Issue 31, the path policy: nothing the package writes, truncates, locks or deletes lies outside the
folder the user named. Each test plants what a hostile user (or an unlucky one) would, and checks that
every file outside the output folder is left exactly as it was."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from al_bnn.config import config_from_dict
from al_bnn.errors import InputError
from al_bnn.paths import UnsafePathError, inside, safe_name
from al_bnn.results import LOCK_FILE, WRITTEN_FILE, DirectoryLock, ResultsWriter
from al_bnn.suggest import main as suggest_main
from al_bnn_lab import benchmark as run_benchmark
from al_bnn_lab.published import compare_gpa_rand
from al_bnn_lab.suggest_example import split_example
from test_scripts import SIZES, TINY, tiny_configs

PRECIOUS = b"a file of the user's, outside the output folder\n"
SUGGEST_CONFIG = """\
net_config: {layer_sizes: [8, 8], learning_rate: 0.01}
train_schedule: {num_epochs: 4}
parms: {sample_policy: lrgpa, n_mc_samples: 20, sampling_batch_size: 4}
"""


def snapshot(root: Path, out: Path) -> dict:
    """Every entry under `root` except the output folder `out`: kind, content hash, size and mtime."""
    state = {}
    for folder, folders, files in os.walk(root, followlinks=False):
        folders[:] = [name for name in folders if Path(folder, name) != out]
        for name in files + folders:
            path = Path(folder, name)
            info = os.lstat(path)
            if path.is_symlink():
                state[path] = ("link", os.readlink(path))
            elif path.is_file():
                state[path] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), info.st_size, info.st_mtime_ns)
            else:
                state[path] = ("other", info.st_mode)
    return state


@pytest.fixture
def outside(tmp_path):
    """A precious file outside the output folder, and a check that nothing outside it changed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "important.txt"
    precious.write_bytes(PRECIOUS)
    os.utime(precious, ns=(1_000_000_000, 1_000_000_000))

    class Outside:
        def __init__(self):
            self.out = tmp_path / "out"
            self.precious = precious
            self.before = None

        def freeze(self):
            self.before = snapshot(tmp_path, self.out)

        def unchanged(self):
            assert self.precious.read_bytes() == PRECIOUS
            assert self.precious.stat().st_mtime_ns == 1_000_000_000
            after = snapshot(tmp_path, self.out)
            assert sorted(map(str, set(after) - set(self.before))) == [], "written outside the output folder"
            assert sorted(map(str, set(self.before) - set(after))) == [], "deleted outside the output folder"
            assert {p: v for p, v in after.items() if self.before[p] != v} == {}, "changed outside the output folder"

    return Outside()


@pytest.fixture
def airfoil(tmp_path):
    split_example("airfoil", 20, tmp_path)
    (tmp_path / "tiny.yaml").write_text(SUGGEST_CONFIG)
    return tmp_path


def suggest_args(folder, out, *extra, labelled="labelled.csv"):
    return ["--labelled", str(folder / labelled), "--target", "sound_pressure", "--pool", str(folder / "pool.csv"),
            "--n", "4", "--out", str(out), "--config", str(folder / "tiny.yaml"), "--id-column", "id", *extra]


# -- the policy itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x/../../HIJACK", "../evil", "/abs/evil", "..", ".hidden", "a\\b", "", "a" * 200,
                                  "nul\0byte", "new\nline"])
def test_unsafe_names_are_refused_naming_the_value(name):
    with pytest.raises(UnsafePathError, match=r"run label .* cannot be used in a file name") as caught:
        safe_name(name, "run label")
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2
    assert safe_name("lrgpa_rs_0", "run label") == "lrgpa_rs_0"


def test_a_path_through_a_linked_folder_is_refused(tmp_path, outside):
    out = outside.out
    out.mkdir()
    (out / "runs").symlink_to(outside.precious.parent, target_is_directory=True)
    outside.freeze()
    with pytest.raises(UnsafePathError, match="symbolic link"):
        inside(out, "runs/important.txt")
    writer = ResultsWriter(out, overwrite=True, lock=True)
    with pytest.raises(UnsafePathError):
        writer.write_text("runs/important.txt", "hijacked")
    writer.close()
    outside.unchanged()


# -- item 1: run labels from run.yaml become file names ------------------------------------------------

@pytest.mark.usefixtures("needs_housing")
def test_1_a_resume_with_a_label_that_climbs_out_is_refused(tmp_path, outside, capsys):
    out = outside.out
    out.mkdir()
    config = config_from_dict({**TINY, "data": {"size_pool": 120, "size_test": 50},
                               "parms": {**TINY["parms"], "sample_policy": "random"}}).to_dict()
    label = "x/../../elsewhere/HIJACK"  # out/config_x/../../elsewhere/HIJACK.yaml is outside out
    (out / "run.yaml").write_text(yaml.safe_dump({"plugins": [], "runs": [
        {"label": label, "group": "random", "config": config}]}, sort_keys=False))
    outside.freeze()
    assert compare_gpa_rand(["--resume", str(out), "--quiet"]) == 2
    assert f"run label {label!r} cannot be used in a file name" in capsys.readouterr().err
    outside.unchanged()
    assert not list(outside.precious.parent.glob("HIJACK*"))


# -- items 2 and 3: a lock file or log that is a link -----------------------------------------------------

@pytest.mark.usefixtures("needs_housing")
def test_2_a_linked_lock_file_is_refused_and_its_target_kept(tmp_path, outside, capsys):
    out = outside.out
    out.mkdir()
    (out / LOCK_FILE).symlink_to(outside.precious)
    configs = tiny_configs(tmp_path)
    outside.freeze()
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out)]) == 2
    assert f"the lock file {out / LOCK_FILE} is a symbolic link" in capsys.readouterr().err
    outside.unchanged()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_2_the_lock_never_truncates_a_linked_file(tmp_path, outside, link):
    out = outside.out
    out.mkdir()
    if link == "symlink":
        (out / LOCK_FILE).symlink_to(outside.precious)
    else:
        os.link(outside.precious, out / LOCK_FILE)
    outside.freeze()
    with pytest.raises(UnsafePathError, match="symbolic link|hard links"):
        DirectoryLock(out).acquire()
    outside.unchanged()


@pytest.mark.usefixtures("needs_housing")
def test_3_a_linked_log_of_the_comparison_scripts_is_refused_with_overwrite(tmp_path, outside, capsys):
    out = outside.out
    out.mkdir()
    (out / "log.txt").symlink_to(outside.precious)
    configs = tiny_configs(tmp_path)
    outside.freeze()
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out), "--overwrite"]) == 2
    assert f"the log {out / 'log.txt'} is a symbolic link" in capsys.readouterr().err
    outside.unchanged()


def test_3_a_linked_log_of_suggest_is_refused(airfoil, outside, capsys):
    out = outside.out
    out.mkdir()
    (out / "log.txt").symlink_to(outside.precious)
    outside.freeze()
    assert suggest_main(suggest_args(airfoil, out)) == 2
    assert f"the log {out / 'log.txt'} is a symbolic link" in capsys.readouterr().err
    outside.unchanged()


# -- item 5: benchmark dataset names that climb out or are absolute ---------------------------------------

@pytest.mark.parametrize("name", ["../../elsewhere/evilds", "ABSOLUTE"])
def test_5_a_dataset_name_with_dots_or_absolute_is_refused_before_training(tmp_path, outside, capsys, name):
    name = str(outside.precious.parent / "evilds") if name == "ABSOLUTE" else name
    rng = np.random.default_rng(0)
    data = tmp_path / "small.csv"
    values = rng.normal(size=(80, 3))
    np.savetxt(data, np.column_stack([values, values.sum(1)]), delimiter=",", header="a,b,c,y", comments="")
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({
        "datasets": [{"name": name, "path": str(data), "target": "y"}], "samplers": ["random"], "seeds": [0],
        "schedule": {"default": {"num_train_init": 10, "num_al_incr": 5, "al_iter": 1}},
        "experiment": {"net_config": {"layer_sizes": [4], "learning_rate": 0.01}, "parms": {"n_mc_samples": 4},
                       "train_schedule": {"num_epochs": 1, "eval_after_epochs": 1, "log_after_epochs": 1}}}))
    outside.freeze()
    assert run_benchmark.main(["--config", str(config), "--out", str(outside.out)]) == 2
    assert f"dataset name {name!r} cannot be used in a file name" in capsys.readouterr().err
    outside.unchanged()


# -- item 6: --overwrite deletes only what the package wrote ----------------------------------------------

@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_6_overwrite_keeps_a_users_checkpoint_and_deletes_only_listed_ones(tmp_path, outside):
    out = outside.out
    out.mkdir()
    (out / "checkpoint_best.npz").write_bytes(b"the user's own model")
    (out / "checkpoint_7.npz").write_bytes(b"stale, written by an earlier run here")
    (out / WRITTEN_FILE).write_text("checkpoint_7.npz\nmetrics_old.csv\n../elsewhere/important.txt\n")
    (out / "metrics_old.csv").write_text("kept: --overwrite replaces only the files this run writes\n")
    configs = tiny_configs(tmp_path, ["lrgpa"])
    outside.freeze()
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out), "--overwrite"]) == 0
    assert (out / "checkpoint_best.npz").read_bytes() == b"the user's own model"
    assert not (out / "checkpoint_7.npz").exists() and (out / "checkpoint_0.npz").is_file()
    assert (out / "metrics_old.csv").is_file()
    listed = (out / WRITTEN_FILE).read_text().splitlines()
    assert "checkpoint_0.npz" in listed and "metrics_lrgpa.csv" in listed and "checkpoint_7.npz" not in listed
    # the user's checkpoint_best.npz is not taken for a checkpoint of a stack that no longer exists
    assert compare_gpa_rand(["--resume", str(out)]) == 0
    assert (out / "checkpoint_best.npz").read_bytes() == b"the user's own model"
    outside.unchanged()


# -- item 13 and item 22: suggest's lock ----------------------------------------------------------------

def test_13_a_fifo_lock_is_refused_instead_of_hanging(airfoil, outside, capsys):
    out = outside.out
    out.mkdir()
    os.mkfifo(out / ".lock")
    outside.freeze()
    # a reader, so that code opening the FIFO for writing (the hang reported) fails this test instead of hanging it
    reader = os.open(out / ".lock", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert suggest_main(suggest_args(airfoil, out)) == 2
    finally:
        os.close(reader)
    assert f"the lock file {out / '.lock'} is a FIFO" in capsys.readouterr().err
    outside.unchanged()


def test_22_a_refused_suggest_leaves_no_output_folder(airfoil, outside, capsys):
    outside.freeze()
    assert suggest_main(suggest_args(airfoil, outside.out, labelled="missing.csv")) == 2
    assert "missing.csv: labelled file not found" in capsys.readouterr().err
    assert not outside.out.exists()
    outside.unchanged()


def test_22_a_dangling_lock_link_creates_nothing_outside(airfoil, outside, capsys):
    out = outside.out
    out.mkdir()
    (out / ".lock").symlink_to(outside.precious.parent / "created_by_the_lock")
    outside.freeze()
    assert suggest_main(suggest_args(airfoil, out, labelled="missing.csv")) == 2
    assert f"the lock file {out / '.lock'} is a symbolic link" in capsys.readouterr().err
    assert not (outside.precious.parent / "created_by_the_lock").exists()
    outside.unchanged()


def test_remove_empty_folder_removes_only_an_empty_real_folder_inside(tmp_path):
    from al_bnn.paths import UnsafePathError, remove_empty_folder

    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "a" / "empty").mkdir(parents=True)
    (root / "a" / "full").mkdir()
    (root / "a" / "full" / "user.txt").write_text("kept")
    (elsewhere / "inner").mkdir(parents=True)
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    assert remove_empty_folder(root, "a/empty") and not (root / "a" / "empty").exists()
    assert not remove_empty_folder(root, "a/full") and (root / "a" / "full" / "user.txt").exists()
    assert not remove_empty_folder(root, "a/missing")
    for through_a_link in ("link", "link/inner"):
        with pytest.raises(UnsafePathError):
            remove_empty_folder(root, through_a_link)
    assert (elsewhere / "inner").is_dir()
    with pytest.raises(UnsafePathError):
        remove_empty_folder(root, "../elsewhere/inner")
