"""Calibration in the simulated active-learning loop, on the AL benchmark's schedule: the final AL
step's 90% coverage and test log-likelihood of a benchmark sweep run with
`train_schedule.calibration: holdout`, paired run by run (dataset, model, sampler, seed) with the
committed uncalibrated benchmark tables.

    python source/al_calibration_report.py --calibrated results_al_cal [results_more ...] \\
        --baseline docs/benchmark/benchmark.csv docs/benchmark/benchmark_dropout_ensemble.csv.gz --out DIR

The loop selects on the raw model and trains the same final model either way, so the test RMSE of a
paired run must be identical; the report checks it (largest difference) rather than assuming it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from al_bnn.data import DataFileError
from al_bnn.results import ResultsWriter
from al_bnn_lab import command_line, stats

KEYS = ["dataset", "model", "sampler", "seed"]
METRICS = ["test_rmse", "test_coverage_90", "test_log_likelihood"]
TABLE_FILE = "coverage.csv"
REPORT_FILE = "coverage.md"
RUNS_FILE = "calibrated_runs.csv"


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Each run's row at its last AL step."""
    last = table.groupby(KEYS)["al_iter"].transform("max")
    return table[table["al_iter"] == last][[*KEYS, "al_iter", *METRICS]].reset_index(drop=True)


