"""Run the study (joint vs marginal samples, MC vs exact kernel, sample count, precision, cost;
second edition: which method when, does the model matter, what each method costs; third edition:
does calibration change which method wins) and write its report.

    python source/run_study.py                      # every question; report -> docs/study.md
    python source/run_study.py --questions q1 q2    # some questions (the study runs in parts)
    python source/run_study.py --questions q6 q7 q8 # the second edition (q7 needs q6's results)
    python source/run_study.py --questions q9 --reuse RESULTS   # the third (calibrated; compared with q6's runs)
    python source/run_study.py --quick              # tiny sizes, into results_study_quick/
    python source/run_study.py --results-dir DIR    # runs and report (DIR/study.md) into DIR
    python source/run_study.py --report-only        # rebuild the report from the runs so far
    python source/run_study.py --questions q6 --reuse docs/benchmark/benchmark.csv   # take runs it shares

Each question's sweep is configs/study/common.yaml merged with its own configs/study/q*.yaml and
run by the package's sweep runner (al_bnn_lab.benchmark.run_sweep) into <results>/<question>/; finished runs
are kept, so an interrupted study resumes where it stopped; --reuse takes finished runs of equal
settings (dataset, seed, sampler policy and settings, model, training) from other results, such as
the benchmark's or a part an earlier checkout committed. The report is rebuilt from the tidy
CSVs after every part; every number in it is computed from them, and a copy of them is written
next to the report (study_data/; the per-run tables gzip-compressed, <question>.csv.gz), so the
tables can be recomputed without rerunning anything.
Q7's samplers are not in its config: they are the best methods of Q6's results (so Q6 must have
finished first). Q5 and Q8 take their per-step timings from the runs of other questions and add
synthetic selection timings (resumable per row). Q9's report section pairs each calibrated run with
itself before calibration (the raw LL and coverage the loop keeps) and checks its test RMSE against
Q6's uncalibrated run of the same dataset, sampler and seed (its config's `study: paired_with`).
Without --results-dir or --quick the report goes to docs/study.md, the plots to images/study/
and the headline block of docs/results.md is refreshed; otherwise all of it stays under the results dir.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from al_bnn.checkpoint import RAW_COLUMNS
from al_bnn.cli import run_reporting_errors
from al_bnn.config import ConfigError, read_yaml, with_quick
from al_bnn.data import DataFileError, uci_dataset_names
from al_bnn.errors import AlBnnError
from al_bnn.paths import REPO_ROOT, remove_file
from al_bnn.results import ResultsWriter
from al_bnn_lab import heldout_check, study_cost, study_methods, study_report
from al_bnn_lab.benchmark import refuse_another_sweep
from al_bnn_lab.benchmark import run_sweep as run_benchmark_sweep
from al_bnn_lab.sweep import (
    UNREADABLE_TABLE_ERRORS,
    benchmark_config_from_dict,
    merge_sections,
    pending_tasks,
    reuse_runs,
    run_key,
)

CONFIG_DIR = REPO_ROOT / "configs" / "study"
SWEEP_QUESTIONS = {"q1": "q1_samplers.yaml", "q2": "q2_joint_marginal.yaml", "q3": "q3_mc_vs_exact.yaml",
                   "q4": "q4_fast_batch_precision.yaml", "q6": "q6_methods.yaml", "q7": "q7_models.yaml",
                   "q9": "q9_calibration.yaml"}
DERIVED_QUESTIONS = {"q7"}  # samplers chosen from another question's results
COST_CONFIG = "q5_cost.yaml"
METHOD_COST_CONFIG = "q8_cost.yaml"
QUESTIONS = ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9"]
PAIRED_QUESTIONS = {"q9": "q6"}  # a question whose report reads another's runs too (the default of `paired_with`)
BASELINE = "random"
QUESTION_TEXT = {
    "q1": "Does GPA need fewer labelled points than random selection and MCDUE for the same test RMSE and "
          "log-likelihood (final and area under the curve, paired wins/ties/losses), and where does it not help?",
    "q2": "The published code drew each point's function values independently (marginal samples), so the "
          "covariance GPA conditions on has noise in place of its off-diagonal entries. How much do its picks "
          "overlap with those of the exact last-layer kernel, compared with joint samples, and does it change "
          "the test RMSE?",
    "q3": "The published code estimates the kernel from T = 100 Monte-Carlo samples where a closed form exists. "
          "How do the picks and the RMSE approach the exact kernel's as T grows?",
    "q4": "The thesis attributed the cases where fast and batch GPA disagree to rounding. On identical samples, "
          "how often and after how many picks do fast, batch and low-rank GPA diverge in float64 and float32, "
          "and does it change the RMSE?",
    "q5": "What does an AL step cost: selection and training seconds per sampler, and how does selection time "
          "grow with the pool size (up to a million points for low-rank GPA)?",
    "q6": "Which method when: over California housing and the 14 shipped UCI sets, how does each selection method "
          "(random, MCDUE, GPA on the MC and the exact kernel, and the selection family on the MC, exact or gradient "
          "kernel) compare with random selection, per dataset and aggregated over datasets as Holzmueller et al. "
          "(JMLR 2023) do, and where does each one lose?",
    "q7": "Does the model matter? Do the best methods of Q6, GPA and random rank the same on MC dropout and deep "
          "ensembles as on the bnn?",
    "q8": "What does each method cost: selection seconds per AL step by pool size in the Q6 runs against training "
          "seconds per run, and selection time on synthetic features up to a million points?",
    "q9": "Does calibration change which method wins? The same samplers on the calibrated model, each run paired "
          "with itself before calibration: which sampler has the highest final-step test log-likelihood, per "
          "dataset and on average, without and with calibration; and do Q6's uncalibrated runs of the same "
          "dataset, sampler and seed, trained apart, have the same test RMSE?",
}
HEADLINE_PAGE = REPO_ROOT / "docs" / "results.md"  # the docs page that quotes the study's headline answers
HEADLINE_START = "<!-- study headline: generated by source/run_study.py, do not edit -->"
HEADLINE_END = "<!-- end of study headline -->"
logger = logging.getLogger("al_bnn.study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run the study and write its report (docs/study.md).")
    parser.add_argument("--questions", nargs="+", choices=QUESTIONS, default=QUESTIONS,
                        help="questions to run now (default: all); the report covers every question with runs")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (each config's quick: section), for tests")
    parser.add_argument("--results-dir", default=None,
                        help="where the runs and the report go (default: results_study, report in docs/study.md; "
                             "with --quick: results_study_quick)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes per sweep (default 2)")
    parser.add_argument("--uci-root", default=None,
                        help="folder of the UCI datasets (default: $UCI_DATA_DIR); after the questions, the study's "
                             "held-out check runs on every dataset in it that the study did not use")
    parser.add_argument("--report-only", action="store_true", help="run nothing; rebuild the report from the runs")
    parser.add_argument("--reuse", nargs="+", default=[], metavar="PATH",
                        help="take finished runs from these results directories or tidy tables (e.g. the "
                             "benchmark's docs/benchmark/benchmark.csv, or a table an earlier checkout committed) "
                             "where their settings, dataset and seed equal a run of a question's sweep")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    if not logger.handlers:  # this logger only: the sweeps print their own lines
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return run_reporting_errors(lambda: _run(args))


def _read_yaml(path: Path) -> dict:
    return read_yaml(path, "study config", mapping=True)


def question_settings(question: str, quick: bool, uci_root: str | None = None) -> tuple[dict, dict]:
    """(the benchmark config as a dict, the file's `study:` section) of a sweep question:
    common.yaml merged with its own file, their quick: sections applied on top when `quick`."""
    paths = (CONFIG_DIR / "common.yaml", CONFIG_DIR / SWEEP_QUESTIONS[question])
    raw = with_quick({str(path): _read_yaml(path) for path in paths}, quick)
    study = raw.pop("study", None) or {}
    if uci_root:
        raw["uci_root"] = uci_root
    elif raw.get("uci_root") is None and os.environ.get("UCI_DATA_DIR"):
        raw["uci_root"] = os.environ["UCI_DATA_DIR"]
    return raw, study


def question_sweep(question: str, quick: bool, uci_root: str | None = None) -> dict:
    """The benchmark config (a dict) of a sweep question whose samplers its config lists."""
    raw, _ = question_settings(question, quick, uci_root)
    benchmark_config_from_dict(raw, f"{CONFIG_DIR / SWEEP_QUESTIONS[question]}")  # validate before any work
    return raw


class DerivedSweep:
    """A question whose samplers come from another question's results (Q7: the best methods of Q6,
    plus the file's `always` samplers): the sweep once its source has finished, else why not."""

    def __init__(self, question: str, quick: bool, uci_root: str | None, sweeps: dict, tables: dict):
        self.question = question
        self.raw, study = question_settings(question, quick, uci_root)
        self.source = study.get("derived_from", "q6")
        self.count = int(study.get("best_of_q6", 3))
        self.always = list(study.get("always", ["gpa", BASELINE]))
        self.datasets_note = str(study.get("datasets_note", "")).strip()
        self.sweep: dict | None = None
        self.chosen: list[str] = []
        self.skipped: list[str] = []
        source_raw, table = sweeps.get(self.source), tables.get(self.source)
        command = f"python source/run_study.py{' --quick' if quick else ''} --questions {self.source}"
        if table is None or source_raw is None:
            self.problem = (f"{question} runs the best methods of {self.source}, which has no results yet; run "
                            f"`{command}` first")
            return
        expected = {(d if isinstance(d, str) else d["name"], s, seed) for d in source_raw["datasets"]
                    for s in source_raw["samplers"] for seed in source_raw["seeds"]}
        present = set(zip(table["dataset"], table["sampler"], table["seed"], strict=True))
        if not expected <= present:
            self.problem = (f"{question} runs the best methods of {self.source}, whose runs are not all finished "
                            f"({len(expected - present)} of {len(expected)} missing); finish them first (`{command}`)")
            return
        self.problem = None
        settings = source_raw.get("sampler_settings") or {}

        def runnable(label: str) -> bool:
            trial = dict(self.raw, samplers=[label], sampler_settings={label: settings.get(label, {})})
            try:
                benchmark_config_from_dict(trial, f"{question} trial of {label}")
            except ConfigError:
                return False
            return True

        self.chosen, self.skipped = study_methods.best_methods(study_report.bnn_rows(table), self.count, runnable,
                                                               BASELINE)
        samplers = list(dict.fromkeys([BASELINE, *self.chosen, *self.always]))
        self.sweep = dict(self.raw, samplers=samplers,
                          sampler_settings={s: settings[s] for s in samplers if s in settings})
        benchmark_config_from_dict(self.sweep, f"{CONFIG_DIR / SWEEP_QUESTIONS[question]}")

    def describe(self) -> str:
        if self.problem is not None:
            return f"The samplers are chosen from {self.source.upper()}'s results, which are not complete yet."
        skipped = (f"; better-ranked methods that cannot run on these models (the exact kernel is the bnn's "
                   f"closed form) were skipped: {study_report.listing(self.skipped)}" if self.skipped else "")
        return (f"The samplers were chosen by the script from {self.source.upper()}'s results: the "
                f"{self.count} methods with the lowest mean log RMSE over its datasets that run on every model "
                f"here, {study_report.listing(self.chosen)}{skipped}; plus {study_report.listing(self.always)}.")


def cost_settings(quick: bool, name: str = COST_CONFIG) -> dict:
    """A cost question's settings (its file, with its quick: section on top when `quick`)."""
    return with_quick({str(CONFIG_DIR / name): _read_yaml(CONFIG_DIR / name)}, quick)


class WallTimes:
    """Wall seconds spent on each question, summed over the parts (invocations) it ran in."""

    def __init__(self, path: Path):
        self.path = path
        self.entries = json.loads(path.read_text()) if path.exists() else {}

    def add(self, question: str, seconds: float, workers: int | None = None) -> None:
        entry = self.entries.setdefault(question, {"seconds": 0.0, "parts": 0, "commits": []})
        entry["seconds"] += seconds
        entry["parts"] += 1
        entry.setdefault("part_seconds", []).append(seconds)
        if workers is not None and workers not in entry.setdefault("workers", []):
            entry["workers"].append(workers)
        commit = current_commit()
        if commit not in entry["commits"]:
            entry["commits"].append(commit)
        # float32 training on CPU need not round the same on another processor or build: say where it ran
        machine = machine_description()
        if machine not in entry.setdefault("machines", []):
            entry["machines"].append(machine)
        self._save()

    def forget(self, question: str) -> None:
        """Drop a question's record: its results folder is gone, so the runs it timed are too."""
        if self.entries.pop(question, None) is not None:
            self._save()

    def add_reused(self, question: str, runs: int) -> None:
        """Count runs taken from other results (--reuse): their time is not in the seconds."""
        if runs:
            entry = self.entries.setdefault(question, {"seconds": 0.0, "parts": 0, "commits": []})
            entry["reused_runs"] = entry.get("reused_runs", 0) + runs
            self._save()

    def _save(self) -> None:
        ResultsWriter(self.path.parent, overwrite=True).write_text(self.path.name, json.dumps(self.entries, indent=1))

    def describe(self, question: str) -> str:
        entry = self.entries.get(question)
        if not entry:
            return "not measured"
        if not entry["parts"] and entry.get("reused_runs"):  # nothing ran here (Q9 takes a sweep's runs)
            return (f"nothing trained here: all {entry['reused_runs']} finished runs were taken from other results "
                    "with --reuse, their time not included")
        seconds = entry["seconds"]
        duration = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
        parts = f" in {entry['parts']} parts" if entry["parts"] > 1 else ""
        if entry["parts"] > 1 and len(entry.get("part_seconds", [])) == entry["parts"]:
            parts += " (" + " + ".join(f"{part / 60:.1f}" for part in entry["part_seconds"]) + " min)"
        workers = entry.get("workers")
        processes = f", {' or '.join(map(str, workers))} worker process(es)" if workers else ""
        reused = (f"; {entry['reused_runs']} finished runs were taken from other results with --reuse, their "
                  "time not included" if entry.get("reused_runs") else "")
        machines = f" {_where(entry)}" if entry.get("machines") else ""
        note = f"; {entry['note']}" if entry.get("note") else ""  # written by hand where the record alone misleads
        return f"{duration}{parts}{processes}{machines} (code at {', '.join(entry['commits'])}){reused}{note}"

    def machines(self) -> dict[str, list[str]]:
        """question -> the machines its parts ran on, where recorded."""
        return {question: list(entry.get("machines", [])) for question, entry in self.entries.items()}

    def total(self) -> str:
        """The whole study's wall time, summed over questions and parts (reused runs not counted)."""
        seconds = sum(entry["seconds"] for entry in self.entries.values())
        hours, minutes = divmod(round(seconds / 60), 60)
        measured = [q.upper() for q in QUESTIONS if self.entries.get(q, {}).get("parts")]
        if not measured:
            return ""
        machines = {m for entry in self.entries.values() for m in entry.get("machines", [])}
        where = ("this machine" if len(machines) < 2
                 else f"{len(machines)} machines (named with the questions whose record has them)")
        return (f"**Wall time in all:** {hours} h {minutes} min on {where} for {', '.join(measured)} "
                "(each question's time is in its section, with its parts where they were recorded one by one; runs "
                "taken from other results with --reuse are not counted).")


def current_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def run_sweep(question: str, raw: dict, results_dir: Path, workers: int, wall_times: WallTimes,
              reuse: Sequence[str | Path] = ()) -> None:
    output = results_dir / question
    config_path = results_dir / "configs" / f"{question}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    ResultsWriter(config_path.parent, overwrite=True).write_text(config_path.name,
                                                                 yaml.safe_dump(raw, sort_keys=False))
    config = benchmark_config_from_dict(raw, str(config_path))
    logger.info("== %s: %s", question, QUESTION_TEXT[question])
    if not output.exists():  # a fresh folder: an old record would add this part's runs to runs no longer here
        wall_times.forget(question)
    if reuse:  # first, and counted at once: the time of these runs was spent elsewhere
        refuse_another_sweep(output, config)  # before copying runs in or counting them
        with ResultsWriter(output, overwrite=True, lock=True) as writer:
            counts = reuse_runs(config, output, reuse, writer)
        for source, count in counts.items():
            logger.info("%s: took %d finished run(s) from %s", question, count, source)
        wall_times.add_reused(question, sum(counts.values()))
    pending = pending_tasks(config, output)
    started = time.perf_counter()
    try:
        # Called even when every run file exists: the sweep runner refuses runs of a different config.
        run_benchmark_sweep(config, output, workers=workers)
    finally:  # an interrupted part counts too: its finished runs are kept and it took this long
        if pending:
            wall_times.add(question, time.perf_counter() - started, workers)


