"""The README's calibration figures are the committed tables' numbers: each figure the paragraph
states is recomputed here from the table it comes from, so a rerun that changes a table fails
this test until the sentence is updated."""

import re
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent


def paragraph() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("Calibration figures, since they are easy to overstate")
    return " ".join(text[start:text.index("\n\n", start)].split())


def test_the_uci_protocol_figures_are_the_committed_summary():
    summary = pd.read_csv(REPO / "docs" / "uci_protocol" / "summary.csv")
    coverage = summary.groupby("model")["coverage_90"].mean()
    stated = re.search(r"the mean 90% coverage is ([0-9.]+) \(bnn\), ([0-9.]+) \(dropout\) and ([0-9.]+) "
                       r"\(ensemble\), no set below 0\.75", paragraph())
    assert stated, paragraph()
    assert list(stated.groups()) == [f"{coverage[model]:.2f}" for model in ("bnn", "dropout", "ensemble")]
    assert summary["coverage_90"].min() >= 0.75
    bnn = summary[summary.model == "bnn"]
    reached = int((bnn["ll_minus_published"] >= 0).sum())
    assert f"reaches MC dropout's published one on only {reached} of {len(bnn)} sets" in paragraph()
    trailing = sorted(bnn.loc[bnn["rmse_over_published"] > 1.1, "dataset"])
    assert f"its RMSE trails on {' and '.join(trailing)}" in paragraph()


def test_the_benchmark_coverage_figures_are_the_committed_tables():
    summary = pd.read_csv(REPO / "docs" / "benchmark" / "summary.csv")
    random = summary[summary.sampler == "random"].groupby("model")["final_coverage_90"].mean()
    stated = re.search(r"random selection's runs: bnn ([0-9.]+), dropout ([0-9.]+), ensemble ([0-9.]+)", paragraph())
    assert stated, paragraph()
    assert list(stated.groups()) == [f"{random[model]:.2f}" for model in ("bnn", "dropout", "ensemble")]
    loop = pd.read_csv(REPO / "docs" / "al_calibration" / "coverage.csv")
    for model, part in loop.groupby("model"):
        before, after = part["coverage_raw"].mean(), part["coverage_calibrated"].mean()
        assert f"{model} {before:.2f} to {after:.2f}" in paragraph(), model


def test_every_interval_the_uci_protocol_page_quotes_is_in_a_generated_report():
    """docs/uci-protocol.md quotes paired gains and means as 'value ± half-width'; each must appear, up to
    its sign, in one of the generated reports it links (UCI protocol, validation, candidate, cost, AL)."""
    page = (REPO / "docs" / "uci-protocol.md").read_text()
    quoted = set(re.findall(r"[-+−]?(\d+\.\d+ ± \d+\.\d+)", page))
    reports = [*(REPO / "docs" / "uci_protocol").rglob("*.md"), REPO / "docs" / "recipe_change" / "report.md",
               REPO / "docs" / "al_calibration" / "coverage.md"]
    generated = " ".join(path.read_text() for path in reports)
    assert len(quoted) >= 10
    missing = sorted(value for value in quoted if value not in generated)
    assert not missing, f"quoted in docs/uci-protocol.md but in no generated report: {missing}"
