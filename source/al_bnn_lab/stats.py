"""The lab's statistics in one place: Student-t intervals of a mean, paired tests, Holm's
step-down correction, and the study's recommendation as a set with its stability.

Every report of the lab (study, model benchmark, UCI protocol, plots) takes its intervals from
here, so one value means one thing everywhere. Conventions, tested in tests/test_study_stats.py:

- Non-finite values are dropped before anything is computed; ``count`` is the number left.
- No values: mean and half-width nan. One value: the mean is that value and the half-width (and
  the standard error, and the p-value) is nan, because one value says nothing about spread; a
  verdict from it is "unclear". Plots draw such a band with zero width (plotting.mean_and_band).
- Two or more equal values: half-width 0; the p-value is 0 when the mean differs from zero and
  1 when it is zero, so "the interval excludes zero" and "p < 1 - level" always agree.
- Intervals are two-sided at ``level`` (default 0.95); a paired test is the one-sample t-test of
  the differences against zero, and its p-value is below 1 - level exactly when the interval
  excludes zero.

Pure NumPy/SciPy/pandas; no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LEVEL = 0.95


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values, as float64 (the convention: non-finite values are dropped)."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def t_quantile(count: int | np.ndarray, level: float = LEVEL) -> np.ndarray | float:
    """Two-sided Student-t quantile for the mean of `count` values (nan below two)."""
    from scipy.stats import t

    count = np.asarray(count, dtype=float)
    quantile = np.where(count >= 2, t.ppf(0.5 + level / 2, np.maximum(count - 1, 1)), np.nan)
    return float(quantile) if quantile.ndim == 0 else quantile


def standard_error(values: Sequence[float] | np.ndarray) -> float:
    """Sample standard deviation over sqrt(count); nan below two finite values."""
    values = finite(values)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) >= 2 else float("nan")


def mean_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(mean, half-width) of the Student-t interval of the mean; see the module's conventions."""
    values = finite(values)
    if len(values) < 2:
        return (float(values.mean()) if len(values) else float("nan")), float("nan")
    # this order of operations (t * sd / sqrt(n)) is the one the committed tables were computed with
    return float(values.mean()), float(t_quantile(len(values), level) * values.std(ddof=1) / math.sqrt(len(values)))


def interval_bounds(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high) of the same interval."""
    mean, half = mean_interval(values, level)
    return mean, mean - half, mean + half


def column_half_widths(curves: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Half-widths of the interval of the mean over axis 0 (runs), column by column (the bands of
    learning curves); nan everywhere below two runs."""
    curves = np.asarray(curves, dtype=float)
    count = curves.shape[0]
    if count < 2:
        return np.full(curves.shape[1:], np.nan)
    return t_quantile(count, level) * curves.std(axis=0, ddof=1) / math.sqrt(count)


def prediction_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(low, high) of the Student-t prediction interval for one more value drawn like `values`:
    mean +- t * sd * sqrt(1 + 1/n), the interval of the mean widened by sqrt(n + 1)."""
    values = finite(values)
    mean, half = mean_interval(values, level)
    half *= math.sqrt(len(values) + 1)
    return mean - half, mean + half


def paired_p_value(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of the paired t-test (the differences' mean against zero); see the
    module's conventions for one value and for no spread."""
    from scipy.stats import t

    values = finite(differences)
    if len(values) < 2:
        return float("nan")
    error = standard_error(values)
    mean = float(values.mean())
    if error == 0:
        return 0.0 if mean != 0 else 1.0
    return float(2 * t.sf(abs(mean) / error, len(values) - 1))


def verdict(differences: Sequence[float] | np.ndarray, level: float = LEVEL) -> str:
    """'lower', 'higher' or 'unclear': where the interval of the mean difference lies."""
    mean, half = mean_interval(differences, level)
    if not math.isfinite(half):
        return "unclear"
    if mean + half < 0:
        return "lower"
    if mean - half > 0:
        return "higher"
    return "unclear"


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, the i-th (from 0) of m tests gets
    max over j <= i of min(1, (m - j) p_(j)). A nan p-value (a test that could not be made) stays
    nan and does not count in m. Rejecting where the adjusted value is below alpha controls the
    family-wise error rate at alpha."""
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full(p_values.shape, np.nan)
    present = np.flatnonzero(np.isfinite(p_values))
    order = present[np.argsort(p_values[present], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def signed_verdict(mean: float, p_value: float, alpha: float = 1 - LEVEL) -> str:
    """'lower'/'higher' when p_value < alpha (by the sign of the mean), else 'unclear'."""
    if not (math.isfinite(p_value) and p_value < alpha and math.isfinite(mean)) or mean == 0:
        return "unclear"
    return "lower" if mean < 0 else "higher"


# -- verdicts per dataset, corrected ------------------------------------------------------------------

def paired_tests(differences: Mapping[tuple[str, str], Sequence[float]], level: float = LEVEL) -> pd.DataFrame:
    """One row per (method, dataset) key: the mean of its paired differences, the uncorrected
    verdict and p-value, and Holm-adjusted p-values and verdicts in two families: all tests
    together (`holm_all`) and each method's tests over datasets (`holm_method`)."""
    rows = []
    for (method, dataset), values in differences.items():
        mean, half = mean_interval(values, level)
        rows.append(dict(method=method, dataset=dataset, count=len(finite(values)), mean=mean, half_width=half,
                         p_value=paired_p_value(values), verdict=verdict(values, level)))
    frame = pd.DataFrame(rows, columns=["method", "dataset", "count", "mean", "half_width", "p_value", "verdict"])
    alpha = 1 - level
    frame["p_holm_all"] = holm(frame["p_value"].to_numpy())
    frame["p_holm_method"] = np.nan
    for _, index in frame.groupby("method", sort=False).groups.items():
        frame.loc[index, "p_holm_method"] = holm(frame.loc[index, "p_value"].to_numpy())
    for family in ("all", "method"):
        frame[f"verdict_holm_{family}"] = [signed_verdict(m, p, alpha)
                                           for m, p in zip(frame["mean"], frame[f"p_holm_{family}"], strict=True)]
    return frame


