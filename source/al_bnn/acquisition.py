"""The selection entry point: one selection from a trained model, what the experiment loop, the
ask/tell learner (ActiveLearner) and Selector all call. It hands the run's sampler the kernel it
declares (function samples or features, anchors first; al_bnn.kernels), checks its picks and
times it, and runs the reference selections of `parms.compare_with` on the same inputs.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from al_bnn.kernels import KernelSource
from al_bnn.models.protocol import Model
from al_bnn.randomness import numpy_generator
from al_bnn.selection import SelectionRequest, check_selection
from al_bnn.selection.comparison import agreement, reference_sampler


class ModelSelection(NamedTuple):
    """What one selection from a model gives: the picks (indices into the pool part of `order`, in
    pick order), the seconds taken (drawing included), the pick comparisons of `parms.compare_with`,
    and each pick's score if the sampler reports one (GPA: posterior variance when picked), else None."""

    picks: np.ndarray
    seconds: float
    comparisons: dict
    scores: np.ndarray | None


def select_with_model(network: Model, run_index: int, parms, sampler, x: np.ndarray,
                      order: np.ndarray, n_train: int, n_select: int, seed: int,
                      phase: int) -> ModelSelection:
    """One selection from a model: what the loop and the ask/tell learner both call.

    x holds every point the model is evaluated at; x[order[:n_train]] are the training (anchor)
    points and x[order[n_train:]] the pool. The sampler gets its kernel (al_bnn.kernels: the
    registered kernel it names, or the one its `needs` implies) from run `run_index`: function
    samples keyed by (seed, phase, draw) for "mc", else a feature matrix (e.g. gradient features
    with the sketch keyed by (seed, phase), width parms.family_sketch_dim), anchors first. Returns a
    ModelSelection. An identity `order` (x already anchors first) is used without copying x's
    samples or features."""
    started = time.perf_counter()
    n_pool = len(order) - n_train
    request = SelectionRequest(n_select=n_select, n_train=n_train, n_pool=n_pool,
                               rng=numpy_generator(seed, "selection", phase))
    # the one place a kernel is computed: each once per selection, so the references below reuse
    # the sampler's own draw (identical samples) or features
    kernels = KernelSource(network, x, order, run_index, parms, seed, phase)
    kernels.provide(request, sampler, parms.sample_policy)
    picks = check_selection(sampler.select(request), request, parms.sample_policy)
    seconds = time.perf_counter() - started
    scores = None if request.scores is None else np.asarray(request.scores, dtype=np.float64).copy()
    comparisons = {}
    for name in parms.compare_with:
        reference_gpa = reference_sampler(name, parms.sampling_batch_size, parms.gp_noise)
        # hand it what it needs, made before the timer starts
        kernels.provide(request, reference_gpa, name, prefetch=True)
        reference_started = time.perf_counter()
        reference = reference_gpa.select(request)
        comparisons[f"seconds_{name}"] = time.perf_counter() - reference_started
        result = agreement(picks, reference, parms.sampling_batch_size)
        comparisons[f"overlap_{name}"] = result.overlap
        comparisons[f"agreed_{name}"] = result.agreed_picks
        comparisons[f"in_order_{name}"] = result.in_order
    return ModelSelection(picks, seconds, comparisons, scores)
