"""The study's first edition (Q1-Q5): --quick runs end to end, every section is written, and the
report's tables can be recomputed from the tidy CSVs the runs wrote (for the quick run and for the
committed report). The second edition (Q6-Q8) is tested in test_study_q6.py."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from al_bnn_lab import study as run_study
from al_bnn_lab import study_report

REPO_ROOT = Path(__file__).resolve().parent.parent
UCI_ROOT = REPO_ROOT / "data" / "uci"
FIRST_EDITION = ["q1", "q2", "q3", "q4", "q5"]


def _snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory, sweeps_in_process):
    results = tmp_path_factory.mktemp("study")
    committed = {path: _snapshot(path) for path in (REPO_ROOT / "docs" / "study.md", run_study.HEADLINE_PAGE)}
    with sweeps_in_process():  # the runs of Q1-Q4 in the test process (the sweep's workers are tested apart)
        assert run_study.main(["--quick", "--results-dir", str(results), "--uci-root", str(UCI_ROOT),
                               "--questions", *FIRST_EDITION]) == 0
    return results, committed


def sections(report: str) -> dict[str, str]:
    """'q1' -> the text of the report's section on question 1."""
    parts = report.split("\n## Q")[1:]
    return {f"q{part[0]}": part for part in parts}


def table_rows(section: str, first_cell: str) -> list[list[str]]:
    """Cells of the markdown table rows of a section whose first cell is `first_cell`."""
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


def expected_final_rmse(table: pd.DataFrame, dataset: str, sampler: str) -> str:
    """Recomputed independently of study_report: last AL step per seed, Student-t 95% interval."""
    runs = table[(table.dataset == dataset) & (table.sampler == sampler)]
    final = runs.loc[runs.groupby("seed")["al_iter"].idxmax(), "test_rmse"].to_numpy()
    low, high = stats.t.interval(0.95, len(final) - 1, loc=final.mean(), scale=stats.sem(final))
    return f"{final.mean():.4g} ± {(high - low) / 2:.2g}"


def check_q1_table(report: str, tidy: pd.DataFrame) -> int:
    q1 = sections(report)["q1"]
    checked = 0
    for dataset in tidy.dataset.unique():
        rows = table_rows(q1, dataset)
        assert rows, f"no row for {dataset} in the Q1 section"
        cells = rows[0]  # the final-RMSE table comes first: dataset, pool, random, mcdue/lrgpa ...
        header = table_rows(q1, "dataset")[0]
        for sampler in tidy.sampler.unique():
            column = header.index(f"{sampler}: final RMSE")
            assert cells[column] == expected_final_rmse(tidy, dataset, sampler), (dataset, sampler)
            checked += 1
    return checked


def check_q4_divergence(report: str, q4: pd.DataFrame) -> None:
    """The acquisitions where each method/precision picked differently from batch float64,
    counted from the raw agreed_* columns, match the Q4 table."""
    q4 = q4.sort_values(["dataset", "seed", "al_iter"])
    reference = q4[q4.sampler == "bgpa_float64"].copy()
    reference["picked"] = reference.groupby(["dataset", "seed"])["n_train"].diff()
    for name in ("fast_float64", "fast_float32", "batch_float32"):
        compared = reference.dropna(subset=[f"agreed_{name}"])
        differing = int((compared[f"agreed_{name}"] < compared.picked).sum())
        row = table_rows(sections(report)["q4"], name)[0]
        assert row[1] == str(len(compared)) and row[2].startswith(f"{differing} ("), name


@pytest.mark.slow
def test_quick_study_writes_every_section_and_leaves_the_committed_report_alone(quick_study):
    results, committed = quick_study
    report = (results / "study.md").read_text()
    assert set(sections(report)) == {f"q{n}" for n in range(1, 10)}
    first_edition = {q: text for q, text in sections(report).items() if q in FIRST_EDITION}
    for section in first_edition.values():
        assert "Not run yet" not in section and "nan" not in section.replace("nanoseconds", "")
        assert "**Answer.**" in section and "*wall time:*" in section and "| " in section
    for question in ("q6", "q7", "q8"):
        assert "Not run yet." in sections(report)[question]
    for image in ("q1_rmse.png", "q1_log_likelihood.png", "q2_overlap.png", "q3_overlap_vs_samples.png",
                  "q5_selection_cost.png"):
        assert (results / "images" / image).stat().st_size > 1000
        assert f"](images/{image})" in report
    for question in ("q1", "q2", "q3", "q4"):
        assert (results / "study_data" / f"{question}.csv.gz").exists()
    for path, before in committed.items():
        assert _snapshot(path) == before, f"--quick must not touch {path}"