def measure_pool_scaling(settings: dict, results_dir: Path, wall_times: WallTimes) -> None:
    """Time each method's selection on synthetic samples per pool size; resumable per row."""
    import numpy as np

    from al_bnn.selection.gpa_math import centred_sample_factor, select_gpa_from_factor
    from al_bnn_lab.bench_samplers import synthetic_samples

    scaling = settings["pool_scaling"]
    output = results_dir / "q5"
    output.mkdir(parents=True, exist_ok=True)
    path = output / "pool_scaling.csv"
    recorded = output / "pool_scaling_config.yaml"
    if recorded.exists() and yaml.safe_load(recorded.read_text()) != scaling and path.exists():
        remove_file(output, path.name)  # settings changed: these timings belong to other sizes
    writer = ResultsWriter(output, overwrite=True)
    writer.write_text(recorded.name, yaml.safe_dump(scaling))
    rows = pd.read_csv(path).to_dict("records") if path.exists() else []
    done = {(row["method"], row["n_pool"]) for row in rows}
    todo = [(method, n_pool) for method, sizes in scaling["pool_sizes"].items() for n_pool in sizes
            if (method, n_pool) not in done]
    if not todo:
        return
    logger.info("== q5: selection time against pool size (%d measurements)", len(todo))
    started = time.perf_counter()
    n_train, num_samples = scaling["n_train"], scaling["num_samples"]
    warm_up = centred_sample_factor(synthetic_samples(60, 10))
    select_gpa_from_factor(warm_up, 10, 5, 2, 0.01, "lowrank")  # loads LAPACK before timing
    for method, n_pool in todo:
        samples = synthetic_samples(n_train + n_pool, num_samples)
        began = time.perf_counter()
        factor = centred_sample_factor(samples, np.float64)
        select_gpa_from_factor(factor, n_train, scaling["n_select"], scaling["batch_size"], 0.01, method)
        seconds = time.perf_counter() - began
        del samples, factor
        rows.append(dict(method=method, n_pool=n_pool, n_train=n_train, num_samples=num_samples,
                         n_select=scaling["n_select"], batch_size=scaling["batch_size"], seconds=seconds))
        writer.write_csv(path.name, rows)
        logger.info("q5: %s GPA, pool %d: %.3f s", method, n_pool, seconds)
    wall_times.add("q5", time.perf_counter() - started)


