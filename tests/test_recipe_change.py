"""The report that pairs a sweep with a changed model recipe against the committed benchmark
(al_bnn_lab.recipe_change): per-run statistics, the paired change with its verdicts, sampler
against random on each recipe, and refusals of tables that do not pair."""

import numpy as np
import pandas as pd
import pytest

from al_bnn.data import DataFileError
from al_bnn_lab import recipe_change


def sweep(shift=None, seeds=range(5), datasets=("a", "b"), samplers=("random", "lcmd"), steps=4, noise=0.01,
          salt=0):
    """A tidy table: log RMSE = 0 - 0.1 * step (- 0.2 for lcmd on dataset b) + shift[dataset] + noise."""
    rng = np.random.default_rng(salt)
    rows = []
    for dataset in datasets:
        for sampler in samplers:
            for seed in seeds:
                for step in range(steps):
                    log_rmse = -0.1 * step - (0.2 if (sampler == "lcmd" and dataset == "b" and step) else 0.0)
                    log_rmse += (shift or {}).get(dataset, 0.0) * (step > 0) + noise * rng.standard_normal()
                    rows.append(dict(dataset=dataset, model="bnn", sampler=sampler, seed=seed, al_iter=step,
                                     test_rmse=float(np.exp(log_rmse)), test_log_likelihood=-1.0 - 0.01 * seed,
                                     test_coverage_90=0.8 + 0.02 * step))
    return pd.DataFrame(rows)


def shifted(table, shift):
    """The same runs with log RMSE moved by shift[dataset] after step 0, and by +-0.01 alternating with
    the seed (a paired difference of mean 0.002 and spread 0.011 where nothing else moves)."""
    wobble = np.where(table["seed"] % 2 == 0, 0.01, -0.01)
    moved = table["dataset"].map(shift).fillna(0.0) * (table["al_iter"] > 0) + wobble
    return table.assign(test_rmse=table["test_rmse"] * np.exp(moved))


def test_run_statistics_average_the_steps_after_the_initial_one():
    table = sweep(noise=0.0)
    runs = recipe_change.run_statistics(table)
    assert len(runs) == 2 * 2 * 5
    first = runs[(runs.dataset == "a") & (runs.sampler == "random")].iloc[0]
    assert first.mean_log_rmse == pytest.approx(-0.2)       # steps 1-3: -0.1, -0.2, -0.3
    assert first.final_log_rmse == pytest.approx(-0.3)
    assert first.final_coverage_90 == pytest.approx(0.86) and first.final_step == 3


def test_a_clearly_worse_dataset_is_named_and_the_others_are_not():
    old = sweep(salt=1)
    new = shifted(old, {"a": 0.3})
    table = recipe_change.change_table(recipe_change.paired_runs(new, old))
    verdicts = {(row.dataset, row.sampler): row.verdict for row in table.itertuples()}
    assert verdicts[("a", "random")] == verdicts[("a", "lcmd")] == "worse"
    assert verdicts[("b", "random")] == verdicts[("b", "lcmd")] == "not distinguishable"
    assert table.loc[table.dataset == "a", "change"].to_numpy() == pytest.approx([0.3, 0.3], abs=0.005)
    assert set(table.loc[table.dataset == "a", "verdict_holm"]) == {"worse"}
    better = recipe_change.change_table(recipe_change.paired_runs(shifted(old, {"b": -0.3}), old))
    assert set(better.loc[better.dataset == "b", "verdict"]) == {"better"}


def test_the_report_says_lcmd_against_random_on_each_recipe_and_the_worse_datasets():
    old = sweep(salt=1)
    paired = recipe_change.paired_runs(shifted(old, {"a": 0.3}), old)
    text = recipe_change.render(recipe_change.change_table(paired), paired, "lcmd", "cmd", 15)
    assert "2 of 15 datasets so far" in text
    assert "- bnn / random: clearly worse on 1 of 2 datasets (a)" in text
    assert "| b | bnn | -0.198 ± 0.005 | better than random | -0.198 ± 0.005 | better than random |" in text
    assert "- new recipe: lcmd - random over datasets" in text and "clearly better than random on 1 of 2." in text


def test_runs_that_do_not_pair_are_named():
    old = sweep(seeds=range(4))
    with pytest.raises(DataFileError, match="not in the baseline tables, e.g. a / bnn / lcmd / seed 4"):
        recipe_change.paired_runs(sweep(), old)
    with pytest.raises(DataFileError, match="ends at AL step 4, the baseline's at 3: not the same schedule"):
        recipe_change.paired_runs(sweep(steps=5), sweep())
    # baseline runs the new sweep has not run yet are left out
    assert len(recipe_change.paired_runs(sweep(datasets=("a",)), sweep())) == 10


def test_the_command_writes_the_report_and_tables(tmp_path):
    old, new = sweep(salt=1), sweep(salt=2)
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "out"
    assert recipe_change.main(["--new", str(tmp_path / "new.csv"), "--baseline", str(tmp_path / "old.csv"),
                               "--out", str(out)]) == 0
    assert (out / "report.md").read_text().startswith("# Active learning under a changed model recipe")
    assert len(pd.read_csv(out / "changes.csv")) == 4 and len(pd.read_csv(out / "new_runs.csv")) == len(new)
    assert recipe_change.main(["--new", str(tmp_path / "missing.csv"), "--baseline", str(tmp_path / "old.csv"),
                               "--out", str(out)]) != 0


@pytest.mark.parametrize("name", ["docs/recipe_change", "docs/recipe_change/balanced",
                                  "docs/recipe_change/calibration"])
def test_the_committed_report_is_what_its_committed_runs_give(tmp_path, monkeypatch, name):
    """docs/recipe_change (KL weight 0.1), docs/recipe_change/balanced (balanced minibatches) and
    docs/recipe_change/calibration (the calibrated loop, the issue's guard) are regenerated by the command
    each names (the runs it read are committed beside it)."""
    import shlex
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    folder = repo / name
    committed = (folder / "report.md").read_text()
    command = shlex.split(committed.split("Made by `", 1)[1].split("`", 1)[0])
    arguments = command[command.index("source/recipe_change_report.py") + 1:]
    out = arguments.index("--out")
    assert arguments[out + 1] == name
    arguments[out + 1] = str(tmp_path / "again")
    monkeypatch.chdir(repo)
    assert recipe_change.main(arguments) == 0
    fresh = (tmp_path / "again" / "report.md").read_text()
    assert fresh.split("\n", 3)[3] == committed.split("\n", 3)[3]  # all but the title and the command line
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "changes.csv"), pd.read_csv(folder / "changes.csv"))
