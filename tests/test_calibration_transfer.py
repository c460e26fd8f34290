"""The calibration-transfer diagnosis replays the estimator's own holdout calibration."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn.config import ConfigError
from al_bnn.data import DataFileError
from al_bnn.models.trainer import epoch_layout
from al_bnn_lab import calibration_transfer as transfer
from al_bnn_lab.uci_protocol import Z90, make_estimator

TINY = {"layer_sizes": [8], "n_epochs": 4, "min_steps": 0, "batch_size": 32}


def _data(n: int, seed: int = 0):
    generator = np.random.default_rng(seed)
    x = generator.normal(size=(n, 3))
    y = np.sin(x[:, 0]) + 0.3 * generator.normal(size=n)
    return x, y


@pytest.mark.slow
def test_replayed_scales_are_the_estimators():
    """The diagnosis is about the package's recipe only if it replays it: the same held-out rows,
    copy and scales as BNNRegressor(calibration="holdout") computes for its first fit."""
    x, y = _data(60)
    test_x, test_y = _data(30, seed=1)
    row = transfer.transfer_row("bnn", x, y, test_x, test_y, seed=3, parameters=TINY)
    estimator = make_estimator("bnn", 3, TINY).fit(x, y)
    assert row["n_held"] == estimator.calibration_.n_rows
    assert row["scale_epistemic"] == pytest.approx(estimator.calibration_.epistemic, rel=1e-9)
    assert row["scale_aleatoric"] == pytest.approx(estimator.calibration_.aleatoric, rel=1e-9)
    # the final model is the estimator's own (calibration changes no weight): same raw std on test rows
    mean, std = estimator.predict(test_x, return_std=True)
    coverage = np.mean(np.abs(test_y - mean) <= Z90 * std)
    assert row["coverage_90_two_scales"] == pytest.approx(coverage, abs=1e-12)


def test_one_scale_maximises_the_held_out_likelihood():
    generator = np.random.default_rng(0)
    total = generator.uniform(0.5, 2.0, size=200)
    residual = 1.7 * total * generator.normal(size=200)
    s = transfer.one_scale(residual, total)

    def log_likelihood(scale: float) -> float:
        return transfer._scores(residual, np.sqrt(scale) * total)[1]

    assert log_likelihood(s) > log_likelihood(1.05 * s) and log_likelihood(s) > log_likelihood(s / 1.05)


def test_final_step_rows_follow_the_schedule():
    schedule = {"default": {"num_train_init": 0.05, "num_al_incr": 0.025, "al_iter": 8},
                "housing": {"num_train_init": 500, "num_al_incr": 200, "al_iter": 5}}
    assert transfer.final_step_rows(schedule, "abalone", 1000) == 50 + 8 * 25
    assert transfer.final_step_rows(schedule, "housing", 14448) == 1500
    assert transfer.final_step_rows(schedule, "housing", 900) == 900  # never more than the pool


def test_report_names_the_sets_below_the_floor():
    rows = []
    for dataset, two, one in (("a", 0.70, 0.80), ("b", 0.90, 0.91), ("c", 0.88, 0.86)):
        for seed in (0, 1):
            rows.append({"dataset": dataset, "model": "bnn", "seed": seed, **{c: 1.0 for c in transfer.COLUMNS},
                         "n_train": 980, "n_held": 196,
                         "coverage_90_two_scales": two, "coverage_90_one_scale": one,
                         "ll_two_scales": -1.0, "ll_one_scale": -1.0 + (0.1 if dataset == "a" else -0.01)})
    table = transfer.dataset_table(pd.DataFrame(rows))
    assert table["seeds"].tolist() == [2, 2, 2]
    text = transfer.render(table, "cmd")
    assert "two scales (the package's) 0.83 (below 0.75 on: a)" in text
    assert "one scale 0.86 (below 0.75 on: none)" in text
    assert "one scale higher on 1 of 3" in text
    assert "| 3x256 + 16 | 3x256 + 212 |" in text


def test_batch_layouts():
    assert transfer.batch_layout(784, 256) == "3x256 + 16"
    assert transfer.batch_layout(200, 256) == "200"
    assert transfer.batch_layout(784, 256, "balanced") == "4x196"
    assert transfer.batch_layout(277, 256, "balanced") == "1x139 + 1x138"


@pytest.mark.parametrize("name", ["transfer", "transfer_balanced"])
def test_the_committed_report_is_what_its_committed_runs_give(name):
    folder = Path(__file__).resolve().parent.parent / "docs" / "al_calibration" / name
    committed = (folder / transfer.REPORT_FILE).read_text()
    command = committed.split("Made by `", 1)[1].split("`", 1)[0]
    batching = "balanced" if "batching=balanced" in command else "padded"
    runs = pd.read_csv(folder / transfer.RUNS_FILE)
    expected = transfer.render(transfer.dataset_table(runs, 256, batching), command)
    if "--compare-with" in command:
        other = folder.parent / command.split("--compare-with ", 1)[1].split()[0].rsplit("/", 1)[-1]
        expected += "\n" + "\n".join(transfer.paired_lines(runs, pd.read_csv(other / transfer.RUNS_FILE), other.name))
    assert committed == expected


def _done_folder(folder: Path, model: str = "bnn", seeds=(0,)) -> Path:
    """An --out whose runs.csv already holds yacht's runs (copied from the committed report, the
    model renamed): measure has nothing to train."""
    committed = pd.read_csv(Path(__file__).resolve().parent.parent / "docs" / "al_calibration" / "transfer"
                            / transfer.RUNS_FILE)
    runs = committed[(committed["dataset"] == "yacht") & committed["seed"].isin(seeds)].assign(model=model)
    folder.mkdir(parents=True, exist_ok=True)
    runs.to_csv(folder / transfer.RUNS_FILE, index=False)
    return folder


def _never(message: str) -> None:
    raise AssertionError(f"nothing should have run: {message}")


def test_a_rerun_with_other_settings_into_the_same_folder_is_refused(tmp_path):
    folder = _done_folder(tmp_path / "out")
    transfer.measure(folder, ["yacht"], ["bnn"], [0], progress=_never)
    with pytest.raises(ConfigError, match="other settings"):
        transfer.measure(folder, ["yacht"], ["bnn"], [0], progress=_never, parameters={"batching": "balanced"})
    # the same settings continue the folder
    assert len(transfer.measure(folder, ["yacht"], ["bnn"], [0], progress=_never)) == 1


@pytest.mark.parametrize("argument, message", [("batchng=balanced", "batchng"), ("random_state=4", "random_state"),
                                               ("warm_start=3", "warm_start"), ("", "--seeds -1")])
def test_a_bad_set_or_seed_is_one_message_before_anything_runs(tmp_path, capsys, argument, message):
    folder = tmp_path / "out"
    seeds = ["-1"] if not argument else ["0", "--set", argument]
    assert transfer.main(["--datasets", "yacht", "--out", str(folder), "--seeds", *seeds]) == 2
    assert message in capsys.readouterr().err
    assert not (folder / transfer.RUNS_FILE).exists()


def test_an_unknown_dataset_is_refused_before_any_training(tmp_path):
    with pytest.raises(DataFileError, match="nosuch"):
        transfer.measure(tmp_path / "out", ["yacht", "nosuch"], ["bnn"], [0], progress=_never, parameters=TINY)
    with pytest.raises(ConfigError, match="'file'"):
        transfer.measure(tmp_path / "out", ["file"], ["bnn"], [0], progress=_never)


def test_compare_with_a_folder_that_is_no_runs_table_is_one_message(tmp_path, capsys):
    folder = _done_folder(tmp_path / "out")
    other = tmp_path / "other"
    other.mkdir()
    (other / transfer.RUNS_FILE).write_text("dataset,model\nyacht,bnn\n")
    arguments = ["--datasets", "yacht", "--seeds", "0", "--out", str(folder), "--compare-with", str(other)]
    assert transfer.main(arguments) == 2
    assert "no column seed" in capsys.readouterr().err
    (other / transfer.RUNS_FILE).unlink()
    (other / transfer.RUNS_FILE).symlink_to(folder / transfer.RUNS_FILE)
    assert transfer.main(arguments) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_the_report_of_another_model_takes_that_models_keywords(tmp_path):
    # dropout_rate is a DropoutRegressor keyword: the batches shown must come from the asked model's estimator
    folder = _done_folder(tmp_path / "out", model="dropout")
    arguments = ["--datasets", "yacht", "--seeds", "0", "--models", "dropout", "--out", str(folder),
                 "--set", "dropout_rate=0.1", "batch_size=32"]
    assert transfer.main(arguments) == 0
    text = (folder / transfer.REPORT_FILE).read_text()
    assert "| dropout | yacht | 1 |" in text and "| 3x32 + 1 | 3x32 + 25 |" in text


@pytest.mark.parametrize("n, batch_size", [(784, 256), (277, 256), (121, 32), (97, 32), (20, 32), (64, 32)])
def test_batch_layouts_are_the_trainers(n, batch_size):
    for batching in ("padded", "balanced"):
        sizes = epoch_layout(n, batch_size, batching).mask.numpy().sum(axis=1).tolist()
        shown = [int(size) for part in transfer.batch_layout(n, batch_size, batching).split(" + ")
                 for size in ([part] if "x" not in part else [part.split("x")[1]] * int(part.split("x")[0]))]
        assert shown == sizes



def test_the_paired_section_pairs_runs_on_the_same_rows_only():
    committed = Path(__file__).resolve().parent.parent / "docs" / "al_calibration" / "transfer" / transfer.RUNS_FILE
    runs = pd.read_csv(committed)
    runs = runs[runs["dataset"].isin(["yacht", "energy"])]
    assert "| bnn | yacht |" in "\n".join(transfer.paired_lines(runs, runs, "same"))
    # a baseline on another training-set size (another schedule) is no pair for these runs
    other = runs.assign(n_train=runs["n_train"] + 10)
    assert transfer.paired_lines(runs, other, "other")[2] == ("No (dataset, model, seed) in common at the same "
                                                              "training-set size.")