def paired_final(calibrated: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """The final rows of the calibrated runs beside the same runs' uncalibrated rows (suffixes
    _calibrated and _raw); a calibrated run without its baseline is an error naming it."""
    merged = final_rows(calibrated).merge(final_rows(baseline), on=[*KEYS, "al_iter"], how="left",
                                          suffixes=("_calibrated", "_raw"), validate="one_to_one")
    missing = merged[merged["test_rmse_raw"].isna()]
    if len(missing):
        first = missing.iloc[0]
        raise DataFileError(f"{len(missing)} calibrated run(s) have no uncalibrated counterpart at the same final "
                            f"step in the baseline tables, e.g. {first.dataset} / {first.model} / {first.sampler} / "
                            f"seed {first.seed}")
    return merged


def coverage_table(paired: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): runs, mean final 90% coverage and test LL before and after calibration,
    and the largest |RMSE difference| between the paired runs (0 when selection and training agree)."""
    paired = paired.assign(rmse_difference=(paired["test_rmse_calibrated"] - paired["test_rmse_raw"]).abs())
    grouped = paired.groupby(["dataset", "model"], sort=True)
    return pd.DataFrame({
        "runs": grouped.size(),
        "coverage_raw": grouped["test_coverage_90_raw"].mean(),
        "coverage_calibrated": grouped["test_coverage_90_calibrated"].mean(),
        "log_likelihood_raw": grouped["test_log_likelihood_raw"].mean(),
        "log_likelihood_calibrated": grouped["test_log_likelihood_calibrated"].mean(),
        "max_rmse_difference": grouped["rmse_difference"].max(),
    }).reset_index()


def summary_lines(table: pd.DataFrame) -> list[str]:
    """Per model: mean coverage over datasets with its 95% interval, the datasets below 0.75, and
    the paired LL gain over datasets, before and after."""
    lines = []
    for model, part in table.groupby("model", sort=False):
        for column, label in (("coverage_raw", "uncalibrated"), ("coverage_calibrated", "calibrated")):
            mean, half = stats.mean_interval(part[column].to_numpy())
            low = part.loc[part[column] < 0.75, "dataset"].tolist()
            lines.append(f"- {model}, {label}: mean 90% coverage {mean:.2f} ± {half:.2f} over {len(part)} datasets "
                         f"(target 0.85-0.95); below 0.75 on: {', '.join(low) or 'none'}.")
        gain = (part["log_likelihood_calibrated"] - part["log_likelihood_raw"]).to_numpy()
        mean, half = stats.mean_interval(gain)
        better = int((gain > 0).sum())
        lines.append(f"- {model}: test LL gain from calibration {mean:+.3f} ± {half:.3f} (95% interval over datasets), "
                     f"higher on {better} of {len(gain)}; largest final-RMSE difference between paired runs "
                     f"{part['max_rmse_difference'].max():.2g}.")
    return lines


def winners(paired: pd.DataFrame, sampler: str = "lcmd", baseline: str = "random") -> pd.DataFrame:
    """Does calibration change which method wins? Per (dataset, model) with both samplers: `sampler` -
    `baseline` at the final step, mean over paired seeds, in log RMSE (the calibrated runs'; calibration
    changes no pick, so this is the uncalibrated runs' too, up to the max RMSE difference) and in test
    LL without and with calibration, and whether the LL winner flips."""
    rows = []
    for (dataset, model), part in paired.groupby(["dataset", "model"], sort=True):
        if not {sampler, baseline} <= set(part["sampler"]):
            continue
        wide = part.pivot(index="seed", columns="sampler").dropna()
        if wide.empty:
            continue

        log_rmse = float((np.log(wide[("test_rmse_calibrated", sampler)])
                          - np.log(wide[("test_rmse_calibrated", baseline)])).mean())
        raw, calibrated = (float((wide[(column, sampler)] - wide[(column, baseline)]).mean())
                           for column in ("test_log_likelihood_raw", "test_log_likelihood_calibrated"))
        rows.append(dict(dataset=dataset, model=model, seeds=len(wide), log_rmse_difference=log_rmse,
                         ll_difference_raw=raw, ll_difference_calibrated=calibrated,
                         ll_winner_flips=bool(np.sign(raw) != np.sign(calibrated))))
    return pd.DataFrame(rows, columns=["dataset", "model", "seeds", "log_rmse_difference", "ll_difference_raw",
                                       "ll_difference_calibrated", "ll_winner_flips"])


def winners_lines(table: pd.DataFrame, sampler: str = "lcmd", baseline: str = "random") -> list[str]:
    if table.empty:
        return []
    lines = ["", f"## Does calibration change which method wins? ({sampler} against {baseline})", "",
             "Selection reads the raw model, so calibration changes no pick: the RMSE ranking is the "
             "uncalibrated one. What it can change is the ranking by test log-likelihood. Final AL step, "
             f"{sampler} - {baseline}, mean over paired seeds (positive LL difference: {sampler} has the higher "
             "LL).", "", "| dataset | model | seeds | log RMSE difference | LL difference, uncalibrated | "
             "calibrated | LL winner flips |", "|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.dataset} | {row.model} | {row.seeds} | {row.log_rmse_difference:+.3f} | "
                     f"{row.ll_difference_raw:+.3f} | {row.ll_difference_calibrated:+.3f} | "
                     f"{'yes' if row.ll_winner_flips else 'no'} |")
    for model, part in table.groupby("model", sort=True):
        flips = part.loc[part["ll_winner_flips"], "dataset"].tolist()
        raw_wins = int((part["ll_difference_raw"] > 0).sum())
        calibrated_wins = int((part["ll_difference_calibrated"] > 0).sum())
        lines.append(f"\n- {model}: {sampler} has the higher test LL on {raw_wins} of {len(part)} datasets "
                     f"uncalibrated and {calibrated_wins} calibrated; the winner flips on {len(flips)}"
                     f"{' (' + ', '.join(flips) + ')' if flips else ''}.")
    return lines


def render(table: pd.DataFrame, command: str, winner_table: pd.DataFrame | None = None) -> str:
    lines = [f"# Calibration in the active-learning loop\n\nMade by `{command}`. Final AL step of each run, mean "
             "over its seeds and samplers; each calibrated run is paired with the same run (dataset, model, sampler, "
             "seed) of the committed uncalibrated benchmark. Calibration changes neither the picks nor the final "
             "model of a run, but the paired runs are not bitwise the same models when the two sweeps stacked a "
             "different number of runs into one model (float32 reductions run in another order), and a small "
             "difference can change a later pick: the last column shows how far the paired runs' final test RMSE "
             "moved apart, so the coverage columns compare near-identical, not identical, models.\n",
             "| dataset | model | runs | 90% coverage, uncalibrated | calibrated | test LL, uncalibrated | calibrated "
             "| max RMSE difference |", "|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.dataset} | {row.model} | {row.runs} | {row.coverage_raw:.2f} | "
                     f"{row.coverage_calibrated:.2f} | {row.log_likelihood_raw:.3g} | "
                     f"{row.log_likelihood_calibrated:.3g} | {row.max_rmse_difference:.2g} |")
    extra = winners_lines(winner_table) if winner_table is not None else []
    return "\n".join([*lines, "", *summary_lines(table), *extra]) + "\n"


def read_table(path: Path) -> pd.DataFrame:
    """A tidy benchmark table, or a results folder's finished_runs.csv / benchmark.csv."""
    if path.is_dir():
        for name in ("benchmark.csv", "finished_runs.csv"):
            if (path / name).is_file():
                return pd.read_csv(path / name)
        raise DataFileError(f"{path}: no benchmark.csv or finished_runs.csv here")
    if not path.is_file():
        raise DataFileError(f"{path}: no such table")
    return pd.read_csv(path)


def main(argv: Sequence[str] | None = None) -> int:
    from al_bnn.cli import run_reporting_errors

    parser = argparse.ArgumentParser(description="Final-step coverage and LL of a calibrated benchmark sweep, "
                                                 "paired with the uncalibrated benchmark.")
    parser.add_argument("--calibrated", nargs="+", required=True,
                        help="results folders or tidy tables of the calibrated sweeps (their runs are joined)")
    parser.add_argument("--baseline", nargs="+", required=True, help="tidy tables of the uncalibrated benchmark")
    parser.add_argument("--out", default="results_al_calibration", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    command = command_line("source/al_calibration_report.py", argv)

    def run() -> int:
        calibrated = pd.concat([read_table(Path(p)) for p in args.calibrated], ignore_index=True)
        baseline = pd.concat([read_table(Path(p)) for p in args.baseline], ignore_index=True)
        paired = paired_final(calibrated, baseline)
        table = coverage_table(paired)
        text = render(table, command.strip(), winners(paired))
        with ResultsWriter(Path(args.out), overwrite=True, lock=True) as writer:
            writer.write_csv(TABLE_FILE, table.to_dict("records"))
            writer.write_csv(RUNS_FILE, calibrated.to_dict("records"))
            writer.write_text(REPORT_FILE, text)
        print(text)
        return 0

    return run_reporting_errors(run)
