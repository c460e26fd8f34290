"""The study's third edition (Q9: does calibration change which method wins?): the section of the
committed report recomputed independently from the committed tidy tables (q9 calibrated, q6
uncalibrated), the pairing by dataset, sampler and seed, a calibrated table whose RMSE moved is
reported as such, and Q9's runs are the benchmark's (so --reuse fills it) and Q6's with calibration
off (so the pairing compares calibration alone)."""

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn_lab import study as run_study
from al_bnn_lab import study_report

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "docs" / "study_data"
UCI_ROOT = REPO_ROOT / "data" / "uci"
KEYS = ["dataset", "sampler", "seed"]
SIDES = ("uncalibrated", "calibrated")


def q9_part(report: str) -> str:
    return report.split("\n## Q9.", 1)[1].split("\n## ", 1)[0]


def rows_of(text: str) -> dict[str, list[str]]:
    """First cell -> cells of every markdown table row of `text` (later tables win on a clash)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| "):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def expected_q9(q6: pd.DataFrame, q9: pd.DataFrame) -> dict:
    """Recomputed without study_report: the paired steps, the largest RMSE difference, per sampler the
    mean over datasets of the final-step mean over seeds and its rank by LL, per dataset the LL winner
    and each sampler's paired LL difference to random, on each side."""
    columns = ["al_iter", "test_rmse", "test_log_likelihood", "test_coverage_90"]
    beside = q6[KEYS + columns].merge(q9[KEYS + columns], on=KEYS + ["al_iter"], suffixes=("_u", "_c"))
    if "test_log_likelihood_raw" in q9:  # each run against itself before calibration
        complete = q9[["test_log_likelihood_raw", "test_coverage_90_raw"]].notna().all(axis=1)
        own = q9[complete.groupby([q9[k] for k in KEYS]).transform("all")]
        steps = own[KEYS + columns].rename(columns={c: f"{c}_c" for c in columns[1:]})
        steps["test_rmse_u"] = own["test_rmse"]
        steps["test_log_likelihood_u"] = own["test_log_likelihood_raw"]
        steps["test_coverage_90_u"] = own["test_coverage_90_raw"]
    else:
        steps = beside
    last = steps.groupby(KEYS)["al_iter"].transform("max")
    final = steps[steps.al_iter == last]
    per_dataset = final.groupby(["sampler", "dataset"]).mean(numeric_only=True)
    per_sampler = per_dataset.groupby(level="sampler").mean()
    relative = (beside.test_rmse_c - beside.test_rmse_u).abs() / beside.test_rmse_u
    result = dict(runs=len(final), steps=len(beside), beside_runs=len(beside[KEYS].drop_duplicates()),
                  samplers={}, datasets={}, max_rmse=float((beside.test_rmse_c - beside.test_rmse_u).abs().max()),
                  differing=int((relative.groupby([beside[k] for k in KEYS]).max() > 1e-5).sum()))
    for side in "uc":
        ranks = per_sampler[f"test_log_likelihood_{side}"].rank(ascending=False, method="min")
        for sampler in per_sampler.index:
            entry = result["samplers"].setdefault(sampler, {})
            entry[f"ll_{side}"] = per_sampler.loc[sampler, f"test_log_likelihood_{side}"]
            entry[f"coverage_{side}"] = per_sampler.loc[sampler, f"test_coverage_90_{side}"]
            entry[f"rank_{side}"] = int(ranks[sampler])
    for dataset, part in final.groupby("dataset"):
        means = part.groupby("sampler").mean(numeric_only=True)
        entry = {f"winner_{side}": means[f"test_log_likelihood_{side}"].idxmax() for side in "uc"}
        for sampler in means.index.drop("random"):
            for side in "uc":
                wide = part.pivot(index="seed", columns="sampler", values=f"test_log_likelihood_{side}")
                entry[f"{sampler}_{side}"] = float((wide[sampler] - wide["random"]).mean())
        result["datasets"][dataset] = entry
    return result


