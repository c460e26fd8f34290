"""The selection entry point: one selection from a trained model, what the experiment loop, the
ask/tell learner (ActiveLearner) and Selector all call. It hands the run's sampler what it declares
it needs (function samples, features or gradient features, anchors first), checks its picks and
times it, and runs the reference selections of `parms.compare_with` on the same inputs.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from al_bnn.models import StackedDenseNetwork
from al_bnn.models.gradient_features import gradient_features
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


def select_with_model(network: StackedDenseNetwork, run_index: int, parms, sampler, x: np.ndarray,
                      order: np.ndarray, n_train: int, n_select: int, seed: int,
                      phase: int) -> ModelSelection:
    """One selection from a model: what the loop and the ask/tell learner both call.

    x holds every point the model is evaluated at; x[order[:n_train]] are the training (anchor)
    points and x[order[n_train:]] the pool. The sampler gets function samples of run `run_index`
    keyed by (seed, phase, draw), its features, or its gradient features (sketch keyed by (seed,
    phase), width parms.family_sketch_dim), anchors first. Returns a ModelSelection. An
    identity `order` (x already anchors first) is used without copying x's samples or features."""
    started = time.perf_counter()
    n_pool = len(order) - n_train
    request = SelectionRequest(n_select=n_select, n_train=n_train, n_pool=n_pool,
                               rng=numpy_generator(seed, "selection", phase))
    drawn: dict[int, np.ndarray] = {}  # the references reuse the sampler's draw: identical samples
    identity = len(order) == len(x) and bool(np.all(order == np.arange(len(x))))

    def draw_samples(draw: int) -> np.ndarray:
        if draw not in drawn:
            samples = network.function_samples(x, parms.n_mc_samples, (phase, draw), mode=parms.function_samples,
                                               run=run_index)
            drawn[draw] = samples if identity else samples[:, order]
        return drawn[draw]

    def features() -> np.ndarray:
        values = network.features(x, run=run_index).numpy()
        return values if identity else values[order]

    if sampler.needs == "samples":
        request.draw_samples = draw_samples
    elif sampler.needs == "features":
        request.features = features()
    elif sampler.needs == "gradient_features":
        # the sketch is keyed by (run seed, phase); the rows are permuted after, so the same point
        # gets the same features whatever its place in `order`
        values = gradient_features(network, x, run_index, sketch_dim=parms.family_sketch_dim, seed=seed,
                                   counter=phase, dtype=parms.gpa_dtype)
        request.gradient_features = values if identity else values[order]
    picks = check_selection(sampler.select(request), request, parms.sample_policy)
    seconds = time.perf_counter() - started
    scores = None if request.scores is None else np.asarray(request.scores, dtype=np.float64).copy()
    comparisons = {}
    for name in parms.compare_with:
        reference_gpa = reference_sampler(name, parms.sampling_batch_size, parms.gp_noise)
        # hand it what it needs, made before the timer starts: the sampler's own draw (cached) or
        # the features (computed once, shared with the sampler when it used them too)
        if reference_gpa.needs == "samples":
            request.draw_samples = draw_samples
            draw_samples(0)
        elif request.features is None:
            request.features = features()
        reference_started = time.perf_counter()
        reference = reference_gpa.select(request)
        comparisons[f"seconds_{name}"] = time.perf_counter() - reference_started
        result = agreement(picks, reference, parms.sampling_batch_size)
        comparisons[f"overlap_{name}"] = result.overlap
        comparisons[f"agreed_{name}"] = result.agreed_picks
        comparisons[f"in_order_{name}"] = result.in_order
    return ModelSelection(picks, seconds, comparisons, scores)