@pytest.mark.slow
def test_a_rerun_resumes_without_redoing_finished_runs(quick_study):
    results, _ = quick_study
    parts_before = run_study.WallTimes(results / "wall_times.json").entries
    assert run_study.main(["--quick", "--results-dir", str(results), "--uci-root", str(UCI_ROOT),
                           "--questions", *FIRST_EDITION]) == 0
    assert run_study.WallTimes(results / "wall_times.json").entries == parts_before


@pytest.mark.slow
def test_quick_tables_are_recomputed_from_the_tidy_csv(quick_study):
    results, _ = quick_study
    report = (results / "study.md").read_text()
    assert check_q1_table(report, pd.read_csv(results / "study_data" / "q1.csv.gz")) == 2 * 3
    check_q4_divergence(report, pd.read_csv(results / "study_data" / "q4.csv.gz"))


def test_the_committed_report_is_recomputed_from_its_committed_data():
    report_path = REPO_ROOT / "docs" / "study.md"
    report = report_path.read_text()
    tidy = pd.read_csv(REPO_ROOT / "docs" / "study_data" / "q1.csv.gz")
    assert tidy.seed.nunique() >= 5 and tidy.dataset.nunique() == 7
    assert check_q1_table(report, tidy) == 7 * tidy.sampler.nunique()
    check_q4_divergence(report, pd.read_csv(REPO_ROOT / "docs" / "study_data" / "q4.csv.gz"))
    for image in ("q1_rmse.png", "q2_overlap.png", "q3_overlap_vs_samples.png", "q5_selection_cost.png"):
        assert (REPO_ROOT / "images" / "study" / image).exists()
    assert "--quick" not in report.splitlines()[2]


@pytest.mark.slow
def test_the_committed_report_is_rebuilt_exactly_from_the_committed_data(tmp_path):
    """--report-only over a copy of docs/study_data (what a fresh checkout has) gives the
    committed report, up to the command lines and the image folder."""
    import shutil

    shutil.copytree(REPO_ROOT / "docs" / "study_data", tmp_path / "study_data")
    assert run_study.main(["--report-only", "--results-dir", str(tmp_path)]) == 0

    def normalised(text: str) -> list[str]:
        lines = [line for line in text.splitlines() if not line.startswith(("Generated by", "*Command:*"))]
        return [line.replace("](../images/study/", "](images/") for line in lines]

    assert normalised((tmp_path / "study.md").read_text()) == normalised(
        (REPO_ROOT / "docs" / "study.md").read_text())


def test_the_results_page_quotes_the_reports_headline():
    report = (REPO_ROOT / "docs" / "study.md").read_text()
    in_short = report.split("## Headline answers\n\n**In short.** ", 1)[1].split("\n\n", 1)[0].strip()
    page = run_study.HEADLINE_PAGE.read_text()
    assert run_study.HEADLINE_PAGE == REPO_ROOT / "docs" / "results.md"
    block = page.split(run_study.HEADLINE_START, 1)[1].split(run_study.HEADLINE_END, 1)[0].strip()
    assert block and block == in_short  # generated with the report
    assert "datasets of Q1 (" in block  # scoped to the datasets it was measured on
    assert run_study.HEADLINE_START not in (REPO_ROOT / "README.md").read_text()  # the study no longer edits it


def test_update_headline_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "results.md"
    page.write_text(f"# Results\n\nbefore\n{run_study.HEADLINE_START}\nold words\n{run_study.HEADLINE_END}\nafter\n")
    run_study.update_headline(page, "new words")
    assert page.read_text() == (f"# Results\n\nbefore\n{run_study.HEADLINE_START}\nnew words\n"
                                f"{run_study.HEADLINE_END}\nafter\n")
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary file left behind
    page.write_text("# Results without markers\n")
    with pytest.raises(ValueError, match="lacks the study headline markers"):
        run_study.update_headline(page, "new words")
    assert page.read_text() == "# Results without markers\n"


def test_interval_and_curve_area_on_hand_made_numbers():
    values = [1.0, 2.0, 4.0]
    mean, half = study_report.interval(values)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(7 / 3) and half == pytest.approx((high - low) / 2)
    assert np.isnan(study_report.interval([3.0])[1])
    table = pd.DataFrame(dict(dataset="d", sampler="s", seed=0, pool_size=100, n_train=[10, 20, 40],
                              test_rmse=[3.0, 2.0, 1.0], test_log_likelihood=[-3.0, -2.0, -1.0]))
    scalars = study_report.run_scalars(table).iloc[0]
    # trapezoids: (3+2)/2*10 + (2+1)/2*20 = 55 over a span of 30
    assert scalars.rmse_auc == pytest.approx(55 / 30) and scalars.final_rmse == 1.0
    assert scalars.log_likelihood_auc == pytest.approx(-55 / 30)
    assert study_report.verdict(np.array([-0.1, -0.12, -0.11])) == "lower"
    assert study_report.verdict(np.array([-0.1, 0.12, 0.01])) == "unclear"