def check_q9_section(report: str, q6: pd.DataFrame, q9: pd.DataFrame) -> int:
    """Every number of the Q9 tables and its flip counts match the recomputation; returns how
    many dataset rows were checked."""
    part = q9_part(report)
    want = expected_q9(q6, q9)
    rows = rows_of(part)
    for sampler, entry in want["samplers"].items():
        cells = rows[sampler]
        assert cells[2:] == [f"{entry['ll_u']:.3f}", f"{entry['ll_c']:.3f}", f"{entry['coverage_u']:.2f}",
                             f"{entry['coverage_c']:.2f}", str(entry["rank_u"]), str(entry["rank_c"])], sampler
    header = next(cells for first, cells in rows.items() if first == "dataset")
    flips = 0
    for dataset, entry in want["datasets"].items():
        cells = rows[dataset]
        assert cells[1] == f"{entry['winner_u']} → {entry['winner_c']}", dataset
        flips += entry["winner_u"] != entry["winner_c"]
        for column, name in enumerate(header):
            if " − random" in name:
                sampler = name.split(" − ")[0]
                raw, calibrated = entry[f"{sampler}_u"], entry[f"{sampler}_c"]
                flip = " (flips)" if np.sign(raw) != np.sign(calibrated) else ""
                assert cells[column] == f"{raw:+.3f} → {calibrated:+.3f}{flip}", (dataset, sampler)
    datasets = len(want["datasets"])
    assert f"The LL winner changes with calibration on {flips} of {datasets} datasets" in part
    assert f"{want['runs']} runs of {len(want['samplers'])} samplers on {datasets} datasets" in part
    runs = want["beside_runs"]
    if want["max_rmse"] == 0:
        assert f"They do: the largest |test RMSE difference| over all {want['steps']} paired AL steps" in part
    elif want["differing"] == 0:
        assert f"They do, up to float noise: the largest |test RMSE difference| over all {want['steps']} paired " \
               f"AL steps of {runs} runs is {want['max_rmse']:.2g}" in part
    else:
        assert f"They do not all: {runs - want['differing']} of {runs} paired runs agree" in part
        assert f"the other {want['differing']} differ, by up to {want['max_rmse']:.3g} in test RMSE" in part
    return datasets


def test_the_committed_q9_section_is_recomputed_from_the_committed_tables():
    q6, q9 = pd.read_csv(DATA / "q6.csv.gz"), pd.read_csv(DATA / "q9.csv.gz")
    report = (REPO_ROOT / "docs" / "study.md").read_text()
    assert check_q9_section(report, q6, q9) == 15
    assert set(q9.seed) == {0, 1} and "2 paired seeds" in q9_part(report)
    assert "- **Q9.**" in report and "Calibrating the bnn (Q9:" in report.split("## Headline answers")[1]
    scope = rows_of(report.split("## Headline answers")[0])
    assert scope["Q9"][2:5] == ["2 (0, 1)", "bnn", "random, lcmd, maxdist, bait, maxdet, lcmd_exact, maxdist_exact, "
                                "kmeanspp_exact, mcdue, gpa, gpa_exact, kmeanspp"]


# -- synthetic tables with known answers ----------------------------------------------------------------
# Three datasets, two seeds, random and lcmd. Uncalibrated LL: lcmd wins everywhere; calibrated it loses on
# d2 only. Test RMSE is the same on both sides unless a test moves it.
LL = {"uncalibrated": {"random": [-2.0, -3.0, -1.0], "lcmd": [-1.5, -2.5, -0.5]},
      "calibrated": {"random": [-1.8, -2.9, -0.9], "lcmd": [-1.7, -2.8, -1.2]}}


