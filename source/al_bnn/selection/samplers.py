"""The published samplers: random, batch GPA (bgpa) and fast GPA (gpa)."""

from __future__ import annotations

import numpy as np

from al_bnn.selection.base import SelectionRequest
from al_bnn.selection.family import DEFAULT_MODES, METHODS, select_batch, transform_features
from al_bnn.selection.gpa_math import (
    centred_sample_factor,
    sample_scale_exponent,
    select_gpa_batch_resampled,
    select_gpa_from_factor,
    top_by_variance,
)
from al_bnn.selection.scaling import check_n_select, rescale_noise, scale_exponent


def _narrowed(values, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Features as `dtype`, divided first by 2^e when their scale lies outside its safe range
    (al_bnn.selection.scaling): features of 1e-200 would be zeros in float32. Returns (features, e)."""
    values = np.asarray(values)
    exponent = scale_exponent(values, dtype) if np.issubdtype(values.dtype, np.floating) and values.size and \
        np.isfinite(values.min()) and np.isfinite(values.max()) else 0
    if exponent:
        return np.ldexp(values, -exponent).astype(dtype), exponent
    return np.asarray(values, dtype=dtype), 0


class RandomSampler:
    """Uniformly random pool points, without replacement."""

    needs = "nothing"

    def select(self, request: SelectionRequest) -> np.ndarray:
        check_n_select(request.n_select, request.n_pool)
        return request.rng.choice(request.n_pool, size=request.n_select, replace=False)


class GpaSampler:
    """GPA (Tsymbalov et al. 2019): greedy batches by GP posterior variance.

    kernel="mc" uses the covariance of function samples; kernel="exact" the closed-form features; any
    other registered kernel (al_bnn.registry) its features, which the caller provides (al_bnn.kernels).
    method="fast" updates the dense posterior covariance (the thesis's fast GPA); "batch" re-solves
    every round; "lowrank" works in the kernel's r-dimensional feature space (same picks, no
    n x n matrix). resample_every_round (batch only, mc only) redraws the samples every round,
    as the thesis's batch GPA did. dtype is the precision of the selection math.
    """

    def __init__(self, method: str = "fast", batch_size: int = 10, noise: float = 0.01,
                 kernel: str = "mc", resample_every_round: bool = False, dtype: str = "float64"):
        if not isinstance(kernel, str) or not kernel:
            raise ValueError(f"kernel must be a registered kernel's name such as 'mc' or 'exact', got {kernel!r}")
        if resample_every_round and (method != "batch" or kernel != "mc"):
            raise ValueError("resample_every_round needs method='batch' and kernel='mc'")
        self.method, self.batch_size, self.noise = method, batch_size, noise
        self.kernel, self.resample_every_round = kernel, resample_every_round
        self.dtype = np.dtype(dtype)
        self.needs = "samples" if kernel == "mc" else "features"  # the "mc" kernel is given as its samples

    @classmethod
    def from_parms(cls, method: str, parms) -> GpaSampler:
        return cls(method, parms.sampling_batch_size, parms.gp_noise, parms.gpa_kernel,
                   parms.resample_every_round if method == "batch" else False, parms.gpa_dtype)

    def _factor(self, request: SelectionRequest, draw: int, exponent: int | None = None) -> tuple[np.ndarray, int]:
        """The kernel factor in self.dtype divided by 2^e (e: the first draw's, or `exponent`), and e."""
        if self.needs == "features":
            if exponent is None:
                factor, exponent = _narrowed(request.features, self.dtype)
                return np.ascontiguousarray(factor), exponent
            return np.ascontiguousarray(np.ldexp(np.asarray(request.features), -exponent), dtype=self.dtype), exponent
        assert request.draw_samples is not None  # provided: needs == "samples" for the mc kernel
        samples = request.draw_samples(draw)
        exponent = sample_scale_exponent(samples, self.dtype) if exponent is None else exponent
        return centred_sample_factor(samples, self.dtype, exponent), exponent

    def select(self, request: SelectionRequest) -> np.ndarray:
        check_n_select(request.n_select, request.n_pool)
        factor, exponent = self._factor(request, 0)
        # a factor rescaled by 2^-e (samples of 1e-200 in float32): the noise alike, the scores back
        noise = rescale_noise(self.noise, exponent, factor.shape[1]) if self.noise > 0 else self.noise
        if not self.resample_every_round:
            result = select_gpa_from_factor(factor, request.n_train, request.n_select, self.batch_size, noise,
                                            self.method)
        else:
            result = select_gpa_batch_resampled(
                lambda round_index: factor if round_index == 0 else self._factor(request, round_index, exponent)[0],
                request.n_train, request.n_select, self.batch_size, noise)
        with np.errstate(over="ignore", under="ignore"):  # in the samples' units, as far as float64 goes
            request.scores = np.ldexp(np.asarray(result.variances, dtype=np.float64), 2 * exponent)
        return result.indices


class McdueSampler:
    """MCDUE (Tsymbalov et al. 2018): the pool points of largest Monte-Carlo variance of the
    function samples, all at once, with no posterior update between picks."""

    needs = "samples"

    def select(self, request: SelectionRequest) -> np.ndarray:
        check_n_select(request.n_select, request.n_pool)
        assert request.draw_samples is not None  # provided: needs == "samples"
        pool_samples = np.asarray(request.draw_samples(0))[:, request.n_train:]
        variance = pool_samples.var(axis=0, dtype=np.float64)
        picks = top_by_variance(variance, np.zeros(request.n_pool, dtype=bool), request.n_select)
        request.scores = variance[picks]
        return picks


FAMILY_KERNELS = ("mc", "exact", "grad")  # the shipped ones; any registered kernel is accepted


class FamilySampler:
    """One method of the selection family (al_bnn.selection.family) on the model's kernel features.

    kernel: "mc" (centred function samples / sqrt(T)), "exact" (closed-form features), "grad"
    (the model's sketched gradient features, already at most sketch_dim wide) or any other
    registered kernel's features (al_bnn.registry; the caller provides them). The features go
    through transform_features (sketch to sketch_dim when wider, then the posterior
    given the training set with `noise` when transform="train") and then select_batch.
    mode/transform "auto" take the paper's choice for the method.
    """

    def __init__(self, method: str, kernel: str = "mc", mode: str = "auto", transform: str = "auto",
                 sketch_dim: int = 512, noise: float = 0.01, dtype: str = "float64"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not isinstance(kernel, str) or not kernel:
            raise ValueError(f"kernel must be a registered kernel's name such as {', '.join(FAMILY_KERNELS)}, "
                             f"got {kernel!r}")
        if transform not in ("auto", "none", "train"):
            raise ValueError(f"transform must be 'auto', 'none' or 'train', got {transform!r}")
        self.method, self.kernel, self.noise, self.sketch_dim = method, kernel, noise, sketch_dim
        self.mode = DEFAULT_MODES[method] if mode == "auto" else mode
        if transform == "auto":
            transform = "train" if method in ("maxdiag", "maxdet", "bait") else "none"
        self.transform = transform
        self.dtype = np.dtype(dtype)
        self.needs = {"mc": "samples", "grad": "gradient_features"}.get(kernel, "features")

    @classmethod
    def from_parms(cls, method: str, parms) -> FamilySampler:
        return cls(method, parms.family_kernel, parms.family_mode, parms.family_transform, parms.family_sketch_dim,
                   parms.gp_noise, parms.gpa_dtype)

    def select(self, request: SelectionRequest) -> np.ndarray:
        check_n_select(request.n_select, request.n_pool)
        if self.needs == "features":
            features, exponent = _narrowed(request.features, self.dtype)
        elif self.needs == "gradient_features":
            features, exponent = _narrowed(request.gradient_features, self.dtype)
        else:
            assert request.draw_samples is not None  # provided: needs == "samples" for the mc kernel
            samples = request.draw_samples(0)
            exponent = sample_scale_exponent(samples, self.dtype)
            features = centred_sample_factor(samples, self.dtype, exponent)
        # features rescaled by 2^-e (far from 1: e.g. 1e-200, zeros in float32): the noise alike
        noise = rescale_noise(self.noise, exponent, features.shape[1]) if self.noise > 0 else self.noise
        sketch_seed = int(request.rng.integers(2**31)) if 0 < self.sketch_dim < features.shape[1] else 0
        features = transform_features(features, request.n_train, sketch_dim=self.sketch_dim, seed=sketch_seed,
                                      posterior_noise=noise if self.transform == "train" else None)
        return select_batch(features, request.n_train, request.n_select, self.method, mode=self.mode,
                            noise=noise, random_state=request.rng)
