"""The settings a sweep's tables were made with, stored beside them (settings.yaml).

A run key (al_bnn_lab.sweep.run_key) hashes a run's resolved settings, and those follow the
schema's live defaults wherever the sweep config leaves a key out. Committed tables are therefore
checked, and their report rebuilt, against the settings stored when they were made, never against
today's defaults: a changed default then leaves the committed tables valid, and the report names the
keys where today's defaults differ instead of finding no runs.

The file holds, per (dataset, model) run group, the settings its samplers share (every key
resolved, the seed left out) and, per sampler label, what differs from those; a run's settings are
the two merged plus its seed, and its key is sweep.settings_key of them. A key missing from stored
settings (one added to the schema later) counts as at its frozen run-key baseline value, the value
that keeps the behaviour from before the key existed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from al_bnn.config import ConfigError, read_yaml, short_repr
from al_bnn_lab import sweep
from al_bnn_lab.sweep import BenchmarkConfig, merge_sections, run_settings, settings_key

SETTINGS_FILE = "settings.yaml"
FORMAT = "al_bnn_lab stored run settings 1"


def stored_settings(config: BenchmarkConfig) -> dict:
    """The resolved settings of every (dataset, model) run group of `config` (today's defaults
    filling what the config leaves out), in the stored-settings format."""
    groups = []
    for entry in config.datasets:
        for model in config.models:
            per_sampler = {}
            for sampler in config.samplers:
                settings = run_settings(config, entry, model, sampler, config.seeds[0])
                settings.pop("seed")
                per_sampler[sampler] = settings
            shared = _shared_part(list(per_sampler.values()))
            groups.append(dict(dataset=entry.name, model=model, seeds=list(config.seeds), settings=shared,
                               samplers={label: _difference(settings, shared) for label, settings in
                                         per_sampler.items()}))
    return dict(format=FORMAT, run_groups=groups)


def _shared_part(dicts: list[dict]) -> dict:
    """The keys (nested) on which every dict agrees, with their values."""
    shared = {}
    for key, value in dicts[0].items():
        values = [d.get(key) for d in dicts]
        if all(isinstance(v, dict) for v in values):
            nested = _shared_part(values)
            if nested:
                shared[key] = nested
        elif all(key in d and d[key] == value for d in dicts):
            shared[key] = value
    return shared


def _difference(settings: dict, shared: dict) -> dict:
    """What `settings` holds beyond or apart from `shared` (nested)."""
    difference = {}
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(shared.get(key), dict):
            nested = _difference(value, shared[key])
            if nested:
                difference[key] = nested
        elif key not in shared or shared[key] != value:
            difference[key] = value
    return difference


def read_stored_settings(path: str | Path) -> dict:
    """A stored-settings file, checked for the shape this module writes (plain YAML, nothing run)."""
    raw = read_yaml(path, "stored settings", mapping=True)
    groups = raw.get("run_groups")
    if raw.get("format") != FORMAT or not isinstance(groups, list):
        raise ConfigError(f"{path}: not a stored-settings file (format {short_repr(raw.get('format'))}, expected "
                          f"{FORMAT!r}); it is the {SETTINGS_FILE} a benchmark sweep writes beside its tables")
    for index, group in enumerate(groups):
        if (not isinstance(group, dict) or not isinstance(group.get("settings"), dict)
                or not isinstance(group.get("samplers"), dict)
                or not all(isinstance(v, dict) for v in group["samplers"].values())
                or not isinstance(group.get("seeds"), list) or not {"dataset", "model"} <= set(group)):
            raise ConfigError(f"{path}: run_groups[{index}] must have dataset, model, seeds, settings and samplers "
                              f"(a mapping of sampler label to settings), got {short_repr(group)}")
    return raw


def _group(stored: dict, dataset: str, model: str) -> dict | None:
    return next((g for g in stored["run_groups"] if g["dataset"] == dataset and g["model"] == model), None)


def stored_run_settings(stored: dict, dataset: str, model: str, sampler: str, seed: int) -> dict:
    """One run's settings from stored settings; ConfigError if the stored file has no such run."""
    group = _group(stored, dataset, model)
    if group is None or sampler not in group["samplers"] or seed not in group["seeds"]:
        raise ConfigError(f"the stored settings hold no run {dataset} / {model} / {sampler} / seed {seed}; report "
                          "only the runs they were stored for (--datasets, --models, --samplers, --seeds)")
    return {**merge_sections(group["settings"], group["samplers"][sampler]), "seed": seed}


def stored_run_key(stored: dict, dataset: str, model: str, sampler: str, seed: int) -> str:
    return settings_key(stored_run_settings(stored, dataset, model, sampler, seed))


def stored_run_keys(stored: dict) -> dict[str, tuple[str, str, str, int]]:
    """Every stored run's key -> (dataset, model, sampler, seed), recomputed from the stored settings only."""
    keys = {}
    for group in stored["run_groups"]:
        for sampler in group["samplers"]:
            for seed in group["seeds"]:
                key = stored_run_key(stored, group["dataset"], group["model"], sampler, seed)
                keys[key] = (group["dataset"], group["model"], sampler, seed)
    return keys


