"""Fast GPA (rank-b covariance updates) against batch GPA (fresh solves): same picks, less time.

    python source/compare_fastgpa_batchgpa.py [--seed 0] [--size-pool 0] [--size-test 0]
"""

from __future__ import annotations

import sys

from experiment_cli import Comparison, main, shared_selection_count


def _title(results) -> str:
    times = ", ".join(f"{r.label} {r.total_selection_seconds:.2f} s" for r in results)
    shared = shared_selection_count(*results[:2])
    return f"Fast vs batch GPA. Total selection time: {times}. Shared picks: {shared}/{len(results[0].selected)}"


def _summary(results) -> list[str]:
    lines = [f"[{r.label}] total selection time {r.total_selection_seconds:.2f} s, final test RMSE "
             f"{r.metrics[-1]['test_rmse']:.4f}" for r in results]
    shared = shared_selection_count(*results[:2])
    lines.append(f"{results[0].label} and {results[1].label} share {shared} of {len(results[0].selected)} "
                 "selected points")
    return lines


COMPARISON = Comparison(
    description="Compare fast GPA and batch GPA on California housing (small configs).",
    default_configs=("configs/config_small_fgpa.yaml", "configs/config_small_bgpa.yaml"),
    results_prefix="results_fgpa_vs_bgpa",
    plot_file="fgpa_vs_bgpa.png",
    title=_title,
    summarise=_summary,
)

if __name__ == "__main__":
    sys.exit(main(COMPARISON))
