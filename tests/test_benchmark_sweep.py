"""The benchmark sweep: local and Dask runs agree, interrupted sweeps resume, summaries add up."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from al_bnn.config import ConfigError
from al_bnn.paths import SHIPPED_UCI_ROOT
from al_bnn_lab import benchmark as run_benchmark
from al_bnn_lab.sweep import (
    TIE_TOLERANCE,
    load_benchmark_config,
    overview_markdown,
    plot_overview,
    schedule_for,
    summarise,
    summary_markdown,
    threads_per_worker,
)

UCI_ROOT = Path(__file__).resolve().parent.parent / "data" / "uci"
TINY = {
    "datasets": ["yacht", "energy"],
    "uci_root": str(UCI_ROOT),
    "samplers": ["random", "lrgpa", "mcdue"],
    "seeds": [0, 1],
    "schedule": {"default": {"num_train_init": 0.05, "num_al_incr": 0.03, "al_iter": 2},
                 "energy": {"num_train_init": 20}},
    "experiment": {"net_config": {"layer_sizes": [8, 8], "learning_rate": 0.01},
                   "parms": {"n_mc_samples": 16, "sampling_batch_size": 4},
                   "train_schedule": {"num_epochs": 3, "eval_after_epochs": 3, "log_after_epochs": 3}},
}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


YACHT = ["--datasets", "yacht"]  # the shared sweep's part of TINY: one task of 6 runs


@pytest.fixture(scope="module")
def yacht_sweep(tmp_path_factory):
    """TINY's yacht part, swept once on a real local worker and shared: tests read it, or copy it
    (copy_of) before they change it. The fingerprint leaves out the config's path, so a test's own
    tiny_config may sweep into a copy."""
    folder = tmp_path_factory.mktemp("yacht_sweep")
    config = folder / "bench.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = folder / "out"
    assert run_benchmark.main(["--config", str(config), "--out", str(out), *YACHT]) == 0
    return out


def copy_of(sweep: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(sweep, target)
    return target


@pytest.mark.parametrize("quick", [False, True])
def test_the_committed_benchmark_config_loads(quick):
    config = load_benchmark_config(Path(__file__).resolve().parent.parent / "configs" / "benchmark.yaml", quick)
    shipped = sorted(path.name for path in SHIPPED_UCI_ROOT.iterdir() if path.is_dir())
    names = [entry.name for entry in config.datasets]
    assert names == (["yacht", "energy", "concrete"] if quick else ["housing", *shipped])  # housing + every UCI set
    if not quick:  # the family's distance, cluster and BAIT methods on the kernel the paper recommends
        assert {label: config.sampler_settings[label]["parms"]["family_kernel"]
                for label in ("maxdist", "kmeanspp", "lcmd", "bait")} == dict.fromkeys(
            ("maxdist", "kmeanspp", "lcmd", "bait"), "grad")
    assert config.models == (["bnn"] if quick else ["bnn", "dropout", "ensemble"])
    assert len(config.seeds) == (2 if quick else 5)


def test_schedules_resolve_fractions_of_each_pool(tiny_config):
    config = load_benchmark_config(tiny_config)
    assert schedule_for(config, "yacht", 246) == {"num_train_init": 12, "num_al_incr": 7, "al_iter": 2}
    assert schedule_for(config, "energy", 614) == {"num_train_init": 20, "num_al_incr": 18, "al_iter": 2}


@pytest.mark.slow
def test_local_sweep_writes_everything_then_resumes_only_missing_runs(tiny_config, tmp_path, sweeps_in_process):
    out = tmp_path / "local"
    assert run_benchmark.main(["--config", str(tiny_config), "--out", str(out)]) == 0
    table = pd.read_csv(out / "benchmark.csv")
    assert len(table) == 2 * 3 * 2 * 3  # datasets x samplers x seeds x AL steps
    assert list(table.columns) == ["dataset", "model", "sampler", "seed", "al_iter", "n_train", "test_rmse",
                                   "test_log_likelihood", "selection_seconds", "training_seconds", "pool_size",
                                   "runs_in_stack", "test_coverage_90", "run_key"]
    assert table.test_coverage_90.between(0, 1).all()
    pd.testing.assert_frame_equal(pd.read_csv(out / "finished_runs.csv"), table)  # the last snapshot: everything
    assert set(table.runs_in_stack) == {6} and set(table[table.dataset == "yacht"].pool_size) == {246}
    yacht = table[(table.dataset == "yacht") & (table.seed == 0)]
    assert sorted(set(yacht.n_train)) == [12, 19, 26]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and set(summary.sampler) == {"random", "lrgpa", "mcdue"}
    assert "| yacht | bnn | lrgpa | 2 |" in (out / "summary.md").read_text()
    assert all((out / "plots" / name).exists() for name in ("yacht.png", "energy.png", "overview.png"))
    assert not list(out.rglob("*.tmp"))

    kept = out / "runs" / "energy" / "bnn" / "random_rs_1.csv"
    removed = out / "runs" / "yacht" / "bnn" / "lrgpa_rs_1.csv"
    before = kept.stat().st_mtime_ns
    original = pd.read_csv(removed)
    removed.unlink()
    with sweeps_in_process():  # the missing run, resumed (the sweep above ran on a real worker)
        assert run_benchmark.main(["--config", str(tiny_config), "--out", str(out)]) == 0
    assert kept.stat().st_mtime_ns == before  # finished runs are not redone
    log = (out / "log.txt").read_text()
    assert "1 to do in 1 task(s)" in log
    assert "[yacht / bnn] [lrgpa_rs_1] acquisition 2/2: selected 7 points" in log  # a worker's own line
    rerun = pd.read_csv(removed)
    assert set(rerun.runs_in_stack) == {1}  # trained alone this time, with the same numbers
    cost = ["selection_seconds", "training_seconds", "runs_in_stack"]
    pd.testing.assert_frame_equal(rerun.drop(columns=cost), original.drop(columns=cost))


@pytest.mark.slow
def test_a_dask_cluster_on_loopback_gives_the_local_results(tiny_config, tmp_path, yacht_sweep):
    from distributed import LocalCluster

    local, via_scheduler, via_flag = yacht_sweep, tmp_path / "scheduler", tmp_path / "flag"
    args = ["--config", str(tiny_config), *YACHT]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert run_benchmark.main([*args, "--out", str(via_scheduler), "--scheduler", cluster.scheduler_address]) == 0
    assert run_benchmark.main([*args, "--out", str(via_flag), "--dask-cluster", "--workers", "1"]) == 0
    timing = ["selection_seconds", "training_seconds"]
    expected = pd.read_csv(local / "benchmark.csv").drop(columns=timing)
    for out in (via_scheduler, via_flag):
        pd.testing.assert_frame_equal(pd.read_csv(out / "benchmark.csv").drop(columns=timing), expected)
    assert "Dask scheduler tcp://127.0.0.1:" in (via_scheduler / "log.txt").read_text()
    assert "local Dask cluster" in (via_flag / "log.txt").read_text()


def test_a_different_config_is_refused_in_the_same_output(tiny_config, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("fingerprint: something-else\n")
    assert run_benchmark.main(["--config", str(tiny_config), "--out", str(out)]) == 2
    assert "holds a sweep of a different config" in capsys.readouterr().err


@pytest.mark.parametrize("change,message", [
    ({"seeds": [0, 0]}, "distinct non-negative integers"),
    ({"samplers": ["random", "gpaa"]}, "unknown sampler 'gpaa'"),
    ({"schedule": {"yacht": {"num_train_init": 5}}}, "needs a 'default' entry"),
    ({"schedule": {"default": {"num_train_init": 0.1, "num_al_incr": 2.5, "al_iter": 2}}},
     "'num_al_incr' must be an integer or a fraction"),
    ({"experiment": {"net_config": {"layer_size": [3]}}}, "Did you mean 'layer_sizes'"),
    ({"datasets": []}, "must each list at least one value"),
    ({"model_settings": {"mlp": {}}}, "maps model names"),
    ({"samplers": ["random", "gpa/T10"]}, "distinct labels of letters"),
    ({"samplers": ["variant"], "sampler_settings": {"variant": {"parms": {"n_mc_samples": 5}}}},
     "unknown sampler 'variant'"),
    ({"samplers": ["v"], "sampler_settings": {"v": {"parms": {"sample_policy": "lrgpa", "compare_with": ["exakt"]}}}},
     "compare_with.*exact, fast_float64"),
    ({"sampler_settings": {"v": 3}}, "maps sampler labels to config sections"),
    ({"sampler_settings": {"random": {"data": {"size_pool": 100}}}}, "'sampler_settings' must not set 'data'"),
    ({"model_settings": {"bnn": {"al_schedule": {"al_iter": 1}}}}, "'model_settings' must not set 'data' or"),
])
def test_bad_benchmark_configs(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, **change}))
    with pytest.raises(ConfigError, match=message):
        load_benchmark_config(path)


@pytest.mark.slow
def test_a_schedule_larger_than_the_pool_names_the_dataset(tmp_path, capsys, sweeps_in_process):
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({**TINY, "datasets": ["yacht"],
                                    "schedule": {"default": {"num_train_init": 200, "num_al_incr": 50, "al_iter": 2}}}))
    with sweeps_in_process():  # the worker's error, pickled as it would cross the process boundary
        assert run_benchmark.main(["--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "yacht" in capsys.readouterr().err


def test_summary_statistics_on_a_hand_made_table():
    rows = []
    finals = {"random": [1.0, 2.0, 3.0], "gpa": [0.9, 2.0 * (1 + TIE_TOLERANCE / 2), 3.3]}
    for sampler, values in finals.items():
        for seed, final in enumerate(values):
            common = dict(dataset="d", model="bnn", sampler=sampler, seed=seed, training_seconds=1.0)
            rows.append(dict(common, al_iter=0, n_train=10, test_rmse=2.0, selection_seconds=0.5,
                             test_log_likelihood=-5.0, test_coverage_90=0.1))
            rows.append(dict(common, al_iter=1, n_train=20, test_rmse=final, selection_seconds=0.25,
                             test_log_likelihood=-1.0 - seed, test_coverage_90=0.8 + 0.05 * seed))
    summary = summarise(pd.DataFrame(rows)).set_index("sampler")
    gpa = summary.loc["gpa"]
    assert (gpa.wins, gpa.ties, gpa.losses) == (1, 1, 1)
    assert gpa.final_rmse_mean == pytest.approx(np.mean(finals["gpa"]))
    assert gpa.final_rmse_se == pytest.approx(np.std(finals["gpa"], ddof=1) / np.sqrt(3))
    assert gpa.ratio_to_random == pytest.approx(np.mean(finals["gpa"]) / 2.0)
    assert gpa.mean_log_rmse == pytest.approx(np.mean([(np.log(2.0) + np.log(v)) / 2 for v in finals["gpa"]]))
    assert gpa.selection_seconds == pytest.approx(0.75) and gpa.training_seconds == pytest.approx(2.0)
    # the final step's calibration, averaged over seeds (not over steps)
    assert gpa.final_log_likelihood == pytest.approx(-2.0)
    assert gpa.final_coverage_90 == pytest.approx(0.85)
    # run files of older versions have no coverage column: the summary says so instead of failing
    older = summarise(pd.DataFrame(rows).drop(columns="test_coverage_90")).set_index("sampler")
    assert np.isnan(older.loc["gpa"].final_coverage_90)
    assert "| - |" in summary_markdown(older.reset_index())


def test_overview_ends_with_the_baselines_coverage_per_dataset_and_model():
    summary = pd.DataFrame([
        dict(dataset="a", model="bnn", sampler="random", mean_log_rmse=1.0, final_coverage_90=0.9),
        dict(dataset="a", model="bnn", sampler="gpa", mean_log_rmse=0.9, final_coverage_90=0.1),
        dict(dataset="a", model="ensemble", sampler="random", mean_log_rmse=1.0, final_coverage_90=0.4),
        dict(dataset="b", model="bnn", sampler="random", mean_log_rmse=-2.0, final_coverage_90=0.7),
        dict(dataset="b", model="ensemble", sampler="random", mean_log_rmse=-2.0, final_coverage_90=np.nan),
    ])
    lines = overview_markdown(summary).split("Share of test targets", 1)[1].splitlines()
    assert lines[2] == "| dataset | bnn | ensemble |"
    assert lines[4] == "| a | 0.900 | 0.400 |"
    assert lines[5] == "| b | 0.700 | - |"
    assert lines[6] == "| **mean over datasets** | **0.800** (2) | **0.400** (1) |"
    assert "Share of test targets" not in overview_markdown(summary.drop(columns="final_coverage_90"))


@pytest.mark.slow
def test_models_are_another_axis_of_the_sweep(tiny_config, tmp_path, sweeps_in_process):
    raw = yaml.safe_load(tiny_config.read_text())
    raw.update(datasets=["yacht"], seeds=[0], samplers=["random", "mcdue"], models=["bnn", "ensemble", "dropout"],
               model_settings={"ensemble": {"parms": {"ensemble_size": 3}},
                               "dropout": {"net_config": {"dropout_rate": 0.1}}})
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "models"
    with sweeps_in_process():
        assert run_benchmark.main(["--config", str(path), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(zip(summary.model, summary.sampler, strict=True)) == sorted(
        (m, s) for m in ("bnn", "ensemble", "dropout") for s in ("random", "mcdue"))
    assert (summary[summary.sampler == "random"].ratio_to_random == 1.0).all()  # each model against its own random
    assert (out / "runs" / "yacht" / "ensemble" / "mcdue_rs_0.csv").exists()


def test_a_model_missing_its_settings_is_named(tiny_config, tmp_path):
    raw = yaml.safe_load(tiny_config.read_text())
    raw.update(models=["dropout"])
    path = tmp_path / "dropout.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"\[yacht, dropout, random, seed 0\]: key 'net_config.dropout_rate'"):
        load_benchmark_config(path)


@pytest.mark.slow
def test_sampler_variants_record_pick_comparisons_on_identical_samples(tiny_config, tmp_path, sweeps_in_process):
    """Labels with settings are variants of a registered sampler; compare_with records, per
    acquisition, how far other selections from the same model state agree with the run's picks."""
    raw = yaml.safe_load(tiny_config.read_text())
    raw.update(datasets=["yacht"], seeds=[0], samplers=["batch64", "random"], sampler_settings={
        "batch64": {"parms": {"sample_policy": "bgpa", "compare_with": ["lowrank_float64", "fast_float64", "exact"]}},
        "random": {"parms": {"compare_with": ["exact"]}}})
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "variants"
    with sweeps_in_process():
        assert run_benchmark.main(["--config", str(path), "--out", str(out)]) == 0
    table = pd.read_csv(out / "benchmark.csv")
    batch = table[(table.sampler == "batch64") & (table.al_iter > 0)]
    assert len(batch) == 2
    # the same picks as batch GPA in float64 on the same samples: every round agrees
    assert (batch.agreed_lowrank_float64 == 7).all() and (batch.overlap_lowrank_float64 == 1.0).all()
    assert (batch.agreed_fast_float64 == 7).all() and (batch.seconds_fast_float64 > 0).all()
    assert (batch.in_order_lowrank_float64 == 7).all()
    assert batch.overlap_exact.between(0, 1).all()
    random_rows = table[(table.sampler == "random") & (table.al_iter > 0)]
    assert random_rows.overlap_exact.notna().all() and random_rows.agreed_fast_float64.isna().all()
    assert table[table.al_iter == 0].overlap_exact.isna().all()  # the initial set is not a selection