def measure_selection_benchmark(settings: dict, results_dir: Path, wall_times: WallTimes) -> None:
    """Rows of bench_selection.run for each configured method, dtype and size, measured once and
    kept in q8/selection_benchmark.csv (a rerun measures only the missing rows)."""
    from al_bnn_lab import bench_selection

    bench = settings["selection_benchmark"]
    output = results_dir / "q8"
    path = output / "selection_benchmark.csv"
    recorded = pd.read_csv(path).to_dict("records") if path.exists() else []
    key_names = ("method", "dtype", "d", "n_pool", "n_select")
    wanted = {(m, dtype, *map(int, size)) for m in bench["methods"] for dtype in bench["dtypes"]
              for size in bench["sizes"]}
    wanted |= {("lrgpa-b1", *rest) for m, *rest in wanted if m == "maxdet"}  # bench_selection adds it to maxdet
    rows = [row for row in recorded if tuple(row[k] for k in key_names) in wanted]
    done = {tuple(row[k] for k in key_names) for row in rows}
    todo = [(size, dtype, method) for size in bench["sizes"] for dtype in bench["dtypes"] for method in bench["methods"]
            if (method, dtype, *map(int, size)) not in done
            or (method == "maxdet" and ("lrgpa-b1", dtype, *map(int, size)) not in done)]
    writer = ResultsWriter(output, overwrite=True)
    if len(rows) < len(recorded):  # sizes or methods no longer configured
        writer.write_csv(path.name, rows)
    if not todo:
        return
    logger.info("== q8: selection benchmark (%d measurements)", len(todo))
    started = time.perf_counter()
    for size, dtype, method in todo:
        new = bench_selection.run([tuple(map(int, size))], [dtype], [method], print_row=lambda line: None)
        rows = [row for row in rows if tuple(row[k] for k in key_names)
                not in {tuple(n[k] for k in key_names) for n in new}] + new
        writer.write_csv(path.name, rows)
        for row in new:
            logger.info("q8: %s, d %d, pool %d, %d picks, %s: %.2f s, peak %.0f MiB", row["method"], row["d"],
                        row["n_pool"], row["n_select"], row["dtype"], row["seconds"], row["peak_mib"])
    wall_times.add("q8", time.perf_counter() - started)


HELDOUT_DIR = "heldout_check"  # in the results directory: the held-out check's sweep, table and report
HELDOUT_TABLE = "heldout_check"  # its table next to the report (study_data/heldout_check.csv)
# Some of Q6's runs rerun with its calibrated settings (study_data/<name>.csv.gz, kept as its sweep
# wrote them): the Calibration paragraph checks them against Q6's committed runs.
CALIBRATED_SAMPLE = "q6_calibrated_sample"


def heldout_datasets(uci_root: str | None) -> list[str]:
    """The datasets of `uci_root` the study did not use (by name or by content): the held-out check
    runs on them. [] when there are none; a folder the check refuses is logged, not raised, so that
    it cannot stop the study's own questions."""
    if not uci_root or not Path(uci_root).is_dir():
        return []
    root = Path(uci_root).resolve()
    study = heldout_check.study_datasets()
    if all(name in study for name in uci_dataset_names(root)):
        return []
    try:
        return heldout_check.choose_datasets_with_digests(root, None, study)[0]
    except DataFileError as error:
        logger.warning("held-out check: not run: %s", error)
        return []


def run_heldout_check(uci_root: str, results_dir: Path, workers: int, quick: bool) -> None:
    """The check the report states in advance, on the datasets of `uci_root` the study did not use:
    the recommended default (the package's, al_bnn.recipe.DEFAULT_SAMPLER) against random, paired
    seeds, into `results_dir`/HELDOUT_DIR (a rerun continues it there)."""
    from al_bnn.recipe import DEFAULT_SAMPLER

    out = results_dir / HELDOUT_DIR
    seeds = list(range(heldout_check.STUDY_SEEDS))
    args = argparse.Namespace(uci_root=uci_root, datasets=None, seeds=seeds, sampler=DEFAULT_SAMPLER, out=str(out),
                              quick=quick, workers=workers, overwrite=False)
    command = (f"python source/heldout_check.py --uci-root {uci_root} --out {out}" + (" --quick" if quick else "")
               + " (run by source/run_study.py)")
    try:
        heldout_check.run_check(args, command)
    except AlBnnError as error:  # the questions' runs are done: the report is still written, without the check
        logger.warning("held-out check: not finished, so the report leaves it out: %s. To run it alone: %s "
                       "(with --overwrite to start it over in that folder)", error, command.split(" (run by")[0])


def ordered(questions) -> list[str]:
    return [q for q in QUESTIONS if q in set(questions)]


def _run(args: argparse.Namespace) -> int:
    committed_report = not args.quick and args.results_dir is None
    results_dir = Path(args.results_dir or ("results_study_quick" if args.quick else "results_study"))
    report_dir = REPO_ROOT / "docs" if committed_report else results_dir
    image_dir = REPO_ROOT / "images" / "study" if committed_report else results_dir / "images"
    with ResultsWriter(results_dir, overwrite=True, lock=True):  # one study at a time in a results directory
        return _run_locked(args, committed_report, results_dir, report_dir, image_dir)


def _run_locked(args: argparse.Namespace, committed_report: bool, results_dir: Path, report_dir: Path,
                image_dir: Path) -> int:
    committed_times = report_dir / "study_data" / "wall_times.json"
    if not (results_dir / "wall_times.json").exists() and committed_times.exists():
        # a fresh checkout: start from the committed record of the runs behind the committed CSVs
        ResultsWriter(results_dir, overwrite=True).write_text("wall_times.json", committed_times.read_text())
    wall_times = WallTimes(results_dir / "wall_times.json")
    sweeps = {q: question_sweep(q, args.quick, args.uci_root) for q in SWEEP_QUESTIONS if q not in DERIVED_QUESTIONS}
    if not args.report_only:
        held_out = heldout_datasets(args.uci_root)
        if held_out:
            logger.info("held-out check: after the questions, the recommended default against random on %s (in %s, "
                        "not used by the study)", ", ".join(held_out), args.uci_root)
        for question in ordered(args.questions):
            if question in DERIVED_QUESTIONS:
                derived = DerivedSweep(question, args.quick, args.uci_root, sweeps,
                                       read_tables(results_dir, report_dir / "study_data"))
                if derived.problem is not None:
                    raise ConfigError(derived.problem)
                logger.info("%s: %s", question, derived.describe())
                run_sweep(question, derived.sweep, results_dir, args.workers, wall_times, args.reuse)
            elif question in sweeps:
                run_sweep(question, sweeps[question], results_dir, args.workers, wall_times, args.reuse)
            elif question == "q5":
                measure_pool_scaling(cost_settings(args.quick), results_dir, wall_times)
            else:
                measure_selection_benchmark(cost_settings(args.quick, METHOD_COST_CONFIG), results_dir, wall_times)
        if held_out:
            run_heldout_check(args.uci_root, results_dir, args.workers, args.quick)
    command = "python source/run_study.py" + (" --quick" if args.quick else "") + \
        (f" --results-dir {args.results_dir}" if args.results_dir else "")
    report = write_report(results_dir, report_dir, image_dir, sweeps, wall_times, command, args.quick,
                          args.uci_root)
    if committed_report:
        update_headline(HEADLINE_PAGE, report.headline_block)
    logger.info("report: %s", report_dir / "study.md")
    return 0


class Report:
    def __init__(self, text: str, headline_block: str):
        self.text, self.headline_block = text, headline_block


def machine_description() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model})"


