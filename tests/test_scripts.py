"""Both comparison scripts end to end on tiny sizes: every promised file, refusals, reproducibility."""

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from al_bnn_lab.published import compare_fastgpa_batchgpa, compare_gpa_rand

TINY = {
    "al_schedule": {"al_iter": 2, "num_al_incr": 10, "num_train_init": 20},
    "net_config": {"layer_sizes": [8, 8], "learning_rate": 0.001},
    "parms": {"n_mc_samples": 20, "sampling_batch_size": 4},
    "train_schedule": {"batch_size": 16, "num_epochs": 6, "eval_after_epochs": 3, "log_after_epochs": 6},
}
SIZES = ["--size-pool", "120", "--size-test", "50", "--quiet"]


def tiny_configs(folder, policies=("lrgpa", "random"), **changes):
    """Tiny configs, one per sampler; `changes` update their sections."""
    paths = []
    for policy in policies:
        raw = {**TINY, "parms": {**TINY["parms"], "sample_policy": policy}}
        for section, values in changes.items():
            raw[section] = {**raw.get(section, {}), **values}
        path = Path(folder) / f"tiny_{policy}.yaml"
        path.write_text(yaml.safe_dump(raw))
        paths.append(str(path))
    return paths


def read_csv(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_gpa_vs_random_writes_every_promised_file(tmp_path):
    out = tmp_path / "results"
    configs = tiny_configs(tmp_path, ["gpa", "random"])
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out)]) == 0
    expected = {"log.txt", "config_gpa.yaml", "config_random.yaml", "metrics_gpa.csv", "metrics_random.csv",
                "acquisitions_gpa.csv", "acquisitions_random.csv", "selected_gpa.csv", "selected_random.csv",
                "gpa_vs_rand.png"}
    assert expected <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    as_run = yaml.safe_load((out / "config_gpa.yaml").read_text())
    assert as_run["net_config"]["weight_std"] == 0.1 and as_run["data"]["size_pool"] == 120  # defaults filled in
    rows = read_csv(out / "metrics_gpa.csv")
    assert len(rows) == 3 * 2  # 3 phases x 2 evaluations
    assert {"epoch", "n_train", "train_rmse", "test_rmse", "train_log_likelihood", "test_log_likelihood",
            "selection_seconds"} <= set(rows[0])
    assert [int(r["n_train"]) for r in rows] == [20, 20, 30, 30, 40, 40]
    assert [int(r["epoch"]) for r in rows] == [3, 6, 9, 12, 15, 18]
    selected = read_csv(out / "selected_gpa.csv")
    assert len(selected) == 40 and len({r["pool_index"] for r in selected}) == 40
    initial_random = [r["pool_index"] for r in read_csv(out / "selected_random.csv") if r["al_iter"] == "0"]
    assert initial_random == [r["pool_index"] for r in selected if r["al_iter"] == "0"]  # same initial set
    log = (out / "log.txt").read_text()
    assert "acquisition 2/2" in log and "final test RMSE" in log
    assert (out / "gpa_vs_rand.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_fast_vs_batch_gpa_share_every_pick_and_report_it(tmp_path):
    out = tmp_path / "results"
    configs = tiny_configs(tmp_path, ["gpa", "bgpa"])
    assert compare_fastgpa_batchgpa([*configs, *SIZES, "--results-dir", str(out)]) == 0
    assert (out / "fgpa_vs_bgpa.png").exists()
    fast = read_csv(out / "selected_gpa.csv")
    batch = read_csv(out / "selected_bgpa.csv")
    assert fast == batch  # identical samples in float64 -> identical picks, in order
    assert "gpa and bgpa share 20 of 20 selected points" in (out / "log.txt").read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_same_seed_same_numbers_and_another_seed_differs(tmp_path):
    configs = tiny_configs(tmp_path, ["gpa", "random"])
    outputs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / name
        assert compare_gpa_rand([*configs, *SIZES, "--seed", seed, "--results-dir", str(out)]) == 0
        rows = read_csv(out / "metrics_gpa.csv")
        outputs.append([{k: v for k, v in row.items() if k != "selection_seconds"} for row in rows])  # not timings
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_existing_results_are_refused_without_overwrite_and_foreign_files_kept(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    configs = tiny_configs(tmp_path, ["gpa", "random"])
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out)]) == 2
    assert "already exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "metrics_gpa.csv").exists()