@pytest.mark.slow
def test_an_incomplete_or_foreign_run_file_is_redone_and_the_log_is_appended(tiny_config, tmp_path, yacht_sweep,
                                                                            sweeps_in_process):
    """The three runs redone here, in the test process, must equal the shared sweep's (made by a
    worker): this also checks that sweeps_in_process gives the workers' numbers."""
    out = copy_of(yacht_sweep, tmp_path / "redo")
    args = ["--config", str(tiny_config), "--out", str(out), *YACHT]
    runs = out / "runs" / "yacht" / "bnn"
    cut, empty, foreign = runs / "lrgpa_rs_0.csv", runs / "random_rs_0.csv", runs / "mcdue_rs_0.csv"
    originals = {path: pd.read_csv(path) for path in (cut, empty, foreign)}
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:2]))  # the header and AL step 0 only
    empty.write_text("")
    originals[foreign].assign(run_key="0123456789abcdef").to_csv(foreign, index=False)
    summary_before = pd.read_csv(out / "summary.csv")
    with sweeps_in_process():
        assert run_benchmark.main(args) == 0
    log = (out / "log.txt").read_text()
    assert log.count("---- sweep started") == 2 and log.count("sweep done") == 2  # the first run's lines are kept
    assert f"redoing {cut}: has AL steps [0], not 0..2" in log
    assert f"redoing {empty}: unreadable (EmptyDataError" in log
    assert f"redoing {foreign}: written for other settings" in log
    assert "3 to do in 1 task(s)" in log
    cost = ["selection_seconds", "training_seconds", "runs_in_stack"]  # the three were trained as a stack of 3
    for path, original in originals.items():
        redone = pd.read_csv(path)
        assert set(redone.runs_in_stack) == {3} and set(original.runs_in_stack) == {6}
        pd.testing.assert_frame_equal(redone.drop(columns=cost), original.drop(columns=cost))
    summary = pd.read_csv(out / "summary.csv")
    timing = ["selection_seconds", "training_seconds"]
    pd.testing.assert_frame_equal(summary.drop(columns=timing), summary_before.drop(columns=timing))


