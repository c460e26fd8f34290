"""The one interface every sampler implements, and what the loop hands it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from al_bnn.selection.scaling import check_n_select

NEEDS = ("nothing", "samples", "features", "gradient_features")


@dataclass
class SelectionRequest:
    """Everything a sampler may use to pick `n_select` points from the pool.

    Arrays put the training (anchor) points first and then the pool, in pool-index order:
    - draw_samples(draw) -> (T, n_train + n_pool) function samples, one weight draw per row;
      `draw` counts redraws within one acquisition (0 for the first), keying the randomness.
    - features -> (n_train + n_pool, width) closed-form kernel features, or None.
    - gradient_features -> (n_train + n_pool, d) sketched gradient features of the model's mean output
      (the finite-width NTK; al_bnn.models.gradient_features), keyed by the run seed and the phase,
      d <= parms.family_sketch_dim (0: exact gradients), or None.
    Only what the sampler declared in `needs` is provided; the rest is None.
    A sampler may set `scores` to one number per pick (in pick order): its own measure of how
    informative the pick was (GPA: the pick's GP posterior variance when it was picked).
    """

    n_select: int
    n_train: int
    n_pool: int
    rng: np.random.Generator
    draw_samples: Callable[[int], np.ndarray] | None = None
    features: np.ndarray | None = None
    gradient_features: np.ndarray | None = None
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        # every sampler, plug-ins included, gets a whole positive number of points it can pick
        self.n_select = check_n_select(self.n_select, self.n_pool)


class Sampler(Protocol):
    """Picks pool points; returns `n_select` unique indices into the pool (0..n_pool-1)."""

    needs: str  # one of NEEDS: a class attribute, or an instance attribute set from the config

    def select(self, request: SelectionRequest) -> np.ndarray: ...


def check_selection(indices: np.ndarray, request: SelectionRequest, sampler_name: str) -> np.ndarray:
    """Validate a sampler's answer at the boundary, so a buggy plug-in fails loudly."""
    indices = np.asarray(indices)
    if indices.shape != (request.n_select,) or not np.issubdtype(indices.dtype, np.integer):
        raise RuntimeError(f"sampler {sampler_name!r} returned {indices.shape} {indices.dtype} indices; "
                           f"expected {request.n_select} integers")
    if len(indices) and (indices.min() < 0 or indices.max() >= request.n_pool):
        raise RuntimeError(f"sampler {sampler_name!r} returned indices outside the pool [0, {request.n_pool})")
    if len(np.unique(indices)) != len(indices):
        raise RuntimeError(f"sampler {sampler_name!r} returned repeated pool indices")
    return indices.astype(np.int64)
