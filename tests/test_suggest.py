"""The suggest command: two rounds end to end on airfoil (the README's walk-through), and every bad
input stopped with a message naming file, column and row, before any training."""

import re

import numpy as np
import pandas as pd
import pytest

from al_bnn.learner import load_learner
from al_bnn.suggest import main
from al_bnn_lab.suggest_example import example_main, split_example

TINY_CONFIG = """\
net_config: {layer_sizes: [8, 8], learning_rate: 0.01}
train_schedule: {num_epochs: 4}
parms: {sample_policy: lrgpa, n_mc_samples: 20, sampling_batch_size: 4}
"""
PROMISED = ["suggestions.csv", "suggestions_round_0.csv", "model.npz", "history.csv", "uncertainty.png", "config.yaml",
            "log.txt"]


def run(tmp_path, *extra, labelled="labelled.csv", pool="pool.csv", n="6", out="out"):
    return main(["--labelled", str(tmp_path / labelled), "--target", "sound_pressure", "--pool", str(tmp_path / pool),
                 "--n", n, "--out", str(tmp_path / out), "--config", str(tmp_path / "tiny.yaml"), *extra])


@pytest.fixture
def demo(tmp_path):
    split_example("airfoil", 20, tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    return tmp_path


@pytest.mark.slow
def test_two_rounds_end_to_end_write_every_file_and_suggest_valid_pool_rows(demo, capsys):
    pool = pd.read_csv(demo / "pool.csv", dtype={"id": str})
    assert run(demo, "--id-column", "id") == 0
    out = demo / "out"
    assert all((out / name).is_file() for name in PROMISED)
    first = pd.read_csv(out / "suggestions.csv", dtype={"id": str})
    assert list(first["rank"]) == [1, 2, 3, 4, 5, 6] and first["id"].is_unique
    rows = pool.iloc[first["pool_row"] - 1]  # pool_row counts data rows of pool.csv from 1
    assert list(rows["id"]) == list(first["id"])
    np.testing.assert_array_equal(rows["frequency"].to_numpy(), first["frequency"].to_numpy())
    assert (first["predicted_std"] > 0).all() and np.isfinite(first["predicted_sound_pressure"]).all()
    assert (first["score_kind"] == "posterior_variance").all()

    assert example_main(["label", "--dir", str(demo), "--suggestions", str(out / "suggestions.csv")]) == 0
    labelled = pd.read_csv(demo / "labelled.csv", dtype={"id": str})
    assert len(labelled) == 26 and set(first["id"]) <= set(labelled["id"])
    assert run(demo, "--id-column", "id", "--resume-model", str(out / "model.npz")) == 0
    second = pd.read_csv(out / "suggestions.csv", dtype={"id": str})
    assert not set(second["id"]) & set(labelled["id"]) and set(second["id"]) <= set(pool["id"])
    assert (out / "suggestions_round_1.csv").is_file()
    history = pd.read_csv(out / "history.csv")
    assert list(history["n_labelled"]) == [20, 26] and list(history["n_added"]) == [20, 6]
    assert np.isnan(history["new_rmse"][0]) and history["new_rmse"][1] > 0 and (history["pool_std_max"] > 0).all()
    learner = load_learner(out / "model.npz")
    assert learner.estimator.n_fits_ == 2 and learner.n_labelled == 26  # continued, not restarted
    assert "10 new" not in (out / "log.txt").read_text() and "6 new labelled row(s)" in (out / "log.txt").read_text()


def write(path, text):
    path.write_text(text)
    return path.name


GOOD_L = "a,b,y\n1,2,3\n2,3,5\n4,1,2\n"
GOOD_P = "a,b\n1,1\n2,2\n3,3\n"


@pytest.mark.parametrize("labelled, pool, extra, message", [
    (GOOD_L, "a\n1\n2\n", (), r"pool.csv: feature column 'b' of .*labelled.csv is missing"),
    (GOOD_L, "a,b,c\n1,1,1\n", (), r"pool.csv: column 'c' is not a column of .*labelled.csv"),
    (GOOD_L, "a,b\n1,1\n2,x\n", (), r"pool.csv: column 'b', row 2 \(line 3\) holds 'x', which is not a number"),
    (GOOD_L, "a,b\n1,1\n2,\n", (), r"pool.csv: column 'b', row 2 \(line 3\) has an empty or NaN \(missing\) cell"),
    (GOOD_L, "a,b\n1,1\n2,inf\n", (), r"pool.csv: column 'b', row 2 \(line 3\) has the value inf"),
    ("a,b,y\n1,nan,3\n2,3,5\n", GOOD_P, (), r"labelled.csv: column 'b', row 1 \(line 2\) has an empty"),
    ("a,b\n1,2\n2,3\n", GOOD_P, (), r"labelled.csv: no target column 'y'"),
    ("a,b,y\n1,2,3\n2,3,\n", GOOD_P, (), r"labelled.csv: column 'y' \(the target\), row 2 \(line 3\) is empty"),
    ("a,b,y\n1,2,3\n2,3,inf\n", GOOD_P, (), r"labelled.csv: column 'y' \(the target\), row 2 \(line 3\) is empty, "),
    (GOOD_L, "a,b,y\n1,1,\n2,2,7\n", (), r"pool.csv: column 'y' \(the target\) has values in 1 row\(s\) \(first: "
                                         r"row 2.*--pool-labelled-ok"),
    ("id,a,b,y\nr1,1,2,3\nr1,2,3,5\n", "id,a,b\np1,1,1\n", ("--id-column", "id"),
     r"labelled.csv: id 'r1' in column 'id' is repeated \(rows 1, 2\)"),
    (GOOD_L, "id,a,b\np1,1,1\n", ("--id-column", "id"), r"labelled.csv: no id column 'id'"),
    (GOOD_L, GOOD_P, ("--n", "4"), r"--n 4 is larger than the pool: .*pool.csv has 3 unlabelled row"),
    ("a,b,y\n1,2,3\n", GOOD_P, (), r"labelled.csv: 1 labelled row\(s\); the model needs at least 2"),
    ("a,b,y\n1,2,3\n2,2,3\n", GOOD_P, (), r"labelled.csv: column 'y' \(the target\) has the same value"),
    (GOOD_L, "", (), r"pool.csv: the pool file is empty"),
    (GOOD_L, "a,b\n", (), r"pool.csv: the pool file has a header but no data rows"),
    (GOOD_L, b"PK\x03\x04\x00\x00binary", (), r"pool.csv: not a CSV file \(it holds binary data\)"),
    (GOOD_L, 'a,b\n1,2\n"3,4\n', (), r"pool.csv: not a well-formed CSV file"),
    ("a,a,y\n1,2,3\n2,3,5\n", GOOD_P, (), r"labelled.csv: column name\(s\) \['a'\] appear more than once"),
])
def test_bad_input_is_named_before_any_training(tmp_path, capsys, labelled, pool, extra, message):
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    (tmp_path / "labelled.csv").write_text(labelled)
    if isinstance(pool, bytes):
        (tmp_path / "pool.csv").write_bytes(pool)
    else:
        (tmp_path / "pool.csv").write_text(pool)
    args = list(extra)
    n = "2"
    if "--n" in args:
        n = args.pop(args.index("--n") + 1)
        args.remove("--n")
    code = main(["--labelled", str(tmp_path / "labelled.csv"), "--target", "y", "--pool", str(tmp_path / "pool.csv"),
                 "--n", n, "--out", str(tmp_path / "out"), "--config", str(tmp_path / "tiny.yaml"), *args])
    error = capsys.readouterr().err
    assert code == 2
    assert re.search(message, error), error
    assert not (tmp_path / "out" / "model.npz").exists()


@pytest.mark.slow
def test_pool_labelled_ok_ignores_pool_targets_and_reordered_columns_match_by_name(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": X.sum(1)})
    frame[:10].to_csv(tmp_path / "labelled.csv", index=False)
    frame[10:][["y", "b", "a"]].to_csv(tmp_path / "pool.csv", index=False)  # reordered, target filled in
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    args = ["--labelled", str(tmp_path / "labelled.csv"), "--target", "y", "--pool", str(tmp_path / "pool.csv"),
            "--n", "3", "--out", str(tmp_path / "out"), "--config", str(tmp_path / "tiny.yaml")]
    assert main(args) == 2
    assert main([*args, "--pool-labelled-ok"]) == 0
    picks = pd.read_csv(tmp_path / "out" / "suggestions.csv")
    rows = frame[10:].reset_index(drop=True).iloc[picks["pool_row"] - 1]
    np.testing.assert_allclose(rows["a"].to_numpy(), picks["a"].to_numpy(), rtol=1e-15)  # CSV text round trip
    assert main([*args, "--pool-labelled-ok"]) == 2  # the directory holds a round: resume or overwrite
    assert main([*args, "--pool-labelled-ok", "--overwrite", "--sampler", "random", "--model", "dropout"]) == 0
    assert (pd.read_csv(tmp_path / "out" / "suggestions.csv")["score_kind"] == "epistemic_variance").all()


def test_the_default_model_recipe_fills_in_what_the_config_does_not_set(tmp_path):
    from al_bnn.recipe import DEFAULT_RECIPE
    from al_bnn.suggest import build_config, build_parser

    (tmp_path / "sampler_only.yaml").write_text("parms: {sample_policy: lcmd}\nnet_config: {layer_sizes: [32]}\n")
    common = ["--labelled", "l.csv", "--target", "y", "--pool", "p.csv", "--n", "3", "--out", str(tmp_path / "o")]
    given = build_config(build_parser().parse_args([*common, "--config", str(tmp_path / "sampler_only.yaml")]))
    assert given.parms.sample_policy == "lcmd" and given.net_config.layer_sizes == [32]
    plain = build_config(build_parser().parse_args(common))
    for config in (given, plain):
        for section, keys in DEFAULT_RECIPE.items():
            for key, value in keys.items():
                if (section, key) != ("net_config", "layer_sizes") or config is plain:
                    assert getattr(getattr(config, section), key) == value, (section, key)


def test_suggest_calibrates_unless_the_config_says_calibration_none(tmp_path):
    """The schema's default calibration is 'none' (the simulated loop's) while the estimators default to
    'holdout': suggest must give a calibrated model by default and an uncalibrated one when the user's
    config says so explicitly (a config value equal to the schema default must not be dropped)."""
    from al_bnn.suggest import build_config, build_parser, suggest_estimator

    common = ["--labelled", "l.csv", "--target", "y", "--pool", "p.csv", "--n", "3", "--out", str(tmp_path / "o")]
    (tmp_path / "none.yaml").write_text("train_schedule: {calibration: none}\n")
    (tmp_path / "other.yaml").write_text("parms: {sample_policy: lcmd}\n")
    for extra, expected in (([], "holdout"), (["--config", str(tmp_path / "other.yaml")], "holdout"),
                            (["--config", str(tmp_path / "none.yaml")], "none")):
        config = build_config(build_parser().parse_args([*common, *extra]))
        assert config.train_schedule.calibration == expected, extra
        assert suggest_estimator(config).get_params()["calibration"] == expected, extra