def test_a_second_sweep_into_the_same_directory_is_refused(tiny_config, tmp_path, capsys):
    from al_bnn.results import DirectoryLock

    out = tmp_path / "busy"
    out.mkdir()
    with DirectoryLock(out).acquire():
        assert run_benchmark.main(["--config", str(tiny_config), "--out", str(out)]) == 4
    assert f"{out} is in use by another run (PID" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [".al_bnn.lock"]


def test_an_unreachable_scheduler_fails_in_time_naming_the_address(tiny_config, tmp_path, capsys):
    import time

    started = time.monotonic()
    assert run_benchmark.main(["--config", str(tiny_config), "--out", str(tmp_path / "o"), "--scheduler",
                               "tcp://127.0.0.1:1", "--connect-timeout", "2"]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert "could not reach the Dask scheduler at tcp://127.0.0.1:1 within 2 s" in err and "Traceback" not in err


def test_zero_workers_is_an_option_error(tiny_config, capsys):
    with pytest.raises(SystemExit) as exit_status:
        run_benchmark.main(["--config", str(tiny_config), "--workers", "0"])
    assert exit_status.value.code == 2 and "--workers: must be at least 1, got 0" in capsys.readouterr().err


def test_worker_threads_share_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # as under `taskset -c 3`
    assert threads_per_worker(1) == 1 and threads_per_worker(2) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert threads_per_worker(1) == 8 and threads_per_worker(2) == 4 and threads_per_worker(3) == 2
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # an OS without affinity masks
    assert threads_per_worker(4) == 4


def readme_plugin_example() -> str:
    """The plugin example of docs/samplers.md ("Add a sampler"), verbatim."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "samplers.md").read_text()
    start = page.index("```python\n# my_samplers.py\n") + len("```python\n")
    return page[start:page.index("```", start)]


@pytest.mark.slow
@pytest.mark.parametrize("engine", [[], ["--dask-cluster"]])
def test_the_readme_plugin_example_reaches_every_worker(tiny_config, tmp_path, monkeypatch, engine):
    """--plugins my_samplers, as docs/samplers.md shows it, through local worker processes and through a
    Dask cluster: every worker imports it before its task (PYTHONPATH, as for the scripts)."""
    import sys

    import al_bnn.selection as samplers

    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "my_samplers.py").write_text(readme_plugin_example())
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(samplers, "_REGISTRY", dict(samplers._REGISTRY))
    monkeypatch.delitem(sys.modules, "my_samplers", raising=False)
    out = tmp_path / "plugin"
    try:
        assert run_benchmark.main(["--config", str(tiny_config), "--out", str(out), "--datasets", "yacht", "--seeds",
                                   "0", "--samplers", "random", "max_variance", "--plugins", "my_samplers",
                                   *engine]) == 0
    finally:
        sys.modules.pop("my_samplers", None)  # other tests write their own my_samplers.py
    table = pd.read_csv(out / "benchmark.csv")
    assert set(table.sampler) == {"random", "max_variance"} and len(table) == 2 * 3


@pytest.mark.slow
def test_local_workers_exit_when_the_sweep_is_killed(tiny_config, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import psutil

    raw = yaml.safe_load(tiny_config.read_text())
    raw["datasets"] = ["yacht"]
    raw["experiment"]["train_schedule"] = {"num_epochs": 100000, "eval_after_epochs": 1000, "log_after_epochs": 100000}
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    repo = Path(__file__).resolve().parent.parent
    sweep = subprocess.Popen([sys.executable, str(repo / "source" / "run_benchmark.py"), "--config", str(path), "--out",
                              str(tmp_path / "killed")], env={**os.environ, "PYTHONPATH": str(repo / "source")},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = tmp_path / "killed" / "log.txt", time.monotonic() + 120
    while not log.exists() or "to do in" not in log.read_text():
        assert sweep.poll() is None and time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.1)
    time.sleep(3)  # the worker is computing
    workers = psutil.Process(sweep.pid).children(recursive=True)
    assert workers
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    _, alive = psutil.wait_procs(workers, timeout=15)
    for orphan in alive:
        orphan.kill()
    assert not alive, f"orphaned workers: {alive}"


@pytest.mark.slow
def test_a_worker_started_after_its_sweep_died_exits_too(tmp_path):
    # The sweep's pid is handed to the worker: a worker still starting when the sweep is killed
    # (re-parented before its watcher reads anything) must see that its sweep is gone.
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parent.parent
    script = ("import os, sys, time\n"
              "from al_bnn_lab.sweep import _watch_parent\n"
              "_watch_parent(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid(), every=0.05)\n"
              "print('watching', flush=True)\n"
              "time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(repo / "source")}
    not_its_parent = subprocess.Popen([sys.executable, "-c", script, str(os.getpid() + 10**6)], env=env,
                                      stdout=subprocess.PIPE, text=True)
    assert not_its_parent.wait(timeout=60) == 1
    its_parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert its_parent.stdout.readline() == "watching\n"
        time.sleep(1.0)
        assert its_parent.poll() is None, "the worker exited while its parent lives"
    finally:
        its_parent.kill()
        its_parent.wait()


def test_overview_grid_is_the_mean_log_rmse_difference_to_random():
    summary = pd.DataFrame([
        dict(dataset="a", model="bnn", sampler="random", mean_log_rmse=1.0),
        dict(dataset="a", model="bnn", sampler="gpa", mean_log_rmse=0.9),
        dict(dataset="a", model="bnn", sampler="lcmd", mean_log_rmse=1.2),
        dict(dataset="b", model="bnn", sampler="random", mean_log_rmse=-2.0),
        dict(dataset="b", model="bnn", sampler="gpa", mean_log_rmse=-1.7),
        dict(dataset="b", model="bnn", sampler="lcmd", mean_log_rmse=-2.5),
    ])
    lines = overview_markdown(summary).splitlines()
    assert lines[2] == "| dataset | gpa | lcmd |"
    assert lines[4] == "| a | -0.100 | +0.200 |"
    assert lines[5] == "| b | +0.300 | -0.500 |"
    assert lines[6] == "| **mean over datasets** | **+0.100** | **-0.150** |"
    assert lines[7] == "| datasets below random | 1 of 2 | 1 of 2 |"


def test_overview_figure_shows_each_models_grid_and_its_mean_over_datasets():
    summary = pd.DataFrame([
        dict(dataset=d, model=m, sampler=s, mean_log_rmse=v) for d, m, s, v in [
            ("a", "bnn", "random", 1.0), ("a", "bnn", "gpa", 0.9), ("a", "bnn", "lcmd", 1.2),
            ("b", "bnn", "random", -2.0), ("b", "bnn", "gpa", -1.7), ("b", "bnn", "lcmd", -2.5),
            ("a", "ensemble", "random", 0.5), ("a", "ensemble", "lcmd", 0.1),
            ("b", "ensemble", "random", 0.0), ("b", "ensemble", "lcmd", 0.2)]])
    figure = plot_overview(summary)
    bnn, ensemble = figure.axes[:2]
    np.testing.assert_allclose(bnn.images[0].get_array(), [[-0.1, 0.2], [0.3, -0.5], [0.1, -0.15]])
    np.testing.assert_allclose(ensemble.images[0].get_array(), [[-0.4], [0.2], [-0.1]])
    assert [t.get_text() for t in bnn.get_xticklabels()] == ["gpa", "lcmd"]
    assert [t.get_text() for t in bnn.get_yticklabels()] == ["a", "b", "mean over datasets"]
    assert plot_overview(summary[summary["sampler"] != "random"]) is None  # no baseline, nothing to show
    assert plot_overview(summary[summary["sampler"] == "random"]) is None  # the baseline alone: nothing either
    assert overview_markdown(summary[summary["sampler"] == "random"]) == ""  # no empty grids (and no coverage here)


@pytest.mark.slow
def test_finished_runs_are_reused_from_another_sweep_by_their_settings_not_their_labels(tmp_path, capsys, yacht_sweep,
                                                                                      sweeps_in_process):
    first = copy_of(yacht_sweep, tmp_path / "first")
    first_table = pd.read_csv(first / "benchmark.csv", dtype={"run_key": str})
    # another sweep: lrgpa under another label, one more seed, the data folder spelled differently, and
    # a variant whose settings differ (fewer samples), which must not be taken from the first sweep
    other = dict(TINY, datasets=["yacht"], seeds=[0, 1, 2], uci_root=str(UCI_ROOT / "." / "."),
                 samplers=["random", "gpa", "lrgpa_T8"],
                 sampler_settings={"gpa": {"parms": {"sample_policy": "lrgpa"}},
                                   "lrgpa_T8": {"parms": {"sample_policy": "lrgpa", "n_mc_samples": 8}}})
    other_config = tmp_path / "other.yaml"
    other_config.write_text(yaml.safe_dump(other))
    second = tmp_path / "second"
    with sweeps_in_process():  # trains the 5 runs not reused
        assert run_benchmark.main(["--config", str(other_config), "--out", str(second),
                                   "--reuse", str(first / "benchmark.csv")]) == 0
    log = (second / "log.txt").read_text()
    assert f"reused 4 finished run(s) from {first / 'benchmark.csv'}" in log  # random and gpa, seeds 0 and 1
    assert "9 runs, 4 already finished, 5 to do in 1 task(s)" in log
    second_table = pd.read_csv(second / "benchmark.csv", dtype={"run_key": str})
    for label, first_label in (("random", "random"), ("gpa", "lrgpa")):
        for seed in (0, 1):
            taken = second_table[(second_table.sampler == label) & (second_table.seed == seed)]
            original = first_table[(first_table.sampler == first_label) & (first_table.seed == seed)]
            pd.testing.assert_frame_equal(taken.drop(columns="sampler").reset_index(drop=True),
                                          original.drop(columns="sampler").reset_index(drop=True))
    assert set(second_table.run_key) & set(first_table.run_key) == set(first_table.run_key[
        first_table.sampler.isin(["random", "lrgpa"])])
    # a results directory is a source too; a third sweep of the same config reuses everything
    third = tmp_path / "third"
    assert run_benchmark.main(["--config", str(other_config), "--out", str(third), "--reuse", str(second)]) == 0
    assert "9 runs, 9 already finished, 0 to do" in (third / "log.txt").read_text()
    # --report-only assembles parts run apart without training: here the first sweep's 4 runs of this config
    assembled = tmp_path / "assembled"
    assert run_benchmark.main(["--config", str(other_config), "--out", str(assembled), "--report-only",
                               "--reuse", str(first)]) == 0
    log = (assembled / "log.txt").read_text()
    assert f"reused 4 finished run(s) from {first}" in log and "9 runs, 4 already finished, 5 to do" in log
    assert "**Partial: 4 of 9 runs finished**" in (assembled / "summary.md").read_text()
    pd.testing.assert_frame_equal(pd.read_csv(assembled / "benchmark.csv", dtype={"run_key": str}),
                                  second_table[second_table.run_key.isin(first_table.run_key)].reset_index(drop=True))
    # a folder holding a gzip-compressed tidy table (as the study's docs/study_data) is searched too
    compressed = tmp_path / "compressed"
    compressed.mkdir()
    pd.read_csv(second / "benchmark.csv", dtype={"run_key": str}).to_csv(compressed / "q6.csv.gz", index=False)
    (compressed / "broken.csv.gz").write_bytes(b"\x1f\x8b\x08\x00 cut short")  # skipped, not a crash
    assert run_benchmark.main(["--config", str(other_config), "--out", str(tmp_path / "fifth"),
                               "--reuse", str(compressed)]) == 0
    assert "9 runs, 9 already finished, 0 to do" in (tmp_path / "fifth" / "log.txt").read_text()
    # a table without run keys (written before they existed) is refused, naming it and why
    legacy = tmp_path / "legacy.csv"
    first_table.drop(columns="run_key").to_csv(legacy, index=False)
    capsys.readouterr()
    assert run_benchmark.main(["--config", str(other_config), "--out", str(tmp_path / "fourth"),
                               "--reuse", str(legacy)]) != 0
    assert f"--reuse {legacy}: not a tidy table of runs with a run_key column" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_file_of_an_older_version_with_the_sweep_fingerprint_still_counts(tiny_config, tmp_path, yacht_sweep):
    out = copy_of(yacht_sweep, tmp_path / "legacy")
    args = ["--config", str(tiny_config), "--out", str(out), *YACHT]
    fingerprint = yaml.safe_load((out / "config.yaml").read_text())["fingerprint"]
    path = out / "runs" / "yacht" / "bnn" / "random_rs_0.csv"
    old = pd.read_csv(path, dtype={"run_key": str})
    old.drop(columns="run_key").assign(sweep_fingerprint=fingerprint).to_csv(path, index=False)
    assert run_benchmark.main(args) == 0
    assert "6 runs, 6 already finished, 0 to do" in (out / "log.txt").read_text()
    table = pd.read_csv(out / "benchmark.csv", dtype={"run_key": str})
    legacy_run = table[(table.sampler == "random") & (table.seed == 0)]
    pd.testing.assert_frame_equal(legacy_run.reset_index(drop=True), old[table.columns])


@pytest.mark.slow
def test_report_only_tabulates_the_finished_runs_of_an_interrupted_sweep(tiny_config, tmp_path, yacht_sweep):
    out = copy_of(yacht_sweep, tmp_path / "interrupted")
    args = ["--config", str(tiny_config), "--out", str(out), *YACHT]
    complete = pd.read_csv(out / "benchmark.csv", dtype={"run_key": str})
    runs = out / "runs" / "yacht" / "bnn"
    (runs / "lrgpa_rs_1.csv").unlink()
    cut = runs / "random_rs_0.csv"
    cut.write_text("".join(cut.read_text().splitlines(keepends=True)[:2]))  # as if killed while writing
    for name in ("benchmark.csv", "summary.md"):
        (out / name).unlink()
    assert run_benchmark.main([*args, "--report-only"]) == 0
    assert "6 runs, 4 already finished, 2 to do in 1 task(s) on none (--report-only)" in (out / "log.txt").read_text()
    assert "**Partial: 4 of 6 runs finished**" in (out / "summary.md").read_text()
    partial = pd.read_csv(out / "benchmark.csv", dtype={"run_key": str})
    kept = ~(((complete.sampler == "lrgpa") & (complete.seed == 1)) | ((complete.sampler == "random") &
                                                                         (complete.seed == 0)))
    pd.testing.assert_frame_equal(partial, complete[kept].reset_index(drop=True))
    assert cut.read_text().count("\n") == 2  # nothing was run or redone


def test_a_run_key_ignores_settings_at_their_default_so_new_keys_keep_old_runs(tiny_config):
    from al_bnn_lab.sweep import merge_sections, run_key

    config = load_benchmark_config(tiny_config)
    entry = config.datasets[0]
    before = run_key(config, entry, "bnn", "lrgpa", 0)
    config.experiment = merge_sections(config.experiment, {"net_config": {"nll_beta": 0.0},  # the schema defaults
                                                           "data": {"size_pool": 0}})
    assert run_key(config, entry, "bnn", "lrgpa", 0) == before
    config.experiment = merge_sections(config.experiment, {"net_config": {"nll_beta": 0.5}})
    assert run_key(config, entry, "bnn", "lrgpa", 0) != before
    assert len({run_key(config, entry, "bnn", sampler, seed) for sampler in ("random", "lrgpa")
                for seed in (0, 1)}) == 4


def test_the_run_key_baseline_has_every_config_key_and_a_changed_default_changes_keys(tiny_config, monkeypatch):
    """Keys are measured against frozen values, not the live defaults: a schema key without an
    entry would change every key, and a default that changed must not give an old key to new runs."""
    from al_bnn.config import ExperimentConfig
    from al_bnn_lab import sweep
    from al_bnn_lab.run_key_baseline import RUN_KEY_BASELINE

    def flat(section, prefix=""):
        return {f"{prefix}{k}" if not isinstance(v, dict) else n for k, v in section.items()
                for n in (flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [None])}

    schema = flat(ExperimentConfig().to_dict()) - {"data.uci_root"}
    assert flat(RUN_KEY_BASELINE) == schema
    config = load_benchmark_config(tiny_config)
    before = sweep.run_key(config, config.datasets[0], "bnn", "random", 0)
    changed = sweep.merge_sections(RUN_KEY_BASELINE, {"net_config": {"noise_std": 0.5}})
    monkeypatch.setattr(sweep, "RUN_KEY_BASELINE", changed)
    assert sweep.run_key(config, config.datasets[0], "bnn", "random", 0) != before


def test_a_file_dataset_is_keyed_by_its_content_not_its_path(tmp_path):
    from al_bnn_lab.sweep import DatasetEntry, benchmark_config_from_dict, run_key

    rows = "a,b,y\n" + "".join(f"{i},{i % 7},{i * 0.5}\n" for i in range(60))
    first, second = tmp_path / "one" / "d.csv", tmp_path / "two" / "d.csv"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(rows)
    raw = dict(TINY, datasets=[{"name": "d", "path": str(first), "target": "y"}])
    config = benchmark_config_from_dict(raw, "test")
    keys = [run_key(config, DatasetEntry("d", str(path), "y"), "bnn", "random", 0) for path in (first, second)]
    assert keys[0] == keys[1]
    second.write_text(rows + "61,5,30.5\n")  # one more row
    assert run_key(config, DatasetEntry("d", str(second), "y"), "bnn", "random", 0) != keys[0]


@pytest.mark.slow
def test_the_study_counts_reused_runs_apart_from_its_own_wall_time(tmp_path, sweeps_in_process):
    from al_bnn_lab import study

    raw = dict(TINY, datasets=["yacht"], seeds=[0])
    first = tmp_path / "first"
    first_times = study.WallTimes(first / "wall_times.json")
    with sweeps_in_process():
        study.run_sweep("q6", raw, first, 1, first_times)
    assert first_times.entries["q6"]["parts"] == 1 and "reused_runs" not in first_times.entries["q6"]
    assert (first / "q6" / "finished_runs.csv").exists()
    second = tmp_path / "second"
    times = study.WallTimes(second / "wall_times.json")
    study.run_sweep("q6", raw, second, 1, times, reuse=[first / "q6" / "finished_runs.csv"])
    entry = times.entries["q6"]
    assert entry["reused_runs"] == 3 and entry["parts"] == 0 and entry["seconds"] == 0  # nothing trained
    assert "3 finished runs were taken from other results with --reuse" in times.describe("q6")
    assert study.WallTimes(second / "wall_times.json").entries == times.entries  # saved
    pd.testing.assert_frame_equal(pd.read_csv(second / "q6" / "benchmark.csv"),
                                  pd.read_csv(first / "q6" / "benchmark.csv"))


def test_an_interrupted_study_part_still_records_its_wall_time(tmp_path, monkeypatch):
    from al_bnn_lab import study

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "run_benchmark_sweep", interrupted)
    times = study.WallTimes(tmp_path / "wall_times.json")
    with pytest.raises(KeyboardInterrupt):
        study.run_sweep("q6", dict(TINY, datasets=["yacht"], seeds=[0]), tmp_path, 1, times)
    assert study.WallTimes(tmp_path / "wall_times.json").entries["q6"]["parts"] == 1


def test_a_fresh_results_folder_drops_the_questions_old_wall_time_record(tmp_path, monkeypatch):
    """The record describes the runs in the question's folder: started afresh (the folder moved away),
    a part's reused runs are not added to the count of runs that are no longer there."""
    from al_bnn_lab import study

    monkeypatch.setattr(study, "run_benchmark_sweep", lambda *args, **kwargs: None)
    monkeypatch.setattr(study, "reuse_runs", lambda config, output, reuse, writer: {"elsewhere": 3})
    times = study.WallTimes(tmp_path / "wall_times.json")
    times.add("q6", 50.0, 2)
    times.add_reused("q6", 240)
    raw = dict(TINY, datasets=["yacht"], seeds=[0])
    study.run_sweep("q6", raw, tmp_path, 1, times, reuse=["elsewhere"])
    assert times.entries["q6"]["reused_runs"] == 3 and times.entries["q6"]["seconds"] < 50  # the old 50 s gone
    study.run_sweep("q6", raw, tmp_path, 1, times, reuse=["elsewhere"])  # the folder is there now: a second part
    assert times.entries["q6"]["reused_runs"] == 6
    assert study.WallTimes(tmp_path / "wall_times.json").entries == times.entries


def test_the_study_states_each_parts_wall_time_and_the_total(tmp_path):
    from al_bnn_lab import study

    times = study.WallTimes(tmp_path / "wall_times.json")
    times.add("q6", 90.0, 2)
    times.add("q6", 30.0, 2)
    times.add("q8", 3600.0)
    times.add_reused("q6", 5)
    saved = study.WallTimes(tmp_path / "wall_times.json")
    assert saved.describe("q6").startswith("2.0 min in 2 parts (1.5 + 0.5 min), 2 worker process(es)")
    assert saved.describe("q8").startswith(f"60.0 min on {study.machine_description()} (code at ")
    assert saved.total().startswith("**Wall time in all:** 1 h 2 min on this machine for Q6, Q8 ")
    # a record written before parts were kept: the sum only, no per-part list that does not add up
    legacy = {"q6": {"seconds": 120.0, "parts": 2, "commits": ["abc"]}}
    (tmp_path / "wall_times.json").write_text(json.dumps(legacy))
    assert study.WallTimes(tmp_path / "wall_times.json").describe("q6") == "2.0 min in 2 parts (code at abc)"


@pytest.mark.slow
def test_the_first_ctrl_c_lets_the_running_task_finish_and_starts_no_other(tiny_config, tmp_path, monkeypatch,
                                                                          capsys, sweeps_in_process):
    import signal

    real_execute = run_benchmark.execute

    def signal_after_the_first_task(*args, **kwargs):
        for count, result in enumerate(real_execute(*args, **kwargs)):
            yield result
            if count == 0:  # as Ctrl-C would, once the sweep wrote the first task's runs
                handler = signal.getsignal(signal.SIGINT)
                assert handler not in (signal.SIG_IGN, signal.SIG_DFL, signal.default_int_handler), \
                    "the sweep did not install its SIGINT handler"  # (else the signal would end the test session)
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(run_benchmark, "execute", signal_after_the_first_task)
    out = tmp_path / "stopped"
    args = ["--config", str(tiny_config), "--out", str(out), "--workers", "1"]
    assert run_benchmark.main(args) == 130
    log = (out / "log.txt").read_text()
    assert "stopped as asked: 1 task(s) not started" in log and "SIGINT (Ctrl-C): stopping once" in log
    assert "1 task(s) were not started. Run the same command again to continue" in capsys.readouterr().err
    finished = pd.read_csv(out / "finished_runs.csv")
    assert set(finished.dataset) == {"yacht"} and len(finished.groupby(["sampler", "seed"])) == 6  # the first task
    assert "**Partial: 6 of 12 runs finished**" in (out / "summary.md").read_text()
    monkeypatch.setattr(run_benchmark, "execute", real_execute)
    with sweeps_in_process():  # the rest, resumed (the stop above was on a real worker)
        assert run_benchmark.main(args) == 0
    assert "12 runs, 6 already finished, 6 to do in 1 task(s)" in (out / "log.txt").read_text()
    assert set(pd.read_csv(out / "benchmark.csv").dataset) == {"yacht", "energy"}


@pytest.mark.slow
def test_a_stop_leaves_waiting_tasks_unstarted(tiny_config, tmp_path):
    import threading

    from al_bnn.cli import StoppedEarly
    from al_bnn_lab.sweep import _execute_locally, pending_tasks

    config = load_benchmark_config(tiny_config)
    tasks = pending_tasks(config, tmp_path)
    assert len(tasks) == 2
    stop, results = threading.Event(), []
    with pytest.raises(StoppedEarly) as stopped:
        for result in _execute_locally(tasks, workers=1, stop=stop):
            results.append(result)
            stop.set()
    assert len(results) == 1 and stopped.value.not_started == 1 and stopped.value.signum is None
    assert {key[0] for key in results[0]["runs"]} == {tasks[0]["dataset"]}


@pytest.mark.slow
def test_a_sigterm_to_the_whole_process_group_stops_after_the_running_task(tiny_config, tmp_path):
    """What a batch scheduler or `timeout` does: SIGTERM to the sweep and its workers at once. The
    workers ignore it, the running task finishes and is written, the next never starts."""
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "terminated"
    sweep = subprocess.Popen([sys.executable, str(repo / "source" / "run_benchmark.py"), "--config", str(tiny_config),
                              "--out", str(out), "--workers", "1"], cwd=repo, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{sweep.pid}/task/{sweep.pid}/children")

    def worker_started() -> bool:
        """A spawned worker exists once the first task was handed out. Any child will not do: an
        import runs `uname -p` (platform.processor()) before the sweep's handlers are installed."""
        for pid in children.read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
            except OSError:  # that child already ended
                pass
        return False

    deadline = time.monotonic() + 120
    while not worker_started():
        assert sweep.poll() is None and time.monotonic() < deadline, "the sweep ended or never started a worker"
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGTERM)
    _, errors = sweep.communicate(timeout=300)
    assert sweep.returncode == 143, errors[-3000:]
    assert "1 task(s) were not started" in errors
    finished = pd.read_csv(out / "finished_runs.csv")
    assert set(finished.dataset) == {"yacht"} and len(finished.groupby(["sampler", "seed"])) == 6
    assert "SIGTERM: stopping once the running task(s) finish" in (out / "log.txt").read_text()


def test_a_stop_signal_delivered_twice_at_once_is_one_stop_and_a_later_one_aborts(monkeypatch):
    """GNU `timeout` sends SIGTERM to the command and then to its process group, so a sweep can get
    the one stop twice within microseconds: that must not abort the running tasks."""
    import signal
    import threading

    from al_bnn import cli

    clock = [100.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    stop, announced = threading.Event(), []
    signals = cli.StopSignals(stop, announced.append)
    signals._handle(signal.SIGTERM, None)
    clock[0] += 0.001
    signals._handle(signal.SIGTERM, None)  # the same stop, delivered again
    assert stop.is_set() and signals.received == signal.SIGTERM and announced == [signal.SIGTERM]
    with pytest.raises(cli.Aborted):  # another signal at once is a second stop
        signals._handle(signal.SIGINT, None)
    clock[0] += cli.REPEAT_WINDOW_S
    with pytest.raises(cli.Aborted) as aborted:  # the same signal, later: the user asks again
        signals._handle(signal.SIGTERM, None)
    assert aborted.value.signum == signal.SIGTERM


def test_a_second_signal_whose_abort_python_swallowed_still_aborts_when_the_handlers_go():
    """Python ignores an exception raised in some callbacks (an import lock's, a finaliser's): a
    second signal handled there must still end the run as aborted, not as the first stop."""
    import signal
    import threading

    from al_bnn import cli

    stop = threading.Event()
    with pytest.raises(cli.Aborted) as aborted, cli.StopSignals(stop) as signals:
        signals._handle(signal.SIGINT, None)
        try:
            signals._handle(signal.SIGTERM, None)
        except cli.Aborted:
            pass  # swallowed, as in the callback
    assert aborted.value.signum == signal.SIGTERM
    with cli.StopSignals(threading.Event()) as signals:  # one stop alone ends the block normally
        signals._handle(signal.SIGINT, None)


def test_stop_signals_leave_an_inherited_ignore_alone():
    """A job started with & by a script has SIGINT ignored on purpose; the handlers keep it so."""
    import signal
    import threading

    from al_bnn.cli import StopSignals

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignals(threading.Event()) as signals:
            assert signals.handled == [signal.SIGTERM]
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with StopSignals(threading.Event()) as signals:
            assert signals.handled == [signal.SIGINT, signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored on the way out
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_the_committed_benchmark_tables_hold_every_run_of_the_full_config_once():
    """The benchmark results (docs/benchmark-results.md) are made from docs/benchmark's two tables with
    --reuse: they must hold each run of the settings stored beside them (docs/benchmark/settings.yaml),
    all its AL steps, under the key recomputed from those stored settings only, not from today's
    defaults (a changed default leaves them valid: tests/test_stored_settings.py); the stored groups
    are those of configs/benchmark.yaml (its datasets, models, samplers and seeds)."""
    from al_bnn_lab.stored_settings import read_stored_settings, stored_run_keys, table_problems

    repo = Path(__file__).resolve().parent.parent
    stored = read_stored_settings(repo / "docs" / "benchmark" / "settings.yaml")
    config = load_benchmark_config(repo / "configs" / "benchmark.yaml")
    assert [(g["dataset"], g["model"], list(g["samplers"]), g["seeds"]) for g in stored["run_groups"]] == [
        (entry.name, model, config.samplers, config.seeds) for entry in config.datasets for model in config.models]
    assert len(stored_run_keys(stored)) == 15 * 3 * 8 * 5
    tables = pd.concat([pd.read_csv(repo / "docs" / "benchmark" / name, dtype={"run_key": str})
                        for name in ("benchmark.csv", "benchmark_dropout_ensemble.csv.gz")])
    assert table_problems(tables, stored) == []