@pytest.mark.parametrize("args,message", [
    (["--size-pool", "30"], "the schedule labels 40 points"),
    (["--seed", "-3"], "key 'seed': -3 is out of range"),
])
def test_bad_options_fail_before_training(tmp_path, capsys, args, message):
    configs = tiny_configs(tmp_path, ["gpa", "random"])
    assert compare_gpa_rand([*configs, "--quiet", *args, "--results-dir",
                                              str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_bad_config_file_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parms: {sample_polcy: gpa}\n")
    assert compare_gpa_rand([str(bad), "--quiet", "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Did you mean 'sample_policy'" in err


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_scripts_run_as_files(tmp_path):
    import subprocess
    import sys
    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "cli"
    configs = tiny_configs(tmp_path, ["gpa", "random"])
    done = subprocess.run([sys.executable, "source/compare_gpa_rand.py", *configs, *SIZES, "--results-dir", str(out)],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "gpa_vs_rand.png").exists()
    done = subprocess.run([sys.executable, "source/compare_fastgpa_batchgpa.py", "--help"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--size-pool" in done.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_a_sampler_registered_from_a_users_module_runs(tmp_path, monkeypatch):
    import al_bnn.selection as samplers
    (tmp_path / "my_samplers.py").write_text(
        "import numpy as np\n"
        "from al_bnn.selection import register_sampler\n\n"
        "class FirstPoints:\n"
        "    needs = 'samples'\n"
        "    def select(self, request):\n"
        "        assert request.draw_samples(0).shape == (20, request.n_train + request.n_pool)\n"
        "        return np.arange(request.n_select)\n\n"
        "register_sampler('first_points', lambda parms: FirstPoints())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(samplers, "_REGISTRY", dict(samplers._REGISTRY))
    configs = tiny_configs(tmp_path, ["first_points", "random"])
    out = tmp_path / "plugin"
    assert compare_gpa_rand([*configs, *SIZES, "--plugins", "my_samplers",
                                              "--results-dir", str(out)]) == 0
    picked = [int(r["pool_index"]) for r in read_csv(out / "selected_first_points.csv") if r["al_iter"] == "1"]
    initial = {int(r["pool_index"]) for r in read_csv(out / "selected_first_points.csv") if r["al_iter"] == "0"}
    assert picked == sorted(set(range(120)) - initial)[:10]  # the first remaining pool points, in order


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_lowrank_gpa_on_the_exact_kernel_picks_what_fast_gpa_picks(tmp_path):
    configs = []
    for policy in ("lrgpa", "gpa"):
        raw = {**TINY, "parms": {**TINY["parms"], "sample_policy": policy, "gpa_kernel": "exact"}}
        path = tmp_path / f"exact_{policy}.yaml"
        path.write_text(yaml.safe_dump(raw))
        configs.append(str(path))
    out = tmp_path / "exact"
    assert compare_fastgpa_batchgpa([*configs, *SIZES, "--results-dir", str(out)]) == 0
    assert read_csv(out / "selected_lrgpa.csv") == read_csv(out / "selected_gpa.csv")
    assert yaml.safe_load((out / "config_lrgpa.yaml").read_text())["parms"]["gpa_kernel"] == "exact"


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_several_seeds_train_as_one_stack_and_match_single_runs(tmp_path):
    configs = tiny_configs(tmp_path, ["lrgpa", "random"])
    full_pool = ["--quiet"]  # no subsampling, so both seeds share the data and one stacked model
    many, single = tmp_path / "many", tmp_path / "single"
    assert compare_gpa_rand([*configs, *full_pool, "--seeds", "0", "1",
                                              "--results-dir", str(many)]) == 0
    assert compare_gpa_rand([*configs, *full_pool, "--seed", "1", "--results-dir", str(single)]) == 0
    assert {"metrics_lrgpa_rs_0.csv", "metrics_lrgpa_rs_1.csv", "metrics_random_rs_1.csv"} <= {
        p.name for p in many.iterdir()}
    assert "training 4 run(s) as one stack" in (many / "log.txt").read_text()
    for label in ("lrgpa", "random"):
        stacked = read_csv(many / f"metrics_{label}_rs_1.csv")
        alone = read_csv(single / f"metrics_{label}.csv")
        assert [r["n_train"] for r in stacked] == [r["n_train"] for r in alone]
        for key in ("train_rmse", "test_rmse", "test_log_likelihood"):
            np.testing.assert_allclose([float(r[key]) for r in stacked], [float(r[key]) for r in alone], rtol=2e-4)
        assert read_csv(many / f"selected_{label}_rs_1.csv") == read_csv(single / f"selected_{label}.csv")
    assert "(2 seeds)" in (many / "log.txt").read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("needs_housing")
def test_runs_with_the_noise_contrastive_prior(tmp_path):
    configs = []
    for policy in ("lrgpa", "random"):
        raw = {**TINY, "net_config": {**TINY["net_config"], "ood_std_prior": 1.0, "noise_std": 0.1},
               "parms": {**TINY["parms"], "sample_policy": policy}}
        path = tmp_path / f"ncp_{policy}.yaml"
        path.write_text(yaml.safe_dump(raw))
        configs.append(str(path))
    out = tmp_path / "ncp"
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out)]) == 0
    rows = read_csv(out / "metrics_lrgpa.csv")
    assert len(rows) == 6 and all(np.isfinite(float(r["test_rmse"])) for r in rows)
    assert yaml.safe_load((out / "config_lrgpa.yaml").read_text())["net_config"]["ood_std_prior"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("model,extra", [("dropout", {"net_config": {"dropout_rate": 0.1}}),
                                         ("ensemble", {"parms": {"ensemble_size": 3}})])
@pytest.mark.usefixtures("needs_housing")
def test_every_sampler_runs_on_the_dropout_and_ensemble_models(tmp_path, model, extra):
    configs = []
    for policy in ("lrgpa", "mcdue"):
        raw = {**TINY, "net_config": {**TINY["net_config"], **extra.get("net_config", {})},
               "parms": {**TINY["parms"], **extra.get("parms", {}), "sample_policy": policy, "name_model": model}}
        path = tmp_path / f"{model}_{policy}.yaml"
        path.write_text(yaml.safe_dump(raw))
        configs.append(str(path))
    out = tmp_path / model
    assert compare_gpa_rand([*configs, *SIZES, "--results-dir", str(out)]) == 0
    for policy in ("lrgpa", "mcdue"):
        rows = read_csv(out / f"metrics_{policy}.csv")
        assert len(rows) == 6 and all(np.isfinite(float(r["test_log_likelihood"])) for r in rows)
        assert len({r["pool_index"] for r in read_csv(out / f"selected_{policy}.csv")}) == 40


@pytest.mark.slow
def test_training_benchmark_prints_every_measurement(capsys):
    from al_bnn_lab import bench_training

    assert bench_training.main(["--epochs", "1", "--stack-sizes", "2", "--skip-script"]) == 0
    printed = capsys.readouterr().out
    for label in ["(a) Python loop", "(b) in-graph trainer", "(c) stacked trainer, K =  2",
                  "(d) stacked trainer, K =  2,", "(e) matmuls of a K = 2 step", "projected training time"]:
        assert label in printed, label
    with pytest.raises(SystemExit):
        bench_training.main(["--stack-sizes", "0", "--skip-script"])


def test_a_run_that_fails_before_training_leaves_no_results_directory(tmp_path, monkeypatch, capsys):
    from al_bnn.data import DataUnavailableError

    def unavailable(*args, **kwargs):
        raise DataUnavailableError("California housing could not be loaded (test)")

    monkeypatch.setattr("al_bnn.data.housing_arrays", unavailable)
    out = tmp_path / "results"
    assert compare_gpa_rand([*tiny_configs(tmp_path, ["gpa", "random"]), *SIZES, "--results-dir", str(out)]) == 2
    assert "could not be loaded" in capsys.readouterr().err
    assert not out.exists()


def test_bands_over_few_seeds_stay_above_zero():
    from al_bnn_lab.plotting import geometric_mean_and_interval

    centre, low, high = geometric_mean_and_interval(np.array([[1.0, 0.2], [45.0, 0.3]]))  # two wild seeds
    assert (low > 0).all() and (low < centre).all() and (centre < high).all()
    np.testing.assert_allclose(centre, [np.sqrt(45.0), np.sqrt(0.06)])
