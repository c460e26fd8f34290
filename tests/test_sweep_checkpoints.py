"""A sweep task checkpoints after every training phase, so a task cut short resumes at its last
finished phase with the numbers an uninterrupted task gives; the sweep deletes the checkpoints once
the task's runs are written, and writes them only inside its own folder."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from al_bnn import loop
from al_bnn_lab import benchmark as run_benchmark
from al_bnn_lab.sweep import load_benchmark_config, pending_tasks, run_task, task_checkpoints

UCI_ROOT = Path(__file__).resolve().parent.parent / "data" / "uci"
TINY = {
    "datasets": ["yacht"],
    "uci_root": str(UCI_ROOT),
    "samplers": ["random", "lrgpa"],
    "seeds": [0],
    "schedule": {"default": {"num_train_init": 0.05, "num_al_incr": 0.03, "al_iter": 2}},
    "experiment": {"net_config": {"layer_sizes": [8, 8], "learning_rate": 0.01},
                   "parms": {"n_mc_samples": 16, "sampling_batch_size": 4},
                   "train_schedule": {"num_epochs": 3, "eval_after_epochs": 3, "log_after_epochs": 3}},
}
TIMINGS = ["selection_seconds", "training_seconds"]  # the only columns a resume may change


class CutShort(Exception):
    """Stands for the worker being killed right after a checkpoint was written."""


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture
def task(config_path, tmp_path):
    (task,) = pending_tasks(load_benchmark_config(config_path), tmp_path / "out")
    return task


def rows(result: dict) -> pd.DataFrame:
    return pd.DataFrame([row for _, runs in sorted(result["runs"].items()) for row in runs]).drop(columns=TIMINGS)


def cut_after_checkpoints(monkeypatch, count: int) -> list[Path]:
    """Make the loop raise CutShort right after its `count`-th checkpoint is written."""
    written: list[Path] = []
    save = loop.save_checkpoint

    def save_then_cut(path, state):
        save(path, state)
        written.append(Path(path))
        if len(written) == count:
            raise CutShort

    monkeypatch.setattr(loop, "save_checkpoint", save_then_cut)
    return written


def test_a_task_cut_short_resumes_at_its_last_phase_with_the_uninterrupted_numbers(task, tmp_path, monkeypatch):
    uninterrupted = run_task(dict(task))
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    resumable = dict(task, checkpoint_dir=str(folder), checkpoints=1)
    with monkeypatch.context() as patch:
        written = cut_after_checkpoints(patch, 2)  # phase 0 and phase 1 trained, then killed
        with pytest.raises(CutShort):
            run_task(dict(resumable))
    assert written == [folder / "checkpoint_0.npz"] * 2
    resumed = run_task(dict(resumable))
    assert any("resuming" in line and "at phase 2" in line for line in resumed["log"])
    assert not any("acquisition 1/2" in line for line in resumed["log"])  # phases 0-1 not trained again
    pd.testing.assert_frame_equal(rows(resumed), rows(uninterrupted))


@pytest.mark.parametrize("refused", ["other runs", "not a checkpoint"])
def test_a_refused_checkpoint_is_logged_and_the_task_starts_afresh(task, tmp_path, monkeypatch, refused):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    if refused == "other runs":
        with monkeypatch.context() as patch:
            cut_after_checkpoints(patch, 1)
            with pytest.raises(CutShort):
                run_task(dict(task, runs=task["runs"][:1], checkpoint_dir=str(folder), checkpoints=1))
    else:
        (folder / "checkpoint_0.npz").write_bytes(b"PK\x03\x04 cut short by a full disk")
    fresh = run_task(dict(task))
    again = run_task(dict(task, checkpoint_dir=str(folder), checkpoints=1))
    assert any("checkpoint in" in line and "is refused, so the task starts afresh" in line for line in again["log"])
    pd.testing.assert_frame_equal(rows(again), rows(fresh))


def test_a_folder_swapped_for_a_link_after_the_sweeps_check_is_refused_at_the_save(task, tmp_path):
    from al_bnn.paths import UnsafePathError

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (elsewhere / "yacht" / "bnn").mkdir(parents=True)
    out.mkdir()
    (out / "checkpoints").symlink_to(elsewhere, target_is_directory=True)  # after the parent checked the folder
    with pytest.raises(UnsafePathError, match="symbolic link"):
        run_task(dict(task, checkpoint_dir=str(out / "checkpoints" / "yacht" / "bnn"), checkpoints=1, root=str(out)))
    assert list((elsewhere / "yacht" / "bnn").iterdir()) == []


def test_checkpoints_no_task_will_read_are_deleted_before_the_sweep_resumes(config_path, tmp_path, monkeypatch,
                                                                           sweeps_in_process):
    two_stacks = tmp_path / "two_stacks.yaml"
    two_stacks.write_text(yaml.safe_dump({**TINY, "sampler_settings": {"lrgpa": {"train_schedule":
                                                                                 {"num_epochs": 4}}}}))
    out = tmp_path / "out"
    folder = out / "checkpoints" / "yacht" / "bnn"
    with monkeypatch.context() as patch, sweeps_in_process():
        cut_after_checkpoints(patch, 4)  # stack 0 finished (3 phases), stack 1 after its first phase
        try:
            code = run_benchmark.main(["--config", str(two_stacks), "--out", str(out)])
        except CutShort:
            code = None
    assert code != 0
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoint_0.npz", "checkpoint_1.npz"]
    (folder / ".checkpoint_1.npz.x1y2z3.tmp").write_bytes(b"a save cut short")
    with sweeps_in_process():  # one stack now: checkpoint_1 belongs to no task, checkpoint_0 to other runs
        assert run_benchmark.main(["--config", str(config_path), "--out", str(out), "--overwrite"]) == 0
    log = (out / "log.txt").read_text()
    assert "is refused, so the task starts afresh" in log  # checkpoint_0: other runs
    assert not (out / "checkpoints").exists()
    assert "checkpoints/" not in (out / ".al_bnn_written").read_text()


def test_the_sweep_checkpoints_inside_its_folder_and_deletes_them_once_written(config_path, tmp_path, monkeypatch,
                                                                                 sweeps_in_process):
    out = tmp_path / "out"
    written = cut_after_checkpoints(monkeypatch, -1)  # never cut: records where checkpoints go
    with sweeps_in_process():
        assert run_benchmark.main(["--config", str(config_path), "--out", str(out)]) == 0
    assert set(written) == {out / "checkpoints" / "yacht" / "bnn" / "checkpoint_0.npz"}
    assert len(written) == 3  # after each of the three training phases
    assert not (out / "checkpoints").exists()  # deleted, and the folders they left empty
    manifest = (out / ".al_bnn_written").read_text()
    assert "checkpoints/" not in manifest
    assert (out / "runs" / "yacht" / "bnn" / "lrgpa_rs_0.csv").exists()


def test_a_link_in_place_of_the_checkpoint_folder_is_refused_and_nothing_is_written_through_it(
        config_path, tmp_path, sweeps_in_process, capsys):
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    with sweeps_in_process():
        assert run_benchmark.main(["--config", str(config_path), "--out", str(out)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_one_checkpoint_per_stack_counted_from_the_settings(task, tmp_path, monkeypatch):
    assert task_checkpoints(task) == ["checkpoints/yacht/bnn/checkpoint_0.npz"]
    # lrgpa trains longer: two stacks in one task, each with its own checkpoint
    two_stacks = dict(task, config={**task["config"], "sampler_settings": {
        "lrgpa": {"train_schedule": {"num_epochs": 4}}}})
    names = task_checkpoints(two_stacks)
    assert names == [f"checkpoints/yacht/bnn/checkpoint_{i}.npz" for i in (0, 1)]
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    written = cut_after_checkpoints(monkeypatch, -1)
    result = run_task(dict(two_stacks, checkpoint_dir=str(folder), checkpoints=len(names)))
    assert {path.name for path in written} == {"checkpoint_0.npz", "checkpoint_1.npz"}
    assert not any("running without checkpoints" in line for line in result["log"])


def test_a_task_writes_a_line_per_trained_phase_to_stderr_as_it_trains(task, tmp_path, monkeypatch, capfd):
    # a worker's other log lines reach the sweep's log only when its task ends, hours later
    stderr_at_each_save: list[str] = []
    save = loop.save_checkpoint

    def save_then_read_stderr(path, state):
        save(path, state)
        stderr_at_each_save.append(capfd.readouterr().err)

    monkeypatch.setattr(loop, "save_checkpoint", save_then_read_stderr)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    result = run_task(dict(task, checkpoint_dir=str(folder), checkpoints=1))
    after = capfd.readouterr().err
    assert len(stderr_at_each_save) == 3
    assert "trained" not in stderr_at_each_save[0]
    # phase 0's line is out before phase 1's checkpoint is saved, not when the task ends
    assert "[yacht / bnn] phase 0/2 trained: 2 run(s), " in stderr_at_each_save[1]
    assert "checkpoint saved" in stderr_at_each_save[1]
    assert "[yacht / bnn] phase 1/2 trained" in stderr_at_each_save[2]
    assert "[yacht / bnn] phase 2/2 trained" in after
    assert not any("trained:" in line for line in result["log"])  # not a second time at the task's end


def test_a_tasks_log_handlers_take_only_their_own_threads_lines(capfd):
    """A threaded worker runs several tasks in one process: each task's collector and live lines
    keep that task's records, not another thread's under the wrong prefix."""
    import logging
    import threading

    from al_bnn_lab.sweep import _live_progress, _LogCollector

    shared = logging.getLogger("al_bnn.progress.test_threads")
    shared.propagate = False
    collected = {}

    def task(name: str) -> None:
        collector, live = _LogCollector(), _live_progress(f"[{name}]")
        shared.addHandler(collector)
        shared.addHandler(live)
        try:
            for phase in range(3):
                shared.warning("%s phase %d", name, phase)
                barrier.wait()  # the other task logs between this task's lines
        finally:
            shared.removeHandler(collector)
            shared.removeHandler(live)
        collected[name] = collector.lines

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=task, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert collected == {name: [f"{name} phase {k}" for k in range(3)] for name in ("a", "b")}
    stderr = capfd.readouterr().err.splitlines()
    assert sorted(stderr) == sorted(f"[{name}] {name} phase {k}" for name in ("a", "b") for k in range(3))