def network_text(raw: dict) -> str:
    """The network and its training as a question's merged config sets them."""
    experiment = raw.get("experiment", {})
    net = experiment.get("net_config", {})
    train = experiment.get("train_schedule", {})
    extras = [f"{net['activation']} activations" if net.get("activation") else "",
              f"{net['parametrization']} parametrisation" if net.get("parametrization") else "",
              "inputs through 5 tanh(x / 5)" if net.get("input_transform") == "tanh" else "",
              f"beta-NLL with beta {net['nll_beta']}" if net.get("nll_beta") else "",
              f"output-weight prior std {net['weight_std']}" if "weight_std" in net else "",
              f"KL weight {net['divergence_scale']}" if "divergence_scale" in net else "",
              f"at least {train['min_steps']} optimiser steps per phase" if train.get("min_steps") else "",
              "the learning rate decaying linearly to zero" if train.get("learning_rate_schedule") == "linear_decay"
              else "",
              "every phase retrained from the initial weights" if train.get("retrain_from") == "initial" else ""]
    extra = "".join(f", {text}" for text in extras if text)
    return (f"hidden layers {net.get('layer_sizes')}, learning rate {net.get('learning_rate')}, "
            f"{train.get('num_epochs')} epochs per phase at batch size {train.get('batch_size')}{extra}")


def settings_paragraph(raw: dict, first_edition: dict | None = None) -> str:
    """The shared settings of the study (raw: the second edition's Q6 sweep); when the first
    edition's questions trained another network, both are named."""
    experiment = raw.get("experiment", {})
    parms = experiment.get("parms", {})
    schedule = ", ".join(f"{name}: {entry['num_train_init']} initial + {entry['al_iter']} x {entry['num_al_incr']}"
                         for name, entry in (raw.get("schedule") or {}).items())
    network = f"Network: {network_text(raw)}"
    if first_edition is not None and network_text(first_edition) != network_text(raw):
        network = (f"Network of Q6-Q9 (the default model recipe): {network_text(raw)}. Network of Q1-Q5 (the first "
                   f"edition, as run): {network_text(first_edition)}")
    return ("Datasets, seeds, models and samplers differ by question (table below); the same seed gives every "
            f"sampler of a question the same split and initial set, so seeds are paired. {network}; "
            f"T = {parms.get('n_mc_samples')} function samples and "
            f"rounds of {parms.get('sampling_batch_size')} picks unless a question varies them. Schedule (points, or "
            f"fractions of the pool): {schedule}. Runs of one dataset, model and question are trained as one stacked "
            "model.")


