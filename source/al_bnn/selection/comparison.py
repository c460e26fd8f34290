"""What another GPA variant would have picked from the same model state, and how far it agrees.

A run may name reference selections in `parms.compare_with`. At every acquisition each one is
computed from the very function samples (or features) the run's model gives at that moment, and
the loop records how far the run's own picks agree with it. Comparing on one model state is what
makes the numbers mean something: separate runs' training sets drift apart after their first
different pick, so their picks stop being comparable.

References, each made by a GpaSampler:
- "exact": low-rank GPA on the closed-form last-layer features in float64 (bnn only): the kernel
  that Monte-Carlo samples estimate.
- "<method>_<dtype>" (fast, batch, lowrank x float64, float32): GPA with that method and precision
  on the run's own function samples (draw 0 of the acquisition: the draw its sampler saw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from al_bnn.selection.samplers import GpaSampler

REFERENCE_SELECTIONS = ("exact", "fast_float64", "fast_float32", "batch_float64", "batch_float32",
                        "lowrank_float64", "lowrank_float32")


def reference_sampler(name: str, batch_size: int, noise: float) -> GpaSampler:
    """The sampler that makes the named reference selection; its `needs` says whether the
    request must carry the function samples or the features."""
    if name not in REFERENCE_SELECTIONS:
        raise ValueError(f"unknown reference selection {name!r}; choose from {', '.join(REFERENCE_SELECTIONS)}")
    if name == "exact":
        return GpaSampler("lowrank", batch_size, noise, kernel="exact")
    method, dtype = name.split("_")
    return GpaSampler(method, batch_size, noise, dtype=dtype)


@dataclass
class Agreement:
    """overlap: share of the run's picks the reference also made (order ignored).
    agreed_picks: picks made before the first greedy round whose set of points differs (so
    equal picks in a different order within a round still agree); len(picks) if none differs.
    in_order: leading picks identical in order. The order matters too: points join the training
    set in pick order, which decides the minibatches."""

    overlap: float
    agreed_picks: int
    in_order: int


def agreement(picks: np.ndarray, reference: np.ndarray, batch_size: int) -> Agreement:
    picks, reference = np.asarray(picks), np.asarray(reference)
    if picks.shape != reference.shape:
        raise ValueError(f"picks {picks.shape} and reference {reference.shape} differ in length")
    if len(picks) == 0:
        return Agreement(1.0, 0, 0)
    overlap = len(np.intersect1d(picks, reference)) / len(picks)
    agreed = len(picks)
    for start in range(0, len(picks), batch_size):
        if set(picks[start:start + batch_size].tolist()) != set(reference[start:start + batch_size].tolist()):
            agreed = start
            break
    differs = np.flatnonzero(picks != reference)
    return Agreement(float(overlap), agreed, int(differs[0]) if len(differs) else len(picks))
