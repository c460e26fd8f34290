"""Kernels from a model, by name: the shipped kernel functions (registered in al_bnn.registry as
"mc", "exact" and "grad") and KernelSource, the one place where a sampler's declared kernel
becomes what its SelectionRequest carries.

A sampler names its kernel in a `kernel` attribute (GpaSampler and FamilySampler take it from
parms.gpa_kernel / parms.family_kernel); a sampler that declares only `needs` gets the kernel that
need has always meant: "samples" -> mc, "features" -> exact, "gradient_features" -> grad.
Every kernel's rows are the points of x in `order` (training anchors first, then the pool), and
each is computed at most once per selection (the reference selections of parms.compare_with reuse
the sampler's draw or features).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from al_bnn.models.gradient_features import gradient_features
from al_bnn.models.protocol import Model
from al_bnn.registry import kernel_entry
from al_bnn.selection import SelectionRequest

LEGACY_KERNELS = {"samples": "mc", "features": "exact", "gradient_features": "grad"}


def mc_samples(network: Model, x: np.ndarray, run: int, parms: Any, seed: int, phase: int,
               draw: int = 0) -> np.ndarray:
    """The "mc" kernel: (T, n) function samples of run `run`, keyed by (run seed, phase, draw)."""
    return network.function_samples(x, parms.n_mc_samples, (phase, draw), mode=parms.function_samples, run=run)


def exact_features(network: Model, x: np.ndarray, run: int, parms: Any, seed: int, phase: int) -> np.ndarray:
    """The "exact" kernel: the model's closed-form features (n, width) of run `run`."""
    return np.asarray(network.features(x, run=run))


def gradient_kernel_features(network: Any, x: np.ndarray, run: int, parms: Any, seed: int,
                             phase: int) -> np.ndarray:
    """The "grad" kernel: sketched gradient features of the mean output (n, <= family_sketch_dim),
    the sketch keyed by (run seed, phase), stored in parms.gpa_dtype."""
    return gradient_features(network, x, run, sketch_dim=parms.family_sketch_dim, seed=seed, counter=phase,
                             dtype=parms.gpa_dtype)


def kernel_of(sampler: Any) -> str | None:
    """The registered kernel a sampler asks for (None: it needs no kernel)."""
    if sampler.needs == "nothing":
        return None
    name = getattr(sampler, "kernel", None)
    return name if isinstance(name, str) else LEGACY_KERNELS[sampler.needs]


def kernel_needing_model_features(sampler: Any) -> str | None:
    """The sampler's kernel when it is one that only models with closed-form features give ("exact"),
    else None: what the estimator-facing entry points check before selecting."""
    name = kernel_of(sampler)
    return name if name is not None and kernel_entry(name).needs_model_features else None


class KernelSource:
    """The kernels of one model state for one selection: run `run` of `network` at x, rows in
    `order`, keyed by the run's `seed` and the `phase`; each kernel (and each draw) computed once.
    An identity `order` (x already anchors first) is used without copying."""

    def __init__(self, network: Model, x: np.ndarray, order: np.ndarray, run: int, parms: Any, seed: int,
                 phase: int):
        self.network, self.x, self.order, self.run = network, x, order, run
        self.parms, self.seed, self.phase = parms, seed, phase
        self.identity = len(order) == len(x) and bool(np.all(order == np.arange(len(x))))
        self._samples: dict[tuple[str, int], np.ndarray] = {}
        self._features: dict[str, np.ndarray] = {}

    def samples(self, name: str, draw: int = 0) -> np.ndarray:
        """(T, n) function samples of a "samples" kernel, draw `draw`, columns in `order`."""
        if (name, draw) not in self._samples:
            values = kernel_entry(name).compute(self.network, self.x, self.run, self.parms, self.seed, self.phase,
                                                draw)
            self._samples[name, draw] = values if self.identity else values[:, self.order]
        return self._samples[name, draw]

    def features(self, name: str) -> np.ndarray:
        """(n, d) features of a "features" kernel, rows in `order` (computed on x, then permuted: a
        point's features do not depend on its place in `order`)."""
        if name not in self._features:
            values = kernel_entry(name).compute(self.network, self.x, self.run, self.parms, self.seed, self.phase)
            self._features[name] = values if self.identity else values[self.order]
        return self._features[name]

    def provide(self, request: SelectionRequest, sampler: Any, sampler_name: str, prefetch: bool = False) -> None:
        """Put into `request` what `sampler` needs of its kernel; with prefetch, draw 0 of a samples
        kernel is computed now (so that a timer started after this does not count it)."""
        name = kernel_of(sampler)
        if name is None:
            return
        entry = kernel_entry(name, f"sampler {sampler_name!r}")
        if (entry.kind == "samples") != (sampler.needs == "samples"):
            raise ValueError(f"sampler {sampler_name!r} needs {sampler.needs!r} but its kernel {name!r} gives "
                             f"{entry.kind}; use a kernel of the other kind")
        if entry.kind == "samples":
            request.draw_samples = self._drawer(name)
            if prefetch:
                self.samples(name, 0)
        elif sampler.needs == "gradient_features":
            request.gradient_features = self.features(name)
        else:
            request.features = self.features(name)

    def _drawer(self, name: str) -> Callable[[int], np.ndarray]:
        return lambda draw: self.samples(name, draw)


__all__ = ["LEGACY_KERNELS", "KernelSource", "exact_features", "gradient_kernel_features",
           "kernel_needing_model_features", "kernel_of", "mc_samples"]
