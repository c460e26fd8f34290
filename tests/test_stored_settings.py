"""Result tables are checked against the settings stored beside them, not against live defaults (issue 33).

A changed default (or a new schema key with a non-neutral default, as issue 34's calibration) changes
the run keys today's config gives; the committed tables, made before, stay valid under their stored
settings, their report names the keys that differ, and a sweep does not take their runs as today's."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from al_bnn.config import ExperimentConfig, NetConfig
from al_bnn_lab import benchmark as run_benchmark
from al_bnn_lab import sweep
from al_bnn_lab.stored_settings import (
    read_stored_settings,
    settings_markdown,
    settings_yaml,
    stored_run_keys,
    stored_settings,
    table_problems,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "datasets": ["yacht", "energy"],
    "uci_root": str(REPO_ROOT / "data" / "uci"),
    "samplers": ["random", "lrgpa", "maxdist"],
    "sampler_settings": {"maxdist": {"parms": {"family_kernel": "grad"}}},
    "seeds": [0, 1],
    "models": ["bnn", "dropout"],
    "model_settings": {"dropout": {"net_config": {"dropout_rate": 0.1}}},
    "schedule": {"default": {"num_train_init": 0.05, "num_al_incr": 0.03, "al_iter": 2},
                 "energy": {"num_train_init": 20}},
    "experiment": {"net_config": {"layer_sizes": [8, 8], "divergence_scale": 0.3},
                   "train_schedule": {"num_epochs": 3}},
}


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def change_default(monkeypatch, section_cls, name, value) -> None:
    """Change a schema key's live default (what the dataclass fills in when a config leaves the key out)."""
    init = section_cls.__init__
    names = init.__code__.co_varnames[1:init.__code__.co_argcount]
    defaults = list(init.__defaults__)
    defaults[names.index(name) - (len(names) - len(defaults))] = value
    monkeypatch.setattr(init, "__defaults__", tuple(defaults))


def add_key(monkeypatch, section: str, name: str, neutral, default) -> None:
    """A key added to the schema later: its frozen run-key baseline is the neutral value (the
    behaviour before the key existed) but its live default is another (as calibration in issue 34)."""
    monkeypatch.setattr(sweep, "RUN_KEY_BASELINE",
                        sweep.merge_sections(sweep.RUN_KEY_BASELINE, {section: {name: neutral}}))
    to_dict = ExperimentConfig.to_dict
    monkeypatch.setattr(ExperimentConfig, "to_dict",
                        lambda self: sweep.merge_sections(to_dict(self), {section: {name: default}}))


CHANGES = {  # a changed default of a key the benchmark config leaves out, and a new key
    "clip_gradient": (lambda mp: change_default(mp, NetConfig, "clip_gradient", 50.0),
                      "- `net_config.clip_gradient`: 100.0 stored, 50.0 today"),
    "new key": (lambda mp: add_key(mp, "net_config", "output_scale", 1.0, 2.0),
                "- `net_config.output_scale`: 1.0 stored, 2.0 today"),
}


def live_keys(config) -> dict:
    return {sweep.run_key(config, entry, model, sampler, seed): (entry.name, model, sampler, seed)
            for entry, model, sampler, seed in sweep.sweep_runs(config)}


def fake_runs(config, keys: dict) -> pd.DataFrame:
    """Tidy rows of every run (no training): what a finished sweep's benchmark.csv holds."""
    rows = []
    for key, (dataset, model, sampler, seed) in keys.items():
        steps = sweep.schedule_for(config, dataset, 300)["al_iter"] + 1
        rmse = np.random.default_rng(seed).uniform(1, 2, steps)
        rows += [dict(dataset=dataset, model=model, sampler=sampler, seed=seed, al_iter=step, n_train=10 + step,
                      test_rmse=rmse[step], test_log_likelihood=-1.0, selection_seconds=0.1, training_seconds=1.0,
                      pool_size=300, runs_in_stack=6, test_coverage_90=0.9, run_key=key)
                 for step in range(steps)]
    return pd.DataFrame(rows)


def test_stored_settings_give_back_every_run_key_of_the_sweep(tiny, tmp_path):
    config = sweep.load_benchmark_config(tiny)
    path = tmp_path / "settings.yaml"
    path.write_text(settings_yaml(stored_settings(config)))
    stored = read_stored_settings(path)
    assert stored_run_keys(stored) == live_keys(config)
    assert len(stored["run_groups"]) == 4  # (dataset, model) groups
    group = stored["run_groups"][0]
    assert group["settings"]["net_config"]["clip_gradient"] == 100.0  # resolved: a default the config leaves out
    assert group["samplers"]["maxdist"] == {"parms": {"sample_policy": "maxdist", "family_kernel": "grad"}}
    assert table_problems(fake_runs(config, live_keys(config)), stored) == []
    assert "Today's defaults give the same settings." in settings_markdown(stored, config)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_default_leaves_stored_tables_valid_and_the_report_names_it(tiny, monkeypatch, change):
    config = sweep.load_benchmark_config(tiny)
    stored = stored_settings(config)
    table = fake_runs(config, live_keys(config))
    CHANGES[change][0](monkeypatch)
    config = sweep.load_benchmark_config(tiny)
    assert not set(live_keys(config)) & set(table.run_key)  # keys from live defaults: every run stale
    assert table_problems(table, stored) == []  # keys from the stored settings: the table holds
    report = settings_markdown(stored, config)
    assert "**Today's defaults differ from the stored settings**" in report
    assert f"{CHANGES[change][1]} (all 4 run groups)" in report
    table.loc[table.index[-1], "al_iter"] = 7  # and the check can fail
    assert table_problems(table, stored) == [
        "energy / dropout / maxdist / seed 1: AL steps [0, 1, 7], not 0..2 once each"]


