"""The model benchmark's report: paired changes against the old recipe, verdicts, cost ratios, and
the quick run end to end (config -> sweep -> report and figure)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn_lab.bench_models import main, recipe_report, report_markdown


def synthetic_table():
    """Two datasets, recipes old and default, 4 seeds, 3 AL steps: default's RMSE is old's times a
    per-seed factor, so every paired difference is known in closed form."""
    rng = np.random.default_rng(0)
    rows = []
    factors = {"a": [0.8, 0.82, 0.79, 0.81], "b": [1.1, 0.9, 1.05, 0.95]}
    for dataset in ("a", "b"):
        for seed in range(4):
            base = rng.uniform(1, 2, size=3)
            for recipe in ("old", "default"):
                factor = 1.0 if recipe == "old" else factors[dataset][seed]
                for step in range(3):
                    rows.append(dict(dataset=dataset, sampler=recipe, seed=seed, al_iter=step,
                                     test_rmse=base[step] * factor,
                                     test_log_likelihood=-1.0 + (0.5 if recipe == "default" else 0.0) * (seed + 1),
                                     test_coverage_90=0.9, training_seconds=2.0 if recipe == "old" else 5.0,
                                     runs_in_stack=2))
    return pd.DataFrame(rows)


def test_the_report_pairs_each_recipe_with_the_old_one_by_seed():
    report = recipe_report(synthetic_table()).set_index(["dataset", "recipe"])
    a, b = report.loc[("a", "default")], report.loc[("b", "default")]
    # mean over steps of log(f * r) - log(r) = log f, per seed
    assert a.mean_log_rmse_change == pytest.approx(np.mean(np.log([0.8, 0.82, 0.79, 0.81])), rel=1e-12)
    assert a.verdict == "clearly better" and b.verdict == "within noise"
    assert a.log_likelihood_change == pytest.approx(0.5 * 2.5) and a.log_likelihood_verdict == "clearly better"
    assert a.cost_ratio == pytest.approx(2.5) and report.loc[("a", "old")].cost_ratio == pytest.approx(1.0)
    assert a.training_seconds == pytest.approx(3 * 5.0 / 2)  # per run: each phase's seconds over the stack
    text = report_markdown(report.reset_index())
    assert "1 clearly better, 1 within noise, 0 clearly worse" in text
    assert "final test log-likelihood 2 clearly better" in text and "2.50x the old recipe's" in text


def test_runs_of_several_models_are_reported_per_model():
    table = synthetic_table()
    doubled = pd.concat([table.assign(model="dropout"),
                         table.assign(model="ensemble", test_rmse=table["test_rmse"] * 2.0)])
    report = recipe_report(doubled).set_index(["dataset", "recipe"])
    assert set(report.index.get_level_values("dataset")) == {"a / dropout", "a / ensemble", "b / dropout",
                                                             "b / ensemble"}
    assert report.loc[("a / ensemble", "old"), "final_rmse"] == pytest.approx(
        2.0 * report.loc[("a / dropout", "old"), "final_rmse"])
    assert report.loc[("a / ensemble", "default"), "mean_log_rmse_change"] == pytest.approx(
        report.loc[("a / dropout", "default"), "mean_log_rmse_change"])


@pytest.mark.slow
def test_the_quick_model_benchmark_writes_its_report_and_figure(tmp_path, sweeps_in_process):
    out = tmp_path / "models"
    with sweeps_in_process():
        assert main(["--quick", "--out", str(out), "--workers", "1"]) == 0
    report = pd.read_csv(out / "models.csv")
    assert set(report["recipe"]) == {"old", "default"} and set(report["dataset"]) == {"yacht", "concrete"}
    assert (out / "models.png").stat().st_size > 10_000
    assert np.isfinite(report[["initial_rmse", "final_rmse", "final_log_likelihood", "coverage_90"]]).all().all()
    recomputed = recipe_report(pd.read_csv(out / "benchmark.csv"))
    pd.testing.assert_frame_equal(recomputed, report, check_exact=False, rtol=1e-9)
    assert ("stored in `settings.yaml` beside these tables (what each run key hashes). Today's defaults give the "
            "same settings.") in (out / "models.md").read_text()


@pytest.mark.slow
def test_with_validation_every_run_is_evaluated_on_a_held_out_share_of_its_pool(tmp_path, sweeps_in_process):
    config = str(Path(__file__).resolve().parent.parent / "configs" / "recipe_selection.yaml")
    out = tmp_path / "selection"
    with sweeps_in_process():
        assert main(["--quick", "--config", config, "--baseline", "default", "--validation", "0.2", "--out",
                     str(out), "--workers", "1"]) == 0
    table = pd.read_csv(out / "benchmark.csv")
    assert set(table.pool_size) == {246 - round(0.2 * 246)}  # yacht's pool of 246 less its validation share
    assert set(table.sampler) == {"default", "kl_1"}
    text = (out / "models.md").read_text()
    assert "Evaluated on a held-out 0.2 of each pool (by seed), not on the test set" in text
    assert "| change vs default [95% CI] |" in text and "kl_1 against default" in text
    pd.testing.assert_frame_equal(recipe_report(table, baseline="default"), pd.read_csv(out / "models.csv"),
                                  check_exact=False, rtol=1e-9)
    assert main(["--quick", "--config", config, "--baseline", "old", "--out", str(tmp_path / "bad")]) == 2


@pytest.mark.parametrize("folder", ["model_benchmark", "model_benchmark/recipe_selection"])
def test_the_committed_model_benchmark_tables_hold_every_run_of_their_stored_settings(folder):
    """The committed model benchmarks are checked against the settings stored beside them
    (settings.yaml: each run group's resolved settings), never against today's defaults: every
    stored run once with all its AL steps, by its key recomputed from the stored settings (the
    first table predates run keys: there by dataset, model, recipe and seed); the stored groups are
    those of the config.yaml beside them."""
    import yaml

    from al_bnn_lab.stored_settings import read_stored_settings, table_problems

    docs = Path(__file__).resolve().parent.parent / "docs" / folder
    stored = read_stored_settings(docs / "settings.yaml")
    config = yaml.safe_load((docs / "config.yaml").read_text())
    assert [(g["dataset"], g["model"], list(g["samplers"]), g["seeds"]) for g in stored["run_groups"]] == [
        (dataset, model, config["samplers"], config["seeds"]) for dataset in config["datasets"]
        for model in config["models"]]
    table = pd.read_csv(docs / "benchmark.csv", dtype={"run_key": str})
    assert ("run_key" in table) == (folder != "model_benchmark")
    assert table_problems(table, stored) == []
    first = table[(table.dataset == table.dataset[0]) & (table.sampler == table.sampler[0])
                  & (table.seed == table.seed[0])]
    last = int(first.al_iter.max())
    assert table_problems(table.iloc[1:], stored) == [  # and the check can fail: a run's first step left out
        f"{table.dataset[0]} / bnn / {table.sampler[0]} / seed {table.seed[0]}: AL steps {list(range(1, last + 1))}, "
        f"not 0..{last} once each"]