def synthetic(side: str, steps: int = 3) -> pd.DataFrame:
    rows = []
    for j, dataset in enumerate(["d0", "d1", "d2"]):
        for sampler in ("random", "lcmd"):
            for seed in (0, 1):
                for step in range(steps):
                    ll = LL[side][sampler][j] + 0.01 * seed + 0.1 * step
                    rmse = math.exp(-LL["uncalibrated"][sampler][j]) / 3 + 0.01 * seed - 0.01 * step  # both sides
                    rows.append(dict(dataset=dataset, model="bnn", sampler=sampler, seed=seed, al_iter=step,
                                     n_train=10 + 5 * step, test_rmse=rmse, test_log_likelihood=ll,
                                     test_coverage_90=(0.8 if side == "uncalibrated" else 0.9) + 0.01 * seed,
                                     runs_in_stack=4 if side == "uncalibrated" else 2,
                                     run_key=f"{dataset}-{sampler}-{seed}-{side}"))
    return pd.DataFrame(rows)


def test_known_answers_from_synthetic_tables():
    uncalibrated, calibrated = synthetic("uncalibrated"), synthetic("calibrated")
    section = study_report.question_calibration(uncalibrated, calibrated, "random")
    facts = section.facts
    assert facts["runs"] == 12 and facts["unpaired"] == 0 and facts["seeds"] == 2
    assert facts["ll_winner_flips"] == ["d2"] and facts["rmse_winner_flips"] == []
    assert facts["sign_flips"] == {"lcmd": ["d2"]}
    assert facts["rmse"]["max_abs"] == 0 and facts["rmse"]["differing"] == 0
    assert facts["order_uncalibrated"] == "lcmd, random" and facts["order_calibrated"] == "random, lcmd"
    assert "They do: the largest |test RMSE difference| over all 36 paired AL steps of 12 runs is 0." \
        in section.markdown[0]
    assert "changes the final-step LL winner among 2 samplers on 1 of them" in section.answer
    assert "The paired runs' test RMSE is identical, so the changes are calibration's." in section.answer
    assert "2 paired seeds" in section.markdown[0]
    report = "\n## Q9. x\n" + "\n\n".join(section.markdown)
    assert check_q9_section(report, uncalibrated, calibrated) == 3


def test_runs_are_paired_by_dataset_sampler_and_seed_not_by_row_order():
    uncalibrated, calibrated = synthetic("uncalibrated"), synthetic("calibrated")
    shuffled = uncalibrated.sample(frac=1.0, random_state=0)
    extra = uncalibrated[uncalibrated.seed == 0].assign(seed=7)  # a Q6 seed Q9 does not have: left out
    section = study_report.question_calibration(pd.concat([shuffled, extra]), calibrated, "random")
    assert section.markdown == study_report.question_calibration(uncalibrated, calibrated, "random").markdown
    # a Q9 run without a Q6 run is left out and counted
    section = study_report.question_calibration(uncalibrated[uncalibrated.dataset != "d1"], calibrated, "random")
    assert section.facts["runs"] == 8 and section.facts["unpaired"] == 4 and section.facts["datasets"] == 2
    assert "4 run(s) of Q9 have no Q6 run and are left out." in section.markdown[0]
    # swapping the uncalibrated seeds changes the paired differences: the seed is part of the pairing
    swapped = uncalibrated.assign(seed=1 - uncalibrated.seed)
    moved = study_report.question_calibration(swapped, calibrated, "random").facts["rmse"]
    assert moved["max_abs"] > 0