def _seeds_text(seeds) -> str:
    seeds = sorted(int(s) for s in seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{len(seeds)} ({seeds[0]}-{seeds[-1]})"
    return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def question_scope_table(sweeps: dict[str, dict | None], tables: dict[str, pd.DataFrame],
                         derived: dict[str, DerivedSweep], ran: dict[str, bool]) -> str:
    """Which datasets, seeds, models and samplers each question used (its data where it has run,
    else its config)."""
    rows = []
    for question in QUESTIONS:
        if question in ("q5", "q8"):
            sources = "Q1 and Q4" if question == "q5" else "Q6"
            rows.append([f"Q{question[1]}", f"those of {sources}", "", "",
                         f"timings of the {sources} runs; synthetic " + ("pools" if question == "q5" else "features"),
                         "yes" if ran[question] else "not yet"])
            continue
        table, raw = tables.get(question), sweeps.get(question)
        if table is not None:
            datasets, seeds = list(dict.fromkeys(table["dataset"])), set(table["seed"])
            models, samplers = list(dict.fromkeys(table["model"])), list(dict.fromkeys(table["sampler"]))
            ran_text = "yes"
        else:
            pending = derived[question] if raw is None and question in derived else None
            raw = raw if pending is None else pending.raw
            datasets = [d if isinstance(d, str) else d["name"] for d in raw["datasets"]]
            seeds, models = raw["seeds"], raw.get("models", ["bnn"])
            samplers = raw["samplers"] if pending is None else [
                f"the best {pending.count} of {pending.source.upper()}, then {', '.join(pending.always)}"]
            ran_text = "not yet"
        rows.append([f"Q{question[1]}", f"{len(datasets)}: {', '.join(datasets)}", _seeds_text(seeds),
                     ", ".join(models), ", ".join(samplers), ran_text])
    return study_report.markdown_table(["question", "datasets", "seeds", "models", "samplers", "run"], rows)


def sampler_parms(raw: dict) -> dict[str, dict]:
    """label -> the sampling settings each sampler of a sweep config runs with: the experiment's
    parms, then its sampler_settings', sample_policy defaulting to the label (as the sweep reads them)."""
    parms = {}
    for label in raw["samplers"]:
        merged = merge_sections((raw.get("experiment") or {}).get("parms") or {},
                                ((raw.get("sampler_settings") or {}).get(label) or {}).get("parms") or {})
        parms[label] = {"sample_policy": label, **merged}
    return parms


def sampler_kinds(raw: dict) -> dict[str, tuple[str, str]]:
    """label -> (rule, kernel) of each sampler of a sweep config: its sample_policy and the kernel
    its settings give it (gpa_kernel for GPA, family_kernel for the selection family)."""
    from al_bnn.config import SamplingParameters
    from al_bnn.selection.family import METHODS

    defaults = SamplingParameters()
    kinds = {}
    for label, parms in sampler_parms(raw).items():
        rule = parms["sample_policy"]
        if rule in ("gpa", "bgpa", "lrgpa"):
            kernel = parms.get("gpa_kernel", defaults.gpa_kernel)
        elif rule in METHODS:
            kernel = parms.get("family_kernel", defaults.family_kernel)
        else:
            kernel = "none" if rule == "random" else "mc"
        kinds[label] = (rule, kernel)
    return kinds


def same_samplers(raw: dict, other: dict) -> dict[str, str]:
    """label in `raw` -> the label in `other` that samples with exactly the same settings (run on the
    same model and schedule, they would make the same run), for the samplers that have one."""
    theirs = sampler_parms(other)
    return {label: next(o for o, p in theirs.items() if p == parms)
            for label, parms in sampler_parms(raw).items() if parms in theirs.values()}


def run_table_name(question: str) -> str:
    """The file name of a question's per-run tidy table in the copy next to the report (gzip CSV:
    pandas.read_csv reads it as it is)."""
    return f"{question}.csv.gz"


def read_tables(results_dir: Path, data_dir: Path) -> dict[str, pd.DataFrame]:
    """Each sweep question's tidy table: the runs' own, else the copy next to the report (a fresh
    checkout has only that)."""
    tables = {}
    for question in SWEEP_QUESTIONS:
        for path in (results_dir / question / "benchmark.csv", data_dir / run_table_name(question),
                     data_dir / f"{question}.csv"):  # the last: a copy written before they were compressed
            if path.exists():
                try:
                    table = pd.read_csv(path)
                except UNREADABLE_TABLE_ERRORS as error:
                    raise ConfigError(f"{path}: not a readable CSV table ({type(error).__name__}: {error}); restore "
                                      "it (git checkout) or rerun its question") from error
                if len(table):
                    tables[question] = table
                break
    return tables


RUN_ORDER = ("dataset", "model", "seed", "sampler")  # the order of a sweep's runs (al_bnn_lab.sweep.sweep_runs)


def _positions(values: pd.Series, listed: Sequence) -> np.ndarray:
    """Each value's place in `listed` (a config's list); values it does not list come after, sorted."""
    place = {value: index for index, value in enumerate(dict.fromkeys(listed))}
    unlisted = sorted({value for value in values.unique() if value not in place}, key=lambda v: (str(type(v)), v))
    place.update({value: len(place) + index for index, value in enumerate(unlisted)})
    return values.map(place).to_numpy(dtype=np.int64)


def canonical_rows(table: pd.DataFrame, raw: dict | None) -> pd.DataFrame:
    """A question's runs in its sweep's own order (the config's datasets, models, seeds, samplers;
    values the config does not list after those, sorted), each run's steps by al_iter; a stable
    sort, so a table already in that order (as a sweep writes it) comes back unchanged. The numbers
    are sums over runs in table order and the rows come out in it: with this, the tables the report
    writes do not depend on the order in which a sweep, --reuse or a copy listed the runs."""
    raw = raw or {}
    listed = {"dataset": [d if isinstance(d, str) else d.get("name") for d in raw.get("datasets") or []],
              "model": list(raw.get("models") or []), "sampler": list(raw.get("samplers") or []),
              "seed": list(raw.get("seeds") or [])}
    keys = [_positions(table[column], listed[column]) for column in RUN_ORDER if column in table]
    if "al_iter" in table:
        keys.append(table["al_iter"].to_numpy())
    order = np.lexsort(keys[::-1]) if keys else np.arange(len(table))  # lexsort: the last key first; stable
    return table.iloc[order].reset_index(drop=True)


def canonical_tables(tables: dict[str, pd.DataFrame], sweeps: dict[str, dict | None]) -> dict[str, pd.DataFrame]:
    """Every question's table in canonical_rows order, each by its own sweep's config."""
    return {question: canonical_rows(table, sweeps.get(question)) for question, table in tables.items()}


def copy_run_data(results_dir: Path, data_dir: Path, tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame,
                                                                                                pd.DataFrame]:
    """Write the per-run tables (and Q5's scaling timings) next to the report; return (Q5 scaling,
    Q8 selection benchmark), each empty where it has not run."""
    data_writer = ResultsWriter(data_dir, overwrite=True)
    for question, table in tables.items():
        # compressed: the per-run tables reach megabytes; mtime 0 keeps the bytes a function of the table
        data_writer.write_bytes(run_table_name(question),
                                gzip.compress(table.to_csv(index=False).encode(), mtime=0))
        remove_file(data_dir, f"{question}.csv")
    scaling = _first_table(results_dir / "q5" / "pool_scaling.csv", data_dir / "q5_pool_scaling.csv")
    if len(scaling):
        data_writer.write_text("q5_pool_scaling.csv", scaling.to_csv(index=False))
    bench = _first_table(results_dir / "q8" / "selection_benchmark.csv", data_dir / "q8_selection_benchmark.csv")
    return scaling, bench


def _first_table(*paths: Path) -> pd.DataFrame:
    """The first of `paths` that exists, read as a table (empty where none does)."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return pd.DataFrame()
    try:
        return pd.read_csv(existing[0])
    except (OSError, ValueError) as error:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise DataFileError(f"{existing[0]}: not readable as a table ({type(error).__name__}: {error}); delete it "
                            "or rerun what wrote it") from None


@dataclass
class StudyNumbers:
    """Everything the report states, computed from the tidy tables (rendered by render_report)."""

    tables: dict[str, pd.DataFrame]
    sweeps: dict[str, dict | None]
    derived: dict[str, DerivedSweep]
    sections: dict[str, study_report.Section | None]
    recommendation: study_methods.Recommendation | None
    scrutiny: study_report.MethodStatistics | None
    bench: pd.DataFrame
    heldout: pd.DataFrame = field(default_factory=pd.DataFrame)  # the held-out check's rows, where it ran
    calibrated_sample: pd.DataFrame = field(default_factory=pd.DataFrame)  # CALIBRATED_SAMPLE's rows, if any


def _cost_section(tables: dict[str, pd.DataFrame], scaling: pd.DataFrame, quick: bool) -> study_report.Section | None:
    cost = cost_settings(quick)
    parts = [tables[q][tables[q]["sampler"].isin(samplers)] for q, samplers in cost["timing_from"].items()
             if q in tables]
    if not parts:
        return None
    labels = {"random": "random", "mcdue": "mcdue", "lrgpa": "low-rank GPA", "gpa_float64": "fast GPA",
              "bgpa_float64": "batch GPA"}
    for samplers in cost["timing_from"].values():
        for sampler in samplers:
            labels.setdefault(sampler, sampler)
    return study_report.question_cost(pd.concat(parts, ignore_index=True), scaling, labels)


def _models_section(tables: dict[str, pd.DataFrame], derived: DerivedSweep,
                    recommendation: study_methods.Recommendation | None) -> study_report.Section:
    note = " ".join(filter(None, [derived.datasets_note, derived.describe()]))
    ran = list(dict.fromkeys(tables["q7"]["sampler"]))
    if derived.sweep is not None and ran != derived.sweep["samplers"]:
        note += (f" The Q7 runs used {', '.join(ran)}, which is not what Q6's results give now: rerun Q7.")
    return study_methods.question_models(tables["q7"], tables.get("q6"), note, BASELINE,
                                         pick=recommendation.method if recommendation is not None else None)


def uncalibrated_run_keys(raw: dict) -> dict[tuple[str, str, int], str]:
    """(dataset, sampler, seed) -> the run key of a sweep's run with calibration off: what the
    uncalibrated run paired with it must have been made with to differ in calibration alone."""
    experiment = dict(raw.get("experiment") or {})
    experiment["train_schedule"] = dict(experiment.get("train_schedule") or {}, calibration="none")
    config = benchmark_config_from_dict(dict(raw, experiment=experiment), "the uncalibrated variant of a sweep")
    return {(entry.name, sampler, int(seed)): run_key(config, entry, model, sampler, seed)
            for entry in config.datasets for model in config.models for sampler in config.samplers
            for seed in config.seeds}


def _calibration_section(tables: dict[str, pd.DataFrame], raw: dict | None, quick: bool,
                         scrutiny: study_report.MethodStatistics | None = None,
                         every_model: Callable[[str], bool] | None = None,
                         machines: dict[str, list[str]] | None = None) -> study_report.Section:
    """Q9: its calibrated runs paired with the uncalibrated runs of the question it names, and the
    recommendation set rechecked on them against Q6's (`scrutiny`; `every_model` as for Q6's set)."""
    source = str(question_settings("q9", quick)[1].get("paired_with", PAIRED_QUESTIONS["q9"]))
    if source not in tables:
        text = (f"Q9 pairs its runs with {source.upper()}'s runs, which are not here yet: run "
                f"`python source/run_study.py --questions {source}` (or take them with --reuse).")
        return study_report.Section("q9", "Does calibration change which method wins?", text, "", markdown=[text])
    keys = uncalibrated_run_keys(raw) if raw is not None else None
    reference = scrutiny.sets[scrutiny.primary] if scrutiny is not None else None
    sides = (machines or {}).get(source, []), (machines or {}).get("q9", [])
    return study_report.question_calibration(tables[source], tables["q9"], BASELINE, keys, source.upper(),
                                             reference, every_model, sides if all(sides) else None)


def runs_on_every_model(q6_sweep: dict) -> Callable[[str], bool]:
    """The set's secondary criterion: whether a sampler runs on every model (not on the bnn's exact kernel)."""
    kinds = sampler_kinds(q6_sweep)
    return lambda method: kinds.get(method, ("", ""))[1] != "exact"


def scrutinise(q6_table: pd.DataFrame, q6_sweep: dict, q8: study_report.Section | None
               ) -> study_report.MethodStatistics:
    """Q6 under scrutiny: the recommendation set (default: runs on every model, then Q8's selection
    cost), corrected verdicts, three statistics (study_report.method_statistics)."""
    cost = (q8.facts.get("selection") or {}) if q8 is not None else {}
    source = f"Q8 on {q8.facts['dataset']}" if cost else ""
    return study_report.method_statistics(q6_table, BASELINE, every_model=runs_on_every_model(q6_sweep), cost=cost,
                                          cost_source=source)


def with_recipe_refresh(q1: study_report.Section, q6_table: pd.DataFrame, q1_sweep: dict, q6_sweep: dict
                        ) -> study_report.Section:
    """Q1's question asked again of Q6's runs, which ran Q1's three samplers with the recipe on
    Q6's datasets and seeds (no training): the first edition's section with the refreshed tables,
    figures and answer added after it. Q1 unchanged where Q6 lacks one of its samplers' kinds."""
    labels = same_samplers(q1_sweep, q6_sweep)  # Q1's label -> Q6's label with the same sampling settings
    if len(labels) < len(q1_sweep["samplers"]) or BASELINE not in labels or "mcdue" not in labels:
        return q1
    q1_gpa = next(label for label in labels if label not in (BASELINE, "mcdue"))
    gpa = labels[q1_gpa]
    runs = q6_table[q6_table["sampler"].isin(labels.values())]
    refreshed = study_report.question_samplers(runs, BASELINE, challengers=(gpa, labels["mcdue"]), gpa=gpa)
    datasets, seeds = refreshed.facts["datasets"], refreshed.facts["seeds"]
    scope = (f"the default recipe, {datasets} datasets, {seeds} paired seeds; no training: Q6 ran Q1's samplers, GPA "
             f"as {gpa} (Q1's {q1_gpa}: the same sampling settings), uncalibrated, so the log-likelihoods are the raw "
             "model's; per-dataset verdicts as in the first edition, 95% intervals not corrected for the number of "
             f"datasets (Q6's Holm-corrected verdicts for {gpa} and {labels['mcdue']} are with the recommendation)")
    refreshed_headline = refreshed.headline[0].lower() + refreshed.headline[1:]
    return replace(
        q1, headline=f"{q1.headline} With the recipe on Q6's runs ({datasets} datasets): {refreshed_headline}",
        tables={**q1.tables, **{name.replace("q1_", "q1_recipe_", 1): t for name, t in refreshed.tables.items()}},
        facts={**q1.facts, "recipe": refreshed.facts},
        appendix=[f"**Q1 refreshed on Q6's runs** ({scope}):", *refreshed.markdown,
                  f"**Answer on the recipe.** {refreshed.answer}"],
        appendix_figures={name.replace("q1_", "q1_recipe_", 1): figure for name, figure in refreshed.figures.items()},
        appendix_caption=f"{q1.title}, on the recipe (Q6's runs)")


