"""GPA against random selection on California housing (Tsymbalov et al. 2019's claim).

    python source/compare_gpa_rand.py [--seed 0 | --seeds 0 1 2 3 4] [--size-pool 0] [--size-test 0]
"""

from __future__ import annotations

import sys

from experiment_cli import Comparison, by_group, final_test_rmse_summary, main


def _title(results) -> str:
    parts = [f"{group}: final test RMSE {final_test_rmse_summary(runs)}" for group, runs in by_group(results).items()]
    return "GPA vs random, " + "; ".join(parts)


def _summary(results) -> list[str]:
    lines = [f"[{r.label}] final test RMSE {r.metrics[-1]['test_rmse']:.4f}, test log-lik "
             f"{r.metrics[-1]['test_log_likelihood']:.4f}, selection {r.total_selection_seconds:.1f} s"
             for r in results]
    lines += [f"{group}: final test RMSE {final_test_rmse_summary(runs)}" for group, runs in by_group(results).items()]
    return lines


COMPARISON = Comparison(
    description="Compare GPA and random selection on California housing.",
    default_configs=("configs/config_gpa.yaml", "configs/config_rand.yaml"),
    results_prefix="results_gpa_vs_rand",
    plot_file="gpa_vs_rand.png",
    title=_title,
    summarise=_summary,
)

if __name__ == "__main__":
    sys.exit(main(COMPARISON))