def test_a_calibrated_table_whose_rmse_moved_is_reported_not_hidden():
    uncalibrated, calibrated = synthetic("uncalibrated"), synthetic("calibrated")
    one_run = (calibrated.dataset == "d1") & (calibrated.sampler == "lcmd") & (calibrated.seed == 1)
    calibrated.loc[one_run & (calibrated.al_iter == 2), "test_rmse"] *= 1.2
    before = uncalibrated.loc[one_run & (uncalibrated.al_iter == 2), "test_rmse"].iloc[0]
    section = study_report.question_calibration(uncalibrated, calibrated, "random")
    rmse = section.facts["rmse"]
    assert rmse["differing"] == 1 and rmse["same"] == 11 and rmse["worst"] == ("d1", "lcmd", 1, 2)
    assert rmse["max_abs"] == pytest.approx(0.2 * before) and rmse["differ_initially"] == 0
    text = section.markdown[0]
    assert "They do not all: 11 of 12 paired runs agree at every step" in text
    assert f"by up to {0.2 * before:.3g} in test RMSE (20.0% relative; d1, lcmd, seed 1, step 2)" in text
    assert "They are runs of 1 dataset (d1: 1 of 4 paired runs)." in text
    assert "12 of the 12 runs were trained in a stack of another size than their pair" in text
    assert section.facts["clean_datasets"] == ["d0", "d2"] and section.facts["clean_flips"] == ["d2"]
    assert "On the 2 datasets whose paired runs all agree in test RMSE (where only calibration differs) the LL " \
           "winner changes on 1 (d2)." in section.markdown[-1]
    assert "1 of the 12 paired runs differ in test RMSE as well (up to 20.0% relative)" in section.answer
    assert "not all of it is calibration's" in section.headline
    # float noise is named as such, not as a difference
    noisy = synthetic("calibrated")
    noisy["test_rmse"] *= 1 + 1e-7
    section = study_report.question_calibration(uncalibrated, noisy, "random")
    assert section.facts["rmse"]["differing"] == 0 and "They do, up to float noise" in section.markdown[0]


def test_paired_runs_that_are_not_the_uncalibrated_settings_are_named():
    uncalibrated, calibrated = synthetic("uncalibrated"), synthetic("calibrated")
    keys = {tuple(run): f"{run[0]}-{run[1]}-{run[2]}-uncalibrated" for run in
            uncalibrated[KEYS].drop_duplicates().itertuples(index=False, name=None)}
    section = study_report.question_calibration(uncalibrated, calibrated, "random", keys)
    assert "Every paired Q6 run has the run key of Q9's settings with `calibration: none`" in section.markdown[0]
    keys[("d0", "lcmd", 0)] = "another run"
    section = study_report.question_calibration(uncalibrated, calibrated, "random", keys)
    assert "Only 11 of the 12 paired Q6 runs have the run key" in section.markdown[0]
    assert "Only 11 of the 12 paired runs are Q9's settings uncalibrated" in section.answer


# -- runs that kept their raw LL and coverage are paired with themselves ----------------------------------

def with_raw(calibrated: pd.DataFrame, uncalibrated: pd.DataFrame) -> pd.DataFrame:
    """`calibrated` with the raw columns the loop keeps beside the calibrated ones: here the
    uncalibrated table's LL and coverage of the same run and step."""
    raw = uncalibrated.set_index(KEYS + ["al_iter"])
    steps = pd.MultiIndex.from_frame(calibrated[KEYS + ["al_iter"]])
    return calibrated.assign(test_log_likelihood_raw=raw.loc[steps, "test_log_likelihood"].to_numpy(),
                             test_coverage_90_raw=raw.loc[steps, "test_coverage_90"].to_numpy())