def compute_numbers(tables: dict[str, pd.DataFrame], sweeps: dict[str, dict | None],
                    derived: dict[str, DerivedSweep], scaling: pd.DataFrame, bench: pd.DataFrame,
                    quick: bool, machines: dict[str, list[str]] | None = None) -> StudyNumbers:
    """Every question's section, the recommendation and the scrutiny of Q6, from the tables."""
    sections: dict[str, study_report.Section | None] = dict.fromkeys(QUESTIONS)
    first_edition = {"q1": study_report.question_samplers, "q2": study_report.question_joint_marginal,
                     "q3": study_report.question_sample_count, "q4": study_report.question_precision}
    for question, build in first_edition.items():
        if question in tables:
            sections[question] = build(tables[question])
    sections["q5"] = _cost_section(tables, scaling, quick)
    recommendation = scrutiny = None
    if "q6" in tables:
        sections["q6"] = study_methods.question_methods(tables["q6"], BASELINE, kinds=sampler_kinds(sweeps["q6"]))
        recommendation = study_methods.recommend(sections["q6"])
    if "q7" in tables:
        sections["q7"] = _models_section(tables, derived["q7"], recommendation)
    method_cost = cost_settings(quick, METHOD_COST_CONFIG)
    if method_cost["timing_from"] in tables or len(bench):
        sections["q8"] = study_methods.question_method_cost(tables.get(method_cost["timing_from"]), bench)
    if "q6" in tables:
        if sections["q1"] is not None and sweeps.get("q1") and sweeps.get("q6"):
            sections["q1"] = with_recipe_refresh(sections["q1"], tables["q6"], sweeps["q1"], sweeps["q6"])
        recommendation = study_methods.recommend(sections["q6"], sections["q7"], sections["q8"])
        scrutiny = scrutinise(tables["q6"], sweeps["q6"], sections["q8"])
    if "q9" in tables:
        every_model = runs_on_every_model(sweeps["q6"]) if sweeps.get("q6") else None
        sections["q9"] = _calibration_section(tables, sweeps.get("q9"), quick, scrutiny, every_model, machines)
    return StudyNumbers(tables, sweeps, derived, sections, recommendation, scrutiny, bench)


DATA_FLOAT_FORMAT = "%.10g"  # derived tables' digits: e.g. numpy's log has an AVX-512 variant, last bits may differ
MEASURED_TABLES = {"q5_pool_scaling", "q8_selection_benchmark"}  # timings passed through: inputs, every digit kept


def data_tables(numbers: StudyNumbers) -> dict[str, pd.DataFrame]:
    """The tables computed from the runs that the report writes next to it (study_data/<name>.csv):
    each section's, and the numbers behind the recommendation paragraphs."""
    tables = {name: table for section in numbers.sections.values() if section is not None
              for name, table in section.tables.items()}
    if len(numbers.heldout):
        tables[HELDOUT_TABLE] = numbers.heldout
    if numbers.scrutiny is not None:
        scrutiny = numbers.scrutiny
        tables["q6_corrected_verdicts"] = scrutiny.tests[scrutiny.primary]
        tables["q6_recommendation_set"] = scrutiny.sets[scrutiny.primary].comparisons
    return tables


def write_study_data(results_dir: Path, data_dir: Path, sweeps: dict[str, dict], quick: bool,
                     uci_root: str | None = None, machines: dict[str, list[str]] | None = None) -> StudyNumbers:
    """Compute the study's numbers from the tidy tables (the runs', else the copies in `data_dir`)
    and write the data next to the report: the per-run tables, put in each sweep's order first, and
    the derived tables (DATA_FLOAT_FORMAT), so the same runs give the same bytes whatever order they
    were read in."""
    tables = canonical_tables(read_tables(results_dir, data_dir), sweeps)
    derived = {q: DerivedSweep(q, quick, uci_root, sweeps, tables) for q in DERIVED_QUESTIONS}
    sweeps = {**sweeps, **{q: d.sweep for q, d in derived.items()}}
    # a derived question's sweep (Q7's samplers) comes from the ordered runs of another: order its table again
    tables.update(canonical_tables({q: tables[q] for q in DERIVED_QUESTIONS if q in tables}, sweeps))
    data_dir.mkdir(parents=True, exist_ok=True)
    scaling, bench = copy_run_data(results_dir, data_dir, tables)
    numbers = compute_numbers(tables, sweeps, derived, scaling, bench, quick, machines)
    numbers.heldout = _first_table(results_dir / HELDOUT_DIR / heldout_check.TABLE_FILE,
                                   data_dir / f"{HELDOUT_TABLE}.csv")
    numbers.calibrated_sample = _first_table(data_dir / f"{CALIBRATED_SAMPLE}.csv.gz")
    data_writer = ResultsWriter(data_dir, overwrite=True)
    for name, table in data_tables(numbers).items():
        float_format = None if name in MEASURED_TABLES else DATA_FLOAT_FORMAT
        data_writer.write_text(f"{name}.csv", table.to_csv(index=False, float_format=float_format))
    return numbers


def write_report(results_dir: Path, report_dir: Path, image_dir: Path, sweeps: dict[str, dict],
                 wall_times: WallTimes, command: str, quick: bool, uci_root: str | None = None) -> Report:
    """Compute the study's numbers from the tidy tables, then render and write docs/study.md (or
    DIR/study.md), its figures and the data copies next to it."""
    data_dir = report_dir / "study_data"
    numbers = write_study_data(results_dir, data_dir, sweeps, quick, uci_root, wall_times.machines())
    sweeps = numbers.sweeps
    image_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_text(numbers)
    lines = header_lines(numbers, report_dir, data_dir, wall_times, command, quick, uci_root, summary)
    lines += recommendation_lines(numbers)
    image_writer = ResultsWriter(image_dir, overwrite=True)
    image_link = os.path.relpath(image_dir, report_dir)
    for question, section in numbers.sections.items():
        lines += question_lines(question, section, sweeps.get(question), command, wall_times, image_writer,
                                image_link)
    text = "\n".join(lines).rstrip() + "\n"
    ResultsWriter(report_dir, overwrite=True).write_text("study.md", text)
    ResultsWriter(data_dir, overwrite=True).write_text("wall_times.json", json.dumps(wall_times.entries, indent=1))
    return Report(text, summary)


def summary_text(numbers: StudyNumbers) -> str:
    """The report's few sentences (the results page and the README quote them): the scrutiny of the
    recommendation first, then the rule's pick, then the first edition's answers."""
    first = ""
    if numbers.scrutiny is not None:
        first = " ".join([study_report.scrutiny_sentence(numbers.scrutiny),
                          study_report.corrected_verdicts_sentence(numbers.scrutiny,
                                                                   numbers.scrutiny.sets[numbers.scrutiny.primary].best)])
    if numbers.recommendation is not None:
        first = " ".join(filter(None, [first, numbers.recommendation.sentence]))
    return study_report.summary_sentences(numbers.sections, first=first)


def header_lines(numbers: StudyNumbers, report_dir: Path, data_dir: Path, wall_times: WallTimes, command: str,
                 quick: bool, uci_root: str | None, summary: str) -> list[str]:
    """The title, provenance, settings, scope table and headline answers."""
    sections, sweeps = numbers.sections, numbers.sweeps
    data_link = os.path.relpath(data_dir, report_dir)
    total_wall_time = wall_times.total()
    headlines = [f"- **Q{q[1]}.** {s.headline}" for q, s in sections.items() if s is not None and s.headline]
    return [
        "# What actually matters: joint vs marginal samples, MC vs exact kernel, sample count, precision, "
        "and which method when",
        "",
        f"Generated by `{command}` on {datetime.date.today().isoformat()}, on {machine_description()}. Every "
        "number, table, plot and answer below is computed by the script from the tidy CSVs of the runs (copied to "
        f"[{data_link}/]({data_link}/), one row per run and AL step, the per-run tables gzip-compressed as "
        "`<question>.csv.gz`: `pandas.read_csv` reads them as they are); do not edit by hand, rerun the script "
        "(`--report-only` rebuilds this file from the runs without training).",
        "",
        "**Settings.** " + settings_paragraph(sweeps["q6"], sweeps.get("q1")),
        "",
        "**Datasets, seeds, models and samplers of each question** (Q1-Q5 are the study's first edition, Q6-Q8 "
        "its second, Q9 its third; as run where a question has runs, else as configured):",
        "",
        question_scope_table(sweeps, numbers.tables, numbers.derived,
                             {"q5": sections["q5"] is not None, "q8": len(numbers.bench) > 0}),
        "",
        *first_edition_note(sweeps, quick, uci_root),
        *calibration_lines(numbers, wall_times, quick, uci_root),
        *([total_wall_time, ""] if total_wall_time else []),
        *(["**This is the --quick variant: tiny sizes for tests; its numbers mean nothing.**", ""] if quick else []),
        "## Headline answers",
        "",
        *([f"**In short.** {summary}", ""] if summary else []),
        *(headlines or ["No question has run yet."]),
        "",
    ]