def table_problems(table: pd.DataFrame, stored: dict) -> list[str]:
    """Why a tidy table does not hold every stored run once with all its AL steps (empty: it does):
    what a committed table is checked against, whatever today's defaults are. Runs are matched by
    their key recomputed from the stored settings only, or, in a table written before run keys
    existed (no run_key column), by dataset, model, sampler and seed."""
    keyed = "run_key" in table
    expected = stored_run_keys(stored)
    if not keyed:
        expected = {" / ".join(map(str, run)): run for run in expected.values()}
    names = (table["run_key"].astype(str) if keyed else
             table["dataset"].astype(str) + " / " + table["model"].astype(str) + " / " + table["sampler"].astype(str)
             + " / " + table["seed"].astype(str))
    found = set(names)
    problems = [f"no rows of the stored run {' / '.join(map(str, expected[name]))}"
                + (f" (key {name})" if keyed else "") for name in sorted(set(expected) - found)]
    problems += [f"rows of {'key ' if keyed else ''}{name}, not a stored run's"
                 for name in sorted(found - set(expected))]
    for name, rows in table.groupby(names, sort=False):
        if name not in expected:
            continue
        dataset, model, sampler, seed = expected[name]
        run = f"{dataset} / {model} / {sampler} / seed {seed}"
        if not ((rows["dataset"] == dataset).all() and (rows["model"] == model).all() and (rows["seed"] == seed).all()):
            problems.append(f"{run}: its key's rows name other runs")
        steps = stored_run_settings(stored, dataset, model, sampler, seed)["al_schedule"]["al_iter"] + 1
        if sorted(rows["al_iter"]) != list(range(steps)):
            problems.append(f"{run}: AL steps {sorted(rows['al_iter'])}, not 0..{steps - 1} once each")
    return problems


def _flat(settings: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_differences(stored: dict, config: BenchmarkConfig) -> dict[tuple[str, str, str], list[str]]:
    """Where the settings today's defaults give `config`'s runs differ from the stored ones: (dotted
    key, stored value, today's value) -> the run groups ('dataset / model') where they do. Groups
    and samplers of one side only are left out (they are not the same runs)."""
    entries = {entry.name: entry for entry in config.datasets}
    differences: dict[tuple[str, str, str], list[str]] = {}
    for group in stored["run_groups"]:
        entry = entries.get(group["dataset"])
        if entry is None or group["model"] not in config.models:
            continue
        found: set[tuple[str, str, str]] = set()
        for sampler in group["samplers"]:
            if sampler not in config.samplers:
                continue
            seed = group["seeds"][0]  # a key the stored settings lack was at its run-key baseline value
            then = _flat(merge_sections(sweep.RUN_KEY_BASELINE,
                                        stored_run_settings(stored, entry.name, group["model"], sampler, seed)))
            now = _flat(run_settings(config, entry, group["model"], sampler, seed))
            for key in sorted(set(then) | set(now)):
                if then.get(key, "(not set)") != now.get(key, "(not set)"):
                    found.add((key, repr(then.get(key, "(not set)")), repr(now.get(key, "(not set)"))))
        for difference in found:
            differences.setdefault(difference, []).append(f"{group['dataset']} / {group['model']}")
    return dict(sorted(differences.items()))


def settings_markdown(stored: dict, config: BenchmarkConfig) -> str:
    """The report's paragraph on the settings its tables were made with: stored beside them, and
    whether today's defaults give the same (else the keys that differ, with both values)."""
    groups = len(stored["run_groups"])
    lines = [f"Settings: the resolved settings of each of the {groups} (dataset, model) run groups are stored in "
             f"`{SETTINGS_FILE}` beside these tables (what each run key hashes)."]
    differences = settings_differences(stored, config)
    if not differences:
        lines.append("Today's defaults give the same settings.")
        return " ".join(lines)
    lines.append("**Today's defaults differ from the stored settings** (the tables are the stored settings' runs; "
                 "a sweep with today's defaults makes new runs):")
    text = " ".join(lines) + "\n"
    for (key, then, now), where in differences.items():
        scope = f"all {groups} run groups" if len(where) == groups else ", ".join(where)
        text += f"\n- `{key}`: {then} stored, {now} today ({scope})"
    return text


def settings_yaml(stored: dict) -> str:
    """The stored-settings file's text: a header saying what it is, then the plain YAML."""
    import yaml

    header = ("# The resolved settings of every (dataset, model) run group of the tables beside this file, written\n"
              "# by the benchmark sweep (al_bnn_lab.stored_settings): a run's settings are its group's `settings`\n"
              "# merged with its sampler's entry, plus its seed; its run key is their hash. Tests and reports\n"
              "# recompute the tables' keys from this file, not from today's defaults.\n")
    return header + yaml.safe_dump(stored, sort_keys=False, default_flow_style=None)


def reuse_markdown(reused: dict[str, int], taken: list[tuple], config: BenchmarkConfig) -> str:
    """The report's line on runs taken from other results (--reuse): how many from each source and,
    per (dataset, model) run group, how many of its runs; empty when nothing was asked to be reused."""
    if not reused:
        return ""
    per_source = ", ".join(f"{count} from `{source}`" for source, count in reused.items())
    group_size = len(config.samplers) * len(config.seeds)
    counts: dict[str, int] = {}
    for dataset, model, *_ in taken:
        counts[f"{dataset} / {model}"] = counts.get(f"{dataset} / {model}", 0) + 1
    total = len(config.datasets) * len(config.models) * group_size
    text = (f"Reused: {len(taken)} of the {total} runs were taken from other results by this invocation, matched by "
            f"run key (same settings, dataset and seed): {per_source}.")
    if taken and len(taken) < total:
        text += (" Per run group: " + ", ".join(f"{group} {count} of {group_size}" for group, count in counts.items())
                 + "; the other runs were run here or were already finished in this directory.")
    return text
