"""The two published comparisons (Tsymbalov et al. 2019; the 2021 thesis), as the scripts
`source/compare_gpa_rand.py` and `source/compare_fastgpa_batchgpa.py` run them."""

from __future__ import annotations

from collections.abc import Sequence

from al_bnn_lab.comparison import Comparison, by_group, final_test_rmse_summary, main, shared_selection_count


def _title_gpa_rand(results) -> str:
    parts = [f"{group}: final test RMSE {final_test_rmse_summary(runs)}" for group, runs in by_group(results).items()]
    several = " (geometric mean [95% interval] over seeds)" if len(results) > len(by_group(results)) else ""
    return "GPA vs random, " + "; ".join(parts) + several


def _summary_gpa_rand(results) -> list[str]:
    lines = [f"[{r.label}] final test RMSE {r.metrics[-1]['test_rmse']:.4f}, test log-lik "
             f"{r.metrics[-1]['test_log_likelihood']:.4f}, selection {r.total_selection_seconds:.1f} s"
             for r in results]
    lines += [f"{group}: final test RMSE {final_test_rmse_summary(runs)}" for group, runs in by_group(results).items()]
    return lines


GPA_RAND = Comparison(
    description="Compare GPA and random selection on California housing.",
    default_configs=("configs/config_gpa.yaml", "configs/config_rand.yaml"),
    results_prefix="results_gpa_vs_rand",
    plot_file="gpa_vs_rand.png",
    title=_title_gpa_rand,
    summarise=_summary_gpa_rand,
)


def _shared_fgpa_bgpa(results) -> tuple[int, int]:
    """Selected points the first two compared samplers share, summed over seeds, and the total."""
    first, second = list(by_group(results).values())[:2]
    shared = sum(shared_selection_count(a, b) for a, b in zip(first, second, strict=True))
    return shared, sum(len(run.selected) for run in first)


def _selection_times_fgpa_bgpa(results) -> str:
    return ", ".join(f"{group} {sum(r.total_selection_seconds for r in runs) / len(runs):.2f} s"
                     for group, runs in by_group(results).items())


def _title_fgpa_bgpa(results) -> str:
    shared, total = _shared_fgpa_bgpa(results)
    per_seed = " per seed" if len(results) > 2 else ""
    return (f"Fast vs batch GPA. Total selection time{per_seed}: {_selection_times_fgpa_bgpa(results)}. "
            f"Shared picks: {shared}/{total}")


def _summary_fgpa_bgpa(results) -> list[str]:
    lines = [f"[{r.label}] total selection time {r.total_selection_seconds:.2f} s, final test RMSE "
             f"{r.metrics[-1]['test_rmse']:.4f}" for r in results]
    shared, total = _shared_fgpa_bgpa(results)
    first, second = list(by_group(results))[:2]
    lines.append(f"{first} and {second} share {shared} of {total} selected points")
    return lines


FGPA_BGPA = Comparison(
    description="Compare fast GPA and batch GPA on California housing (small configs).",
    default_configs=("configs/config_small_fgpa.yaml", "configs/config_small_bgpa.yaml"),
    results_prefix="results_fgpa_vs_bgpa",
    plot_file="fgpa_vs_bgpa.png",
    title=_title_fgpa_bgpa,
    summarise=_summary_fgpa_bgpa,
)


def compare_gpa_rand(argv: Sequence[str] | None = None) -> int:
    """GPA against random selection on California housing (console command al-bnn-compare-gpa-rand)."""
    return main(GPA_RAND, argv)


def compare_fastgpa_batchgpa(argv: Sequence[str] | None = None) -> int:
    """Fast GPA against batch GPA (console command al-bnn-compare-fastgpa-batchgpa)."""
    return main(FGPA_BGPA, argv)