def recommendation_lines(numbers: StudyNumbers) -> list[str]:
    """The recommendation: the set and its stability, the corrected verdicts, the three statistics,
    then the second edition's rule and what follows from it."""
    lines = ["## Which method when: the recommendation", ""]
    if numbers.recommendation is None:
        return lines + ["Not run yet: the recommendation is computed from Q6 (and Q7, Q8 where they have run).", ""]
    blocks = []
    scrutiny = numbers.scrutiny
    if scrutiny is not None:
        best = scrutiny.sets[scrutiny.primary].best
        blocks += [*study_report.recommendation_set_markdown(scrutiny),
                   *heldout_markdown(numbers),
                   study_report.corrected_verdicts_markdown(scrutiny),
                   study_report.corrected_verdicts_sentence(scrutiny, best),
                   study_report.statistics_markdown(scrutiny),
                   study_report.statistics_sentence(scrutiny),
                   "**The second edition's rule**, kept for comparison:"]
    blocks += numbers.recommendation.markdown
    return lines + [block + "\n" for block in blocks]


def heldout_markdown(numbers: StudyNumbers) -> list[str]:
    """How a reader checks the set's default on a new dataset, stated before any check ran, with
    what Q6 predicts; then the check's results where this report's run made them (--uci-root with
    datasets the study did not use)."""
    scrutiny = numbers.scrutiny
    if scrutiny is None or "q6" not in numbers.tables:
        return []
    default, baseline = scrutiny.sets[scrutiny.primary].default, heldout_check.BASELINE
    if default == baseline:  # nothing beat random: there is no recommendation to check
        return []
    scalars = study_report.run_scalars(numbers.tables["q6"])
    own = heldout_check.paired_differences(scalars[scalars["dataset"].isin(scrutiny.datasets)], default)
    interval = heldout_check.interval_of(own)
    if interval is None:
        return []
    means = np.array(heldout_check.dataset_means(own))
    text = (f"**Checking the default on a new dataset** (the rule, fixed before any check ran). Run {default} and "
            f"{baseline} "
            "on the same schedule with paired seeds (at least five, the same seed giving both the same split and "
            "initial set); the recommendation fails on that dataset if the 95% interval of the paired difference in "
            "mean log test RMSE over the AL steps after the initial one lies above zero. On that statistic "
            f"{default} - {baseline} ranged from {means.min():+.3f} to {means.max():+.3f} over Q6's {len(own)} "
            f"datasets (median {np.median(means):+.3f}); for a new dataset drawn like these, its 95% prediction "
            f"interval is {interval.low:+.3f} to {interval.high:+.3f} (mean ± t × sd × sqrt(1 + 1/{interval.datasets}) "
            f"over datasets). `python source/run_study.py --uci-root DIR` runs this check after its questions on "
            "every dataset of DIR the study did not use (left out by name and by content) and reports it here; "
            "`python source/heldout_check.py --uci-root DIR` runs it alone.")
    rows = numbers.heldout
    if not len(rows):
        return [text + " The check has not run with this report."]
    checked = rows[rows["sampler"] == default]
    if not len(checked):
        other = study_report.listing(sorted(set(rows["sampler"])))
        return [text + f" The check's table next to this report is of {other}, not of the set's default {default}, "
                       "so it is not shown."]
    failed = checked.loc[checked["verdict"] == heldout_check.VERDICTS["higher"], "dataset"].tolist()
    table = study_report.markdown_table(
        ["dataset", "pool", "paired seeds", f"{default} - {baseline} [95% interval over seeds]", "verdict",
         "against the prediction interval"],
        # against this report's interval (the check's own column used the Q6 runs of its day)
        [[r.dataset, f"{r.pool_size:,}", str(r.paired_seeds), f"{r.difference:+.3f} ± {r.half_width:.3f}", r.verdict,
          heldout_check.against_prediction(r.difference, interval.low, interval.high)] for r in checked.itertuples()])
    result = (f"**The check on {study_report.plural_count(len(checked), 'dataset')} the study never used** "
              f"({study_report.listing(checked['dataset'].tolist())}): {len(failed)} fail"
              + (f" ({study_report.listing(failed)})" if failed else "") + ".")
    return [text, result, table]


def _config_files(question: str) -> str:
    if question in SWEEP_QUESTIONS:
        files = f"`configs/study/common.yaml` + `configs/study/{SWEEP_QUESTIONS[question]}`"
        return files + (" (samplers from Q6's results)" if question in DERIVED_QUESTIONS else "")
    if question == "q5":
        return "`configs/study/q5_cost.yaml` (timings from the q1 and q4 runs)"
    return f"`configs/study/{METHOD_COST_CONFIG}` (timings from the q6 runs)"


def _size_text(question: str, raw: dict | None) -> str:
    if question not in SWEEP_QUESTIONS:
        return ""
    if raw is None:
        return "*runs:* samplers chosen from Q6's results once it has finished; "
    models = raw.get("models", ["bnn"])
    return (f"*runs:* {len(raw['datasets'])} datasets x " + (f"{len(models)} models x " if models != ["bnn"] else "")
            + f"{len(raw['samplers'])} samplers x {len(raw['seeds'])} paired seeds; ")


def question_lines(question: str, section: study_report.Section | None, raw: dict | None, command: str,
                   wall_times: WallTimes, image_writer: ResultsWriter, image_link: str) -> list[str]:
    """One question's part of the report; writes its figures through `image_writer` (its tables are
    written by write_study_data)."""
    from al_bnn_lab.plotting import plt

    title = section.title if section is not None else QUESTION_TEXT[question].split("?")[0].split(":")[0]
    lines = [f"## Q{question[1]}. {title}", "", f"*Question.* {QUESTION_TEXT[question]}", "",
             f"*Command:* `{command} --questions {question}`; *config:* {_config_files(question)}; "
             f"{_size_text(question, raw)}*wall time:* {wall_times.describe(question)}.", ""]
    if section is None:
        return lines + ["Not run yet.", ""]
    def blocks_then_figures(blocks: list[str], figures: dict, caption: str) -> list[str]:
        rendered = [line for block in blocks for line in (block, "")]
        for name, figure in figures.items():
            image_writer.save_figure(name, figure)
            plt.close(figure)
            rendered += [f"![{caption}]({image_link}/{name})", ""]
        return rendered

    return (lines + blocks_then_figures(section.markdown, section.figures, section.title)
            + [f"**Answer.** {section.answer}", ""]
            + blocks_then_figures(section.appendix, section.appendix_figures,
                                  section.appendix_caption or section.title))


def first_edition_note(sweeps: dict[str, dict], quick: bool, uci_root: str | None = None) -> list[str]:
    """Q6's `study: first_edition_note` (why Q1-Q5 were not refreshed), while Q1 still runs on
    other datasets than Q6: report lines, or none."""
    def names(raw: dict | None) -> list[str]:
        return [d if isinstance(d, str) else d["name"] for d in (raw or {}).get("datasets", [])]

    note = str(question_settings("q6", quick, uci_root)[1].get("first_edition_note", "")).strip()
    if not note or "q1" not in sweeps or names(sweeps["q1"]) == names(sweeps["q6"]):
        return []
    return [f"**The first edition on the recipe.** {note}", ""]


def _where(entry: dict) -> str:
    """Where a question's recorded parts ran: its machines where the record has them, else "here"."""
    return f"on {' and '.join(entry['machines'])}" if entry.get("machines") else "here"


def measured_rate(table: pd.DataFrame, wall_times: WallTimes, question: str) -> tuple[int, dict, float | None]:
    """(runs, wall-time record, seconds per trained run) of a question that ran."""
    runs = table.groupby(["dataset", "model", "sampler", "seed"]).ngroups
    entry = wall_times.entries.get(question) or {}
    return runs, entry, study_cost.seconds_per_trained_run(entry, runs)


def what_a_rerun_adds(tables: dict[str, pd.DataFrame], question: str, partner: str,
                      sample: pd.DataFrame | None = None) -> str:
    """Why an uncalibrated question's RMSE verdicts are the calibrated recipe's, and what its
    calibrated rerun would add that its calibrated partner (Q9 for Q6) measures on fewer seeds;
    for Q6, what its committed calibrated sample shows (calibrated_sample_text)."""
    seeds = tables[question]["seed"].nunique()
    partner_seeds = sorted(tables[partner]["seed"].unique())
    return (" Calibration changes no pick and no test RMSE (the loop calibrates a copy of the trained model and "
            "rescales only the std it reports; tests/test_loop_calibration.py checks it bit for bit), so "
            f"{question.upper()}'s verdicts by RMSE, and the recommendation drawn from them, are the calibrated "
            f"recipe's as they stand, for the machine {question.upper()} ran on; what a calibrated rerun would add "
            f"is {question.upper()}'s test LL and 90% coverage per sampler over its {seeds} seeds, which "
            f"{partner.upper()} measures on {len(partner_seeds)} "
            f"({study_report.listing([str(k) for k in partner_seeds])})."
            + (calibrated_sample_text(tables[question], sample) if question == "q6" and sample is not None else ""))


