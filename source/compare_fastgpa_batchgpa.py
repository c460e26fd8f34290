"""Fast GPA (rank-b covariance updates) against batch GPA (fresh solves): same picks, less time.

    python source/compare_fastgpa_batchgpa.py [--seed 0 | --seeds 0 1 2] [--size-pool 0] [--size-test 0]
"""

from __future__ import annotations

import sys

from experiment_cli import Comparison, by_group, main, shared_selection_count


def _shared(results) -> tuple[int, int]:
    """Selected points the first two compared samplers share, summed over seeds, and the total."""
    first, second = list(by_group(results).values())[:2]
    shared = sum(shared_selection_count(a, b) for a, b in zip(first, second, strict=True))
    return shared, sum(len(run.selected) for run in first)


def _selection_times(results) -> str:
    return ", ".join(f"{group} {sum(r.total_selection_seconds for r in runs) / len(runs):.2f} s"
                     for group, runs in by_group(results).items())


def _title(results) -> str:
    shared, total = _shared(results)
    per_seed = " per seed" if len(results) > 2 else ""
    return (f"Fast vs batch GPA. Total selection time{per_seed}: {_selection_times(results)}. "
            f"Shared picks: {shared}/{total}")


def _summary(results) -> list[str]:
    lines = [f"[{r.label}] total selection time {r.total_selection_seconds:.2f} s, final test RMSE "
             f"{r.metrics[-1]['test_rmse']:.4f}" for r in results]
    shared, total = _shared(results)
    first, second = list(by_group(results))[:2]
    lines.append(f"{first} and {second} share {shared} of {total} selected points")
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
