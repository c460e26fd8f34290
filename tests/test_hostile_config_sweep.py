"""Issue 31, config and sweep items: hostile YAML (alias bombs, huge files, values YAML 1.1 and 1.2
read differently, unbounded values in messages), a sweep worker killed mid-task, and a --scheduler
address where no Dask scheduler answers."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from al_bnn.config import MAX_YAML_BYTES, ConfigError, config_from_dict, load_config, read_yaml
from al_bnn_lab import sweep

# -- item 10: YAML alias bombs ---------------------------------------------------------------------


def alias_bomb(levels: int, key: str = "sample_policy") -> str:
    """A few hundred bytes whose aliases expand to 9**levels strings."""
    lines = ['a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nparms:\n  {key}: *a{levels - 1}\n"


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9))  # 9**9 strings: gigabytes once anything walks them
    assert len(bomb.read_bytes()) < 500
    with pytest.raises(ConfigError, match=r"bomb.yaml: its aliases \(\*name\) expand its 31 values to 926,177,117, "
                                          r"more than the 100,000 extra values allowed"):
        read_yaml(bomb)
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("parms: &p {sample_policy: [*p]}\n")
    with pytest.raises(ConfigError, match=r"recursive.yaml: line 1: an alias \(\*name\) repeats a value inside itself"):
        read_yaml(recursive)


def test_a_validation_message_never_prints_an_unbounded_value(tmp_path):
    smaller = tmp_path / "smaller.yaml"  # 9**6 strings: under the old loader a message of megabytes
    smaller.write_text(alias_bomb(6))
    with pytest.raises(ConfigError) as refused:
        load_config(smaller)
    assert len(str(refused.value)) < 500
    for raw in ({"parms": {"sample_policy": ["gpa" * 50] * 100_000}}, {"parms": {"sample_policy": "x" * 10**6}},
                {"al_schedule": {"al_iter": {f"k{i}": i for i in range(10**5)}}}, {"net_config": "y" * 10**6},
                {"z" * 10**6: 1}, {"parms": {"z" * 10**6: 1}}):
        with pytest.raises(ConfigError) as refused:
            config_from_dict(raw, "big.yaml")
        message = str(refused.value)
        assert len(message) < 700 and message.startswith("big.yaml: ") and "..." in message, message[:300]
    for raw in ({"datasets": [[1] * 10**6]}, {**TWO_TASKS, "samplers": ["x/" * 10**6]},
                {**TWO_TASKS, "seeds": [*range(10**6), -1]}):
        with pytest.raises(ConfigError) as refused:
            sweep.benchmark_config_from_dict(raw, "big.yaml")
        message = str(refused.value)
        assert len(message) < 700 and message.startswith("big.yaml: ") and "..." in message, message[:300]


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path):
    deep = tmp_path / "deep.yaml"  # a sweep whose experiment section nests 600 mappings: merging it recursed
    deep.write_text("datasets: [yacht]\nsamplers: [random]\nseeds: [0]\nschedule: {default: {num_train_init: 5, "
                    "num_al_incr: 5, al_iter: 1}}\nexperiment:\n"
                    + "".join("  " * (i + 1) + "a:\n" for i in range(600)) + "  " * 602 + "b: 1\n")
    with pytest.raises(ConfigError, match=r"deep.yaml: line \d+: lists and mappings nested more than 64 deep"):
        sweep.load_benchmark_config(deep)


# -- item 22: YAML 1.1 numbers and booleans; a config file of megabytes -----------------------------


@pytest.mark.parametrize("text,value,meaning", [
    ("seed: 010\n", "010", "8"),
    ("train_schedule:\n  num_epochs: 1:30\n", "1:30", "90"),
    ("net_config:\n  center_at_target: off\n", "off", "false"),
    ("data:\n  target: yes\n", "yes", "true"),
])
def test_a_value_yaml_1_1_and_1_2_read_differently_is_named(tmp_path, text, value, meaning):
    path = tmp_path / "ambiguous.yaml"
    path.write_text("al_schedule:\n  al_iter: 2\n" + text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    message = str(refused.value)
    line = 2 + text.count("\n")  # the value is on the last line
    assert message.startswith(f"{path}: line {line}: the value {value} is ") and "YAML 1.2" in message
    assert f"write {meaning} if you mean" in message and f"quote it ('{value}')" in message
    path.write_text(f"al_schedule:\n  al_iter: 2\n{text.replace(value, repr(value))}")  # quoted: text
    assert repr(value) in repr(read_yaml(path))


def test_a_number_that_only_yaml_1_2_reads_as_one_gets_a_hint():
    with pytest.raises(ConfigError, match=r"got '1e-4' \(YAML 1.1, which this package reads, takes it as text; "
                                          r"write 0.0001 instead\)"):
        config_from_dict({"net_config": {"learning_rate": "1e-4"}}, "x.yaml")


def test_a_config_file_over_the_size_cap_is_refused_before_parsing(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text("seed: 1\n#" + "x" * MAX_YAML_BYTES + "\n")  # under the old loader: read, parsed, accepted
    with pytest.raises(ConfigError, match=rf"huge.yaml: config file: {MAX_YAML_BYTES + 10:,} bytes, more than the "
                                          rf"{MAX_YAML_BYTES:,} bytes a YAML file may have"):
        load_config(huge)


# -- item 11: a sweep worker killed mid-task ------------------------------------------------------------


def stand_in_task(task: dict, threads: int | None = None) -> dict:
    """run_task's stand-in in a spawned worker: records each start in $TASK_STARTS/<dataset>; the
    first start of $VICTIM's task and the other task wait for the file `release` (the test kills
    the victim meanwhile); a task named in $DOOMED kills its own worker every time."""
    folder, name = Path(os.environ["TASK_STARTS"]), task["dataset"]
    with open(folder / name, "a") as starts:
        starts.write(f"{os.getpid()}\n")
    attempt = len((folder / name).read_text().split())
    if name == os.environ.get("DOOMED"):
        os.kill(os.getpid(), signal.SIGKILL)
    if attempt == 1:
        deadline = time.monotonic() + 120
        while not (folder / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"runs": {}, "log": [f"{name} returned at start {attempt}"]}


TWO_TASKS = {"datasets": ["yacht", "energy"], "samplers": ["random"], "seeds": [0],
             "schedule": {"default": {"num_train_init": 10, "num_al_incr": 5, "al_iter": 1}}}


def starts(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().split() if path.exists() else []


@pytest.mark.slow
def test_a_killed_worker_is_logged_its_task_rerun_and_the_other_workers_task_kept(tmp_path, monkeypatch):
    folder, out = tmp_path / "starts", tmp_path / "out"
    folder.mkdir()
    monkeypatch.setenv("TASK_STARTS", str(folder))
    monkeypatch.setattr(sweep, "run_task", stand_in_task)
    config = sweep.benchmark_config_from_dict(TWO_TASKS, "two.yaml")

    def kill_the_first_task_while_both_run() -> None:
        deadline = time.monotonic() + 120
        while not (starts(folder, "yacht") and starts(folder, "energy")) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(starts(folder, "yacht")[0]), signal.SIGKILL)
        while len(starts(folder, "yacht")) < 2 and time.monotonic() < deadline:  # rerun on a new worker
            time.sleep(0.05)
        (folder / "release").touch()

    killer = threading.Thread(target=kill_the_first_task_while_both_run, daemon=True)
    killer.start()
    from al_bnn_lab.benchmark import run_sweep

    run_sweep(config, out, workers=2)
    killer.join()
    log = (out / "log.txt").read_text()
    assert len(starts(folder, "yacht")) == 2 and len(starts(folder, "energy")) == 1  # energy's run went on
    assert re.search(r"the worker process running task yacht / bnn \(1 run\(s\)\), pid \d+, was killed by SIGKILL; "
                     r"running the task again on a new worker \(retry 1 of 2\)", log), log
    assert log.count("yacht returned at start 2") == 1 and log.count("energy returned at start 1") == 1
    assert "returned at start 1" not in log.replace("energy returned at start 1", "")


@pytest.mark.slow
def test_a_task_that_keeps_killing_its_worker_is_given_up_after_the_retries(tmp_path, monkeypatch):
    folder = tmp_path / "starts"
    folder.mkdir()
    (folder / "release").touch()
    monkeypatch.setenv("TASK_STARTS", str(folder))
    monkeypatch.setenv("DOOMED", "yacht")
    monkeypatch.setattr(sweep, "run_task", stand_in_task)
    tasks = [dict(dataset="yacht", model="bnn", runs=[("random", 0)]), dict(dataset="energy", model="bnn",
                                                                             runs=[("random", 0)])]
    results = []
    with pytest.raises(sweep.WorkerDiedError, match=r"task\(s\) \(yacht / bnn\) died 3 times each"):
        for result in sweep._execute_locally(tasks, workers=1):
            results.append(result)
    assert len(starts(folder, "yacht")) == 1 + sweep.MAX_TASK_RETRIES
    assert [result["log"] for result in results] == [["energy returned at start 1"]]


# -- item 12: --scheduler on a port where no Dask scheduler answers --------------------------------------


class TinyServer:
    """A TCP server on loopback that accepts connections and either never answers or answers as an
    HTTP server does."""

    def __init__(self, answer: bytes | None):
        self.answer, self.connections = answer, []
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.answer is not None:
                connection.sendall(self.answer)

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.parametrize("answer,message", [
    (None, r"accepted the connection but sent nothing within 2 s, where a Dask scheduler greets at once"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", r"answered, but not as a Dask scheduler does \(its first "
                                                        r"bytes: b'HTTP/1.1'\)"),
])
def test_a_scheduler_address_where_no_dask_scheduler_answers_is_a_named_error(answer, message, tmp_path, capsys):
    from al_bnn_lab.benchmark import main

    server = TinyServer(answer)
    config = Path(__file__).resolve().parent.parent / "configs" / "benchmark.yaml"
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(code=main(
        ["--config", str(config), "--quick", "--out", str(tmp_path / "out"), "--scheduler", server.address,
         "--connect-timeout", "2"])), daemon=True)
    try:
        runner.start()
        runner.join(2 + sweep.CONNECT_GRACE_S + 30)  # a bound far above the limit, so a hang fails, not waits
    finally:
        server.close()
    assert not runner.is_alive(), "connecting to a scheduler that never answers did not give up"
    err = capsys.readouterr().err
    assert outcome.get("code") == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(f"error: {re.escape(server.address)} {message}", err), err[-2000:]