def test_runs_that_kept_raw_columns_are_paired_with_themselves_and_q6_is_only_checked_for_reproduction():
    uncalibrated, calibrated = synthetic("uncalibrated"), synthetic("calibrated")
    own = with_raw(calibrated, uncalibrated)
    # Q6's runs trained elsewhere: two of them moved in RMSE and LL; the LL comparison must not see it
    elsewhere = uncalibrated.copy()
    moved = (elsewhere.dataset == "d2") & (elsewhere.sampler == "random")
    elsewhere.loc[moved, "test_rmse"] *= 1.3
    elsewhere.loc[moved, "test_log_likelihood"] -= 5.0
    section = study_report.question_calibration(elsewhere, own, "random")
    legacy = study_report.question_calibration(uncalibrated, calibrated, "random")
    facts = section.facts
    assert facts["within"] and facts["left_out"] == 0
    for key in ("ll_winner_flips", "sign_flips", "order_uncalibrated", "order_calibrated", "coverage", "runs"):
        assert facts[key] == legacy.facts[key], key
    assert facts["rmse"]["max_abs"] == 0 and facts["rmse_winner_flips"] == []
    assert facts["machine_rmse"]["differing"] == 2  # both seeds of d2's random run
    assert "Each run of Q9 is paired with itself before calibration" in section.markdown[0]
    beside = section.markdown[1]
    assert beside.startswith("**Q9's runs beside Q6's.**")
    assert "They do not all: 10 of 12 paired runs agree at every step" in beside
    assert "Every paired run of lcmd agrees." in beside
    assert "so the changes are calibration's" in section.answer
    assert "never the RMSE winner" in section.headline and "not all of it" not in section.headline
    report = "\n## Q9. x\n" + "\n\n".join(section.markdown)
    assert check_q9_section(report, elsewhere, own) == 3
    # the LL comparison reads the raw columns: moving them moves it
    flipped = own.copy()
    flipped.loc[flipped.dataset == "d2", "test_log_likelihood_raw"] = flipped.loc[flipped.dataset == "d2",
                                                                                  "test_log_likelihood"]
    assert study_report.question_calibration(elsewhere, flipped, "random").facts["ll_winner_flips"] == []
    # a run that kept no raw columns at some step is left out and counted
    gap = (own.dataset == "d0") & (own.sampler == "lcmd") & (own.seed == 0) & (own.al_iter == 1)
    own.loc[gap, "test_log_likelihood_raw"] = np.nan
    section = study_report.question_calibration(elsewhere, own, "random")
    assert section.facts["runs"] == 11 and section.facts["left_out"] == 1
    assert "1 run of Q9 kept no raw LL or coverage" in section.markdown[0]


# -- the configs: Q9's runs are the calibrated benchmark's, and Q6's committed runs with calibration off -----

def test_q9_runs_are_benchmark_runs_and_q6s_committed_runs_with_calibration_off():
    from al_bnn_lab.sweep import benchmark_config_from_dict, load_benchmark_config, run_key

    raw = run_study.question_sweep("q9", quick=False)
    q9 = benchmark_config_from_dict(raw, "q9")
    in_benchmark = ["random", "lcmd", "maxdist", "bait", "maxdet"]  # the others are not benchmark samplers
    q6 = benchmark_config_from_dict(run_study.question_sweep("q6", quick=False), "q6")
    assert set(q9.samplers) == set(q6.samplers) and q9.samplers[:5] == in_benchmark and q9.seeds == [0, 1]
    assert raw["experiment"]["train_schedule"]["calibration"] == "holdout"
    benchmark = load_benchmark_config(REPO_ROOT / "configs" / "benchmark.yaml")
    assert {e.name for e in benchmark.datasets} == {e.name for e in q9.datasets}
    benchmark_runs = {run_key(benchmark, entry, "bnn", sampler, seed): (entry.name, sampler, seed)
                      for entry in benchmark.datasets for sampler in in_benchmark for seed in q9.seeds}
    for entry in q9.datasets:
        for sampler in in_benchmark:
            for seed in q9.seeds:
                assert benchmark_runs.get(run_key(q9, entry, "bnn", sampler, seed)) == (entry.name, sampler, seed)
    committed = pd.read_csv(DATA / "q6.csv.gz").drop_duplicates(KEYS).set_index(KEYS)["run_key"]
    uncalibrated = run_study.uncalibrated_run_keys(raw)  # every sampler's, the exact-kernel ones included
    assert len(uncalibrated) == 15 * 12 * 2
    assert all(committed[run] == key for run, key in uncalibrated.items())
    # Q6's config now calibrates: its rerun has Q9's run keys, so --reuse takes Q9's runs into it
    q6_entries = {entry.name: entry for entry in q6.datasets}
    for entry in q9.datasets:
        for sampler in q9.samplers:
            for seed in q9.seeds:
                q6_key = run_key(q6, q6_entries[entry.name], "bnn", sampler, seed)
                assert run_key(q9, entry, "bnn", sampler, seed) == q6_key, (entry.name, sampler, seed)


