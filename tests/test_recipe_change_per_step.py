"""The recipe-change report's per-step section (al_bnn_lab.recipe_change): the padded minibatch
layout's KL weight relative to the per-point ELBO, and the paired change in log test RMSE per AL
step for the distinguishable rows, on hand cases and a synthetic pair of tables whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from al_bnn.data import DataFileError
from al_bnn.recipe import DEFAULT_RECIPE
from al_bnn_lab import recipe_change, stats


@pytest.mark.parametrize("n_train, label, ratio", [
    (784, "3x256+16", (3 + 256 / 16) / 4),      # 4.75
    (490, "256+234", (1 + 256 / 234) / 2),      # 1.047
    (100, "100", 2.56),                          # one batch under 256 rows: 256 / n
    (512, "2x256", 1.0),                         # full batches only: the per-point ELBO
    (256, "256", 1.0),
    (294, "256+38", (1 + 256 / 38) / 2),        # 3.87
])
def test_padded_layout_and_kl_ratio_hand_cases(n_train, label, ratio):
    assert recipe_change.padded_label(n_train) == label
    assert recipe_change.padded_kl_ratio(n_train) == pytest.approx(ratio, rel=1e-12)
    assert sum(recipe_change.padded_batches(n_train)) == n_train


def test_the_batch_size_is_the_default_recipes_and_can_be_given():
    assert recipe_change.BATCH_SIZE == DEFAULT_RECIPE["train_schedule"]["batch_size"] == 256
    assert recipe_change.padded_batches(20, 8) == [8, 8, 4]
    assert recipe_change.padded_label(20, 8) == "2x8+4"
    assert recipe_change.padded_kl_ratio(20, 8) == pytest.approx((1 + 1 + 2) / 3)
    assert recipe_change.padded_kl_ratio(784, 784) == 1.0


def test_the_padded_batches_are_the_trainers():
    """The rows per batch the report assumes are the ones the trainer's padded layout fills."""
    from al_bnn.models.trainer import epoch_layout

    for n_train in (1, 100, 255, 256, 257, 490, 784, 1043):
        mask = epoch_layout(n_train, 256, "padded").mask.numpy()
        assert mask.sum(axis=1).tolist() == recipe_change.padded_batches(n_train, 256)


N_TRAIN = [100, 300, 512, 784, 490]        # per AL step 0..4
SEEDS = range(5)


def delta(dataset: str, step: int) -> float:
    """The known change new - old in log RMSE at a step: +0.1 log(ratio) on a, -0.1 log(ratio) on b,
    none on c; step 0 off the line (0.3), so a correlation that took it in would not be +-1."""
    if dataset == "c":
        return 0.0
    if step == 0:
        return 0.3
    return (0.1 if dataset == "a" else -0.1) * np.log(recipe_change.padded_kl_ratio(N_TRAIN[step]))


def pair_of_tables():
    """Old: log RMSE far apart between seeds (0.5 x seed), so a change paired across seeds would be
    wide; new: old + delta + 0.01 or -0.01 by the seed's parity; new's rows shuffled."""
    rows_old, rows_new = [], []
    for dataset in ("a", "b", "c"):
        for sampler in ("random", "lcmd"):
            for seed in SEEDS:
                wobble = 0.01 if seed % 2 == 0 else -0.01
                for step, n_train in enumerate(N_TRAIN):
                    old = 0.5 * seed - 0.05 * step + (0.02 if sampler == "lcmd" else 0.0)
                    common = dict(dataset=dataset, model="bnn", sampler=sampler, seed=seed, al_iter=step,
                                  n_train=n_train, test_log_likelihood=-1.0, test_coverage_90=0.9)
                    rows_old.append(dict(common, test_rmse=float(np.exp(old))))
                    rows_new.append(dict(common, test_rmse=float(np.exp(old + delta(dataset, step) + wobble))))
    new = pd.DataFrame(rows_new).sample(frac=1.0, random_state=3).reset_index(drop=True)
    return new, pd.DataFrame(rows_old)


def test_the_per_step_change_is_paired_by_run_and_step():
    new, old = pair_of_tables()
    table = recipe_change.change_table(recipe_change.paired_runs(new, old))
    steps = recipe_change.step_changes(new, old, table)
    # only the distinguishable rows: a worse, b better, c (nothing moved) left out
    assert sorted(set(zip(steps.dataset, steps.verdict, strict=True))) == [("a", "worse"), ("b", "better")]
    assert len(steps) == 2 * 2 * len(N_TRAIN)
    wobble = np.where(np.arange(5) % 2 == 0, 0.01, -0.01)
    for row in steps.itertuples():
        assert row.n_train == N_TRAIN[row.al_iter] and row.runs == 5
        assert row.padded_batches == recipe_change.padded_label(row.n_train)
        assert row.padded_kl_ratio == pytest.approx(recipe_change.padded_kl_ratio(row.n_train))
        mean, half = stats.mean_interval(delta(row.dataset, row.al_iter) + wobble)
        assert row.change == pytest.approx(mean, abs=1e-9)
        assert row.half_width == pytest.approx(half, abs=1e-9)   # paired across seeds, it would be ~0.8
    # the step changes after the initial step average to the row's change
    for row in table[table.verdict != "not distinguishable"].itertuples():
        part = steps[(steps.dataset == row.dataset) & (steps.sampler == row.sampler) & (steps.al_iter >= 1)]
        assert part["change"].mean() == pytest.approx(row.change, abs=1e-9)