@pytest.mark.slow
@pytest.mark.parametrize("change", list(CHANGES))
def test_the_committed_benchmark_tables_stay_valid_when_a_default_changes(monkeypatch, change):
    """The committed-table check (tests/test_benchmark_sweep.py) under a changed default: keys from
    the stored settings still hold; keys from today's defaults (the check before issue 33) would not."""
    CHANGES[change][0](monkeypatch)
    config = sweep.load_benchmark_config(REPO_ROOT / "configs" / "benchmark.yaml")
    stored = read_stored_settings(REPO_ROOT / "docs" / "benchmark" / "settings.yaml")
    tables = pd.concat([pd.read_csv(REPO_ROOT / "docs" / "benchmark" / name, dtype={"run_key": str})
                        for name in ("benchmark.csv", "benchmark_dropout_ensemble.csv.gz")])
    assert table_problems(tables, stored) == []
    entry = config.datasets[0]
    assert sweep.run_key(config, entry, "bnn", "random", 0) not in set(tables.run_key)
    assert f"{CHANGES[change][1]} (all 45 run groups)" in settings_markdown(stored, config)


def test_the_report_of_stored_runs_names_the_changed_default_and_what_was_reused(tiny, tmp_path, monkeypatch):
    """--report-only --settings rebuilds the report of tables made before a default changed: every run
    counts (not Partial), the changed key is named, and the reused runs are stated; without --settings
    the same tables match no run of today's settings, and a sweep cannot be keyed by stored settings."""
    config = sweep.load_benchmark_config(tiny)
    stored_path = tmp_path / "stored" / "settings.yaml"
    stored_path.parent.mkdir()
    stored_path.write_text(settings_yaml(stored_settings(config)))
    table_path = tmp_path / "stored" / "benchmark.csv"
    fake_runs(config, live_keys(config)).to_csv(table_path, index=False)
    change_default(monkeypatch, NetConfig, "clip_gradient", 50.0)
    out = tmp_path / "report"
    assert run_benchmark.main(["--config", str(tiny), "--out", str(out), "--report-only", "--reuse", str(table_path),
                               "--settings", str(stored_path)]) == 0
    summary = (out / "summary.md").read_text()
    assert "Partial" not in summary
    assert "- `net_config.clip_gradient`: 100.0 stored, 50.0 today (all 4 run groups)" in summary
    assert f"Reused: 24 of the 24 runs were taken from other results by this invocation, matched by run key " \
           f"(same settings, dataset and seed): 24 from `{table_path}`." in summary
    assert read_stored_settings(out / "settings.yaml") == read_stored_settings(stored_path)
    pd.testing.assert_frame_equal(pd.read_csv(out / "benchmark.csv", dtype={"run_key": str}),
                                  pd.read_csv(table_path, dtype={"run_key": str}), check_like=True)
    # today's settings: nothing of the stored tables is taken (no silent mixing of settings)
    again = tmp_path / "today"
    assert run_benchmark.main(["--config", str(tiny), "--out", str(again), "--report-only", "--datasets", "yacht",
                               "--reuse", str(table_path)]) == 0
    assert f"reused 0 finished run(s) from {table_path}" in (again / "log.txt").read_text()
    assert not (again / "summary.md").exists()
    assert run_benchmark.main(["--config", str(tiny), "--out", str(tmp_path / "run"), "--settings",
                               str(stored_path)]) == 2


def test_a_partly_reused_sweep_names_the_groups_its_runs_came_from(tiny, tmp_path):
    config = sweep.load_benchmark_config(tiny)
    keys = {key: run for key, run in live_keys(config).items() if run[0] == "yacht" and run[3] == 0}
    table_path = tmp_path / "part.csv"
    fake_runs(config, keys).to_csv(table_path, index=False)
    out = tmp_path / "out"
    assert run_benchmark.main(["--config", str(tiny), "--out", str(out), "--report-only", "--reuse",
                               str(table_path)]) == 0
    summary = (out / "summary.md").read_text()
    assert "Reused: 6 of the 24 runs" in summary
    assert "Per run group: yacht / bnn 3 of 6, yacht / dropout 3 of 6;" in summary
    assert "**Partial: 6 of 24 runs finished**" in summary
    assert "Today's defaults give the same settings." in summary