@pytest.mark.slow
def test_quick_q9_runs_end_to_end_and_pairs_with_q6(tmp_path):
    """--quick --questions q9 trains its tiny sweep and writes a Q9 section; with a Q6 table beside it
    (here Q9's own runs, which are calibrated) the section pairs them and says they are not Q9's
    settings uncalibrated."""
    committed = {path: path.read_bytes() for path in (REPO_ROOT / "docs" / "study.md", run_study.HEADLINE_PAGE)}
    assert run_study.main(["--quick", "--results-dir", str(tmp_path), "--uci-root", str(UCI_ROOT),
                           "--questions", "q9"]) == 0
    report = (tmp_path / "study.md").read_text()
    assert "Q9 pairs its runs with Q6's runs, which are not here yet" in q9_part(report)
    assert "q9" in run_study.WallTimes(tmp_path / "wall_times.json").entries
    (tmp_path / "q6").mkdir()
    shutil.copy(tmp_path / "q9" / "benchmark.csv", tmp_path / "q6" / "benchmark.csv")
    assert run_study.main(["--quick", "--results-dir", str(tmp_path), "--report-only"]) == 0
    part = q9_part((tmp_path / "study.md").read_text())
    assert "They do: the largest |test RMSE difference|" in part and "Only 0 of the 8 paired Q6 runs" in part
    for path, before in committed.items():
        assert path.read_bytes() == before, f"--quick must not touch {path}"


def test_the_cause_of_differing_runs_is_stated_only_as_far_as_it_is_known():
    uncalibrated, calibrated = synthetic("uncalibrated"), synthetic("calibrated")
    one_run = (calibrated.dataset == "d1") & (calibrated.sampler == "lcmd") & (calibrated.seed == 1)
    calibrated.loc[one_run, "test_rmse"] *= 1.001  # from the initial step on, before any pick
    unknown = study_report.question_calibration(uncalibrated, calibrated, "random").markdown[0]
    assert "(cause not established; calibration is not it: on one machine a calibrated run's RMSE and picks are " \
           "bitwise the uncalibrated run's; once a pick differs" in unknown
    assert "12 of the 12 runs were trained in a stack of another size than their pair (runs_in_stack): 1 of the 1 " \
           "that differ and 11 of the 11 that agree." in unknown
    machines = (["2 cores (Intel)"], ["2 cores (AMD)"])
    known = study_report.question_calibration(uncalibrated, calibrated, "random", machines=machines).markdown[0]
    assert "(the wall-time record names 2 cores (Intel) for the runs Q6 trained and 2 cores (AMD) for Q9's (runs " \
           "taken with --reuse are not in it), and float32 training on CPU need not round the same on another " \
           "processor and software build; calibration is not the cause" in known
    same = study_report.question_calibration(uncalibrated, calibrated, "random",
                                             machines=(["2 cores (AMD)"], ["2 cores (AMD)"])).markdown[0]
    assert "cause not established" in same  # one machine: the machines are not the explanation


def test_the_wall_time_record_names_the_machine_each_question_ran_on(tmp_path):
    from al_bnn_lab import study

    times = study.WallTimes(tmp_path / "wall_times.json")
    times.add("q6", 90.0, workers=2)
    here = study.machine_description()
    assert study.WallTimes(tmp_path / "wall_times.json").entries["q6"]["machines"] == [here]
    assert f"2 worker process(es) on {here} (code at" in times.describe("q6")
    assert "on this machine" in times.total()
    times.entries["q9"] = {"seconds": 60.0, "parts": 1, "commits": ["abc"], "machines": ["another machine"]}
    assert "on 2 machines (named with the questions whose record has them)" in times.total()
    assert times.machines() == {"q6": [here], "q9": ["another machine"]}
    times.entries["q9"]["note"] = "its parts ran beside other sweeps"
    assert times.describe("q9").endswith("(code at abc); its parts ran beside other sweeps")