def calibrated_sample_text(q6: pd.DataFrame, sample: pd.DataFrame) -> str:
    """What the committed sample of Q6's runs rerun calibrated shows (CALIBRATED_SAMPLE): whether
    each run's test RMSE and raw LL and coverage are Q6's at every step, and its final-step 90%
    coverage raw and calibrated; "" without a sample."""
    columns = {"test_rmse": "test_rmse", **{raw: name for name, raw in RAW_COLUMNS.items()}}  # mine -> Q6's
    if sample.empty or not set(columns) <= set(sample.columns):
        return ""
    keys = ["dataset", "sampler", "seed", "al_iter"]
    theirs = q6[keys + list(columns.values())].rename(columns={c: f"q6_{c}" for c in columns.values()})
    steps = sample[keys + list(columns) + ["test_coverage_90"]].merge(theirs, on=keys, how="left",
                                                                       validate="one_to_one")
    equal = np.ones(len(steps), dtype=bool)
    for mine, q6_column in columns.items():
        equal &= steps[mine].to_numpy() == steps[f"q6_{q6_column}"].to_numpy()
    runs = steps.groupby(keys[:3]).ngroups
    final = steps[steps["al_iter"] == steps.groupby(keys[:3])["al_iter"].transform("max")]
    datasets = study_report.listing(list(dict.fromkeys(sample["dataset"])))
    same = ("they have Q6's test RMSE, and as their raw test LL and 90% coverage Q6's, at every one of their "
            f"{len(steps):,} steps, bit for bit" if equal.all() else
            f"only {int(equal.sum()):,} of their {len(steps):,} steps equal Q6's in test RMSE and raw test LL and "
            "coverage")
    return (f" Measured on a sample: Q6's {runs:,} runs on {datasets} ({sample['sampler'].nunique()} samplers, "
            f"{sample['seed'].nunique()} seeds) rerun with its calibrated settings "
            f"([{CALIBRATED_SAMPLE}.csv.gz](study_data/{CALIBRATED_SAMPLE}.csv.gz)): {same}; their mean final-step "
            f"90% coverage is {final['test_coverage_90'].mean():.2f} calibrated, "
            f"{final['test_coverage_90_raw'].mean():.2f} raw.")


def calibration_lines(numbers: StudyNumbers, wall_times: WallTimes, quick: bool,
                      uci_root: str | None = None) -> list[str]:
    """Which questions' runs are calibrated; for those whose config now calibrates but whose runs
    are not, and for the first edition's questions on Q6's datasets, what a calibrated rerun would
    take at the measured rates (al_bnn_lab.study_cost): report lines, or none."""
    tables, sweeps = numbers.tables, numbers.sweeps
    if "q6" not in tables or quick:
        return []
    names = study_report.listing
    ran = [q for q in QUESTIONS if q in tables]
    calibrated = [q for q in ran if study_cost.runs_calibrated(tables[q])]
    plain = [q for q in ran if q not in calibrated]
    stale = [q for q in plain if sweeps.get(q) and study_cost.configured_calibration(sweeps[q]) != "none"]
    text = (f"**Calibration.** The runs of {names([q.upper() for q in calibrated])} are calibrated; those of "
            f"{names([q.upper() for q in plain])} are not.")
    # a calibrated question paired with a stale one has its settings, calibrated (Q9's report checks the run keys)
    paired = {q: [c for c in calibrated if PAIRED_QUESTIONS.get(c) == q] for q in stale}
    if stale:
        asks = sorted({study_cost.configured_calibration(sweeps[q]) for q in stale})
        commands = ", ".join(f"`run_study.py --questions {q}"
                             + "".join(f" --reuse docs/study_data/{run_table_name(c)}" for c in paired[q]) + "`"
                             + (f" (taking {names([c.upper() for c in paired[q]])}'s runs, which have its settings)"
                                if paired[q] else "") for q in stale)
        one = len(stale) == 1
        text += (f" {names([q.upper() for q in stale])} ran before the default recipe calibrated the AL loop, and "
                 f"{'its config now asks' if one else 'their configs now ask'} for it (`train_schedule.calibration: "
                 f"{' or '.join(asks)}`), so rerunning {'it trains it' if one else 'them trains them'} anew, "
                 f"calibrated: {commands}; {'it' if one else 'each'} can run in parts (a task cut short resumes at "
                 "its last finished training phase).")
        text += "".join(what_a_rerun_adds(tables, q, paired[q][0], numbers.calibrated_sample)
                        for q in stale if paired[q])
    cost_file = question_settings("q6", quick, uci_root)[1].get("calibration_cost")
    if not cost_file or not (REPO_ROOT / cost_file).is_file():
        return [text, ""]
    ratios = study_cost.calibration_cost_ratios(pd.read_csv(REPO_ROOT / cost_file))
    link = os.path.relpath(REPO_ROOT / str(cost_file).removesuffix(".csv"), REPO_ROOT / "docs") + ".md"
    text += (" A calibrated fit costs " + ", ".join(f"{r.median:.2f}x ({m}; {r.low:.2f}-{r.high:.2f} over "
                                                     f"{r.datasets} datasets)" for m, r in ratios.items())
             + f" an uncalibrated one (median, [UCI protocol's cost report]({link})).")
    estimates, q6_rate = [], None
    for question in stale:
        table = tables[question]
        runs, entry, rate = measured_rate(tables[question], wall_times, question)
        models = [m for m in dict.fromkeys(table["model"]) if m in ratios]
        if rate is None or not models:
            continue
        share = study_cost.training_share(table)
        q6_rate = (rate, share) if question == "q6" else q6_rate
        reusable = sum(tables[c].groupby(["dataset", "sampler", "seed"]).ngroups for c in paired[question])
        hours = study_cost.rerun_hours(rate, runs - reusable, [ratios[m] for m in models], share)
        less = (f" (less the {reusable:,} of {names([c.upper() for c in paired[question]])})" if reusable else "")
        estimates.append(f"{question.upper()} trained {runs - int(entry.get('reused_runs', 0)):,} runs in "
                         f"{entry['seconds'] / 60:.0f} min {_where(entry)} ({rate:.1f} s per run, {share:.0%} of it "
                         "training), "
                         f"so its {runs:,} runs calibrated{less} would take about {study_cost.hours_text(hours)}")
    if estimates:
        text += (" Scaling the training part of each run by these ratios (the estimate by the median, the range by "
                 "the lowest and highest): " + "; ".join(estimates) + ".")
    rates = []
    for question in calibrated:
        rate = measured_rate(tables[question], wall_times, question)[2]
        if rate is not None:
            stacks = sorted(set(tables[question].get("runs_in_stack", pd.Series(dtype=int)).dropna().astype(int)))
            rates.append(f"{question.upper()}'s calibrated runs took {rate:.1f} s each "
                         f"{_where(wall_times.entries.get(question, {}))}"
                         + (f", in stacks of {names([str(n) for n in stacks])} runs" if stacks else ""))
    if rates:
        text += (" " + "; ".join(rates) + ": a stack trains its runs at once, so a question with fewer runs per "
                 "dataset pays more per run, and these rates are not the ones to scale.")
    refreshed = {"q1"} if numbers.sections.get("q1") and "recipe" in numbers.sections["q1"].facts else set()
    first = [q for q in ("q1", "q2", "q3", "q4") if q in tables and sweeps.get(q) and q not in refreshed]
    if q6_rate is not None and first and "bnn" in ratios:
        datasets = tables["q6"]["dataset"].nunique()
        parts = []
        for question in first:
            shared = same_samplers(sweeps[question], sweeps["q6"])
            own = [s for s in sweeps[question]["samplers"] if s not in shared]
            runs = len(own) * len(sweeps[question]["seeds"]) * datasets
            hours = study_cost.rerun_hours(q6_rate[0], runs, [ratios["bnn"]], q6_rate[1])
            parts.append(f"{question.upper()} {runs:,} runs, about {study_cost.hours_text(hours)}"
                         + (f" ({names(list(shared))} sampling as Q6's {names(list(shared.values()))}, whose "
                            "calibrated rerun would hold these runs)" if shared else ""))
        text += (f" Refreshing {names([q.upper() for q in first])} on Q6's {datasets} datasets with the calibrated "
                 "recipe, at Q6's rate so scaled: " + "; ".join(parts) + " (selection that costs more than Q6's "
                 "would add: Q3's larger sample counts, Q4's batch GPA, the pick comparisons Q2 and Q3 record at "
                 "every step).")
    return [text, ""]


def update_headline(page: Path, headline_block: str) -> None:
    """Replace the generated headline block (between its two markers) of the docs page that quotes
    the study, so that the page and the report cannot disagree; the page is rewritten atomically."""
    text = page.read_text()
    if HEADLINE_START not in text or HEADLINE_END not in text:
        raise DataFileError(f"{page} lacks the study headline markers {HEADLINE_START!r} ... {HEADLINE_END!r}")
    before, rest = text.split(HEADLINE_START, 1)
    after = rest.split(HEADLINE_END, 1)[1]
    ResultsWriter(page.parent, overwrite=True).write_text(
        page.name, f"{before}{HEADLINE_START}\n{headline_block}\n{HEADLINE_END}{after}")