def test_the_correlation_is_over_the_steps_after_the_initial_one():
    new, old = pair_of_tables()
    steps = recipe_change.step_changes(new, old, recipe_change.change_table(recipe_change.paired_runs(new, old)))
    correlations = recipe_change.step_correlations(steps).set_index(["dataset", "sampler"])
    assert correlations["steps"].tolist() == [4] * 4
    assert correlations.loc[("a", "random"), "correlation"] == pytest.approx(1.0, abs=1e-9)
    assert correlations.loc[("b", "lcmd"), "correlation"] == pytest.approx(-1.0, abs=1e-9)
    flat = steps.assign(padded_kl_ratio=2.0)
    assert np.isnan(recipe_change.step_correlations(flat)["correlation"]).all()


def test_the_report_shows_the_steps_and_the_correlations():
    new, old = pair_of_tables()
    paired = recipe_change.paired_runs(new, old)
    table = recipe_change.change_table(paired)
    steps = recipe_change.step_changes(new, old, table)
    text = recipe_change.render(table, paired, "lcmd", "cmd", 3, steps=steps)
    change = 0.1 * np.log(4.75) + 0.002
    assert f"| a | bnn | random | worse | 3 | 784 | 3x256+16 | 4.75 | {change:+.3f} ± 0.014 |" in text
    assert "| b | bnn | lcmd | better | 2 | 512 | 2x256 | 1.00 | +0.002 ± 0.014 |" in text
    assert ("- a / bnn / random (worse): correlation over 4 AL steps >= 1 between log(padded KL weight) and the "
            "change: +1.00 (descriptive).") in text
    assert "| c | bnn |" not in text.split("## Per AL step", 1)[1]
    assert recipe_change.render(table, paired, "lcmd", "cmd", 3) == text.split("\n## Per AL step")[0]


def test_a_step_trained_on_other_rows_is_named():
    new, old = pair_of_tables()
    table = recipe_change.change_table(recipe_change.paired_runs(new, old))
    moved = new.copy()
    moved.loc[(moved.dataset == "a") & (moved.sampler == "lcmd") & (moved.seed == 2) & (moved.al_iter == 3),
              "n_train"] = 785
    with pytest.raises(DataFileError, match="a / bnn / lcmd / seed 2, AL step 3: the new run trains on 785 rows, the "
                                            "baseline's on 784: not the same schedule"):
        recipe_change.step_changes(moved, old, table)
    with pytest.raises(DataFileError, match="the baseline has no AL step 2 of this run"):
        recipe_change.step_changes(new, old[~((old.dataset == "b") & (old.al_iter == 2))], table)


def test_the_command_writes_the_steps_table_and_removes_a_stale_one(tmp_path, capsys):
    new, old = pair_of_tables()
    new.to_csv(tmp_path / "new.csv", index=False)
    old.to_csv(tmp_path / "old.csv", index=False)
    out = tmp_path / "out"
    arguments = ["--baseline", str(tmp_path / "old.csv"), "--out", str(out)]
    assert recipe_change.main(["--new", str(tmp_path / "new.csv"), *arguments]) == 0
    written = pd.read_csv(out / "steps.csv")
    assert len(written) == 20 and set(written.dataset) == {"a", "b"}
    assert "## Per AL step, where the change is distinguishable" in (out / "report.md").read_text()
    # a sweep where nothing moved: no rows, and the earlier steps.csv is gone
    assert recipe_change.main(["--new", str(tmp_path / "old.csv"), *arguments]) == 0
    assert not (out / "steps.csv").exists()
    assert "No row's change is distinguishable." in (out / "report.md").read_text()
    with pytest.raises(SystemExit) as stopped:
        recipe_change.main(["--new", str(tmp_path / "new.csv"), "--batch-size", "0", *arguments])
    assert stopped.value.code == 2
    assert "argument --batch-size: needs a positive number of rows, got 0" in capsys.readouterr().err


def test_tables_without_n_train_still_get_the_change_per_step():
    new, old = pair_of_tables()
    new, old = new.drop(columns="n_train"), old.drop(columns="n_train")
    paired = recipe_change.paired_runs(new, old)
    table = recipe_change.change_table(paired)
    steps = recipe_change.step_changes(new, old, table)
    assert len(steps) == 20 and steps["n_train"].isna().all() and set(steps["padded_batches"]) == {"?"}
    change = 0.1 * np.log(4.75) + 0.002
    assert f"| a | bnn | random | worse | 3 | ? | ? | ? | {change:+.3f} ± 0.014 |" in recipe_change.render(
        table, paired, "lcmd", "cmd", 3, steps=steps)