def verdict_counts(tests: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per method: how many datasets are 'lower' / 'unclear' / 'higher' by `column`, and which."""
    rows = []
    for method, part in tests.groupby("method", sort=False):
        row = {"method": method}
        for word in ("lower", "unclear", "higher"):
            names = list(part[part[column] == word]["dataset"])
            row[word], row[f"{word}_datasets"] = len(names), names
        rows.append(row)
    return pd.DataFrame(rows)


# -- the recommendation as a set ----------------------------------------------------------------------

@dataclass
class RecommendationSet:
    """The methods not distinguishable from the best over datasets, and the default inside."""

    best: str                                # lowest mean over datasets
    members: list[str]                       # best first, then by mean
    excluded: list[str]                      # distinguishable from the best (clearly worse than it)
    comparisons: pd.DataFrame                # per method: mean difference to the best, interval, p, Holm p
    default: str | None = None               # chosen inside the set by the secondary criterion
    reason: str = ""                         # which criterion decided
    tiers: dict[str, list[str]] = field(default_factory=dict)


def recommendation_set(values: pd.DataFrame, level: float = LEVEL, candidates: Sequence[str] | None = None,
                       correction: str = "holm") -> RecommendationSet:
    """values: datasets x methods (one number per dataset and method, lower is better, e.g. mean
    log RMSE over seeds). The best is the method with the lowest mean over datasets; every other
    method is paired with it over datasets (one-sample t-test of the per-dataset differences) and
    stays in the set unless it is clearly worse: with correction="holm" (the default) after Holm's
    correction over these comparisons, with "none" each test alone. `candidates` restricts which
    methods may be the best or members (default: every column)."""
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    columns = list(values.columns if candidates is None else candidates)
    part = values[columns].dropna()
    means = part.mean().sort_values(kind="stable")
    best = str(means.index[0])
    rows = []
    for method in means.index[1:]:
        difference = (part[method] - part[best]).to_numpy()
        mean, half = mean_interval(difference, level)
        rows.append(dict(method=method, datasets=len(difference), difference=mean, half_width=half,
                         p_value=paired_p_value(difference)))
    comparisons = pd.DataFrame(rows, columns=["method", "datasets", "difference", "half_width", "p_value"])
    comparisons["p_holm"] = holm(comparisons["p_value"].to_numpy())
    decisive = comparisons["p_holm" if correction == "holm" else "p_value"]
    comparisons["distinguishable"] = [signed_verdict(m, p, 1 - level) == "higher"
                                      for m, p in zip(comparisons["difference"], decisive, strict=True)]
    excluded = list(comparisons[comparisons["distinguishable"]]["method"])
    members = [m for m in means.index if m not in excluded]
    return RecommendationSet(best, [str(m) for m in members], [str(m) for m in excluded], comparisons)


def choose_default(members: Sequence[str], every_model: Callable[[str], bool],
                   cost: Mapping[str, float] | None = None) -> tuple[str, str]:
    """The default inside the set: first the members that run on every model, then the cheapest of
    them by `cost` (seconds per selection; a member without a cost counts as the most expensive),
    ties kept in the set's order. Returns (default, the criterion that decided)."""
    if not members:
        raise ValueError("an empty recommendation set has no default")
    general = [m for m in members if every_model(m)]
    pool, reason = (general, "runs on every model") if general else (list(members), "no member runs on every model")
    if len(pool) == 1:
        return pool[0], reason
    if cost:
        cheapest = min(pool, key=lambda m: (cost.get(m, math.inf), pool.index(m)))
        if math.isfinite(cost.get(cheapest, math.inf)):
            return cheapest, reason + ", then the lowest selection cost"
    return pool[0], reason + ", then the lowest mean"


def leave_one_out(datasets: Sequence[str], choose: Callable[[list[str]], str | None]) -> dict[str, list[str]]:
    """Stability of a choice: `choose` applied to the datasets with each one left out in turn.
    Returns choice -> the left-out datasets that gave it, most frequent first."""
    outcomes: dict[str, list[str]] = {}
    for left_out in datasets:
        outcome = choose([d for d in datasets if d != left_out])
        outcomes.setdefault(str(outcome), []).append(left_out)
    return dict(sorted(outcomes.items(), key=lambda item: -len(item[1])))


# -- several statistics side by side ------------------------------------------------------------------

def rankings(statistics: Mapping[str, pd.Series]) -> pd.DataFrame:
    """statistic name -> per-method values (lower is better): methods x statistics of ranks (1 =
    best; ties share the lower rank), in the first statistic's order."""
    frame = pd.DataFrame({name: values.rank(method="min").astype(int) for name, values in statistics.items()})
    first = next(iter(statistics))
    return frame.sort_values(first, kind="stable")


def rankings_agree(ranks: pd.DataFrame) -> bool:
    """Whether every statistic ranks the methods in the same order."""
    return bool((ranks.nunique(axis=1) == 1).all())


def rank_moves(ranks: pd.DataFrame, reference: str) -> dict[str, list[tuple[str, int, int]]]:
    """Per other statistic: the methods whose rank differs from `reference`'s, as (method,
    reference rank, its rank)."""
    return {name: [(str(m), int(ranks.loc[m, reference]), int(ranks.loc[m, name])) for m in ranks.index
                   if ranks.loc[m, name] != ranks.loc[m, reference]]
            for name in ranks.columns if name != reference}
