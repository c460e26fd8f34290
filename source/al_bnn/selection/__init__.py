"""Samplers: pure NumPy on arrays, looked up by config name in one registry.

Register your own without editing the package (e.g. in a module passed with --plugins):

    from al_bnn.selection import register_sampler

    @register_sampler("my_sampler")
    def make_my_sampler(parms):          # parms: al_bnn.config.SamplingParameters
        return MySampler(...)            # an object with `needs` and `select(request)`
"""

from __future__ import annotations

from collections.abc import Callable

from al_bnn.selection.base import NEEDS, Sampler, SelectionRequest, check_selection
from al_bnn.selection.family import METHODS as FAMILY_METHODS
from al_bnn.selection.family import (
    posterior_features,
    scale_features,
    select_batch,
    sketch_features,
    transform_features,
)
from al_bnn.selection.gpa_math import GreedySelection, select_gpa, select_gpa_from_factor
from al_bnn.selection.samplers import FamilySampler, GpaSampler, McdueSampler, RandomSampler
from al_bnn.selection.scaling import SelectionRequestError

SamplerFactory = Callable[..., Sampler]
_REGISTRY: dict[str, SamplerFactory] = {}


def register_sampler(name: str, factory: SamplerFactory | None = None):
    """Register factory(parms) -> Sampler under `name`; usable as a decorator."""
    def add(factory: SamplerFactory) -> SamplerFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"a sampler named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory
    return add(factory) if factory is not None else add


def sampler_names() -> list[str]:
    return sorted(_REGISTRY)


def make_sampler(parms) -> Sampler:
    """Build the sampler a config's `parms` section names."""
    name = parms.sample_policy
    if name not in _REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; registered: {', '.join(sampler_names())}")
    sampler = _REGISTRY[name](parms)
    if getattr(sampler, "needs", None) not in NEEDS:
        raise TypeError(f"sampler {name!r} must declare `needs` as one of {NEEDS}")
    return sampler


register_sampler("random", lambda parms: RandomSampler())
register_sampler("mcdue", lambda parms: McdueSampler())
register_sampler("gpa", lambda parms: GpaSampler.from_parms("fast", parms))
register_sampler("bgpa", lambda parms: GpaSampler.from_parms("batch", parms))
register_sampler("lrgpa", lambda parms: GpaSampler.from_parms("lowrank", parms))
for _method in FAMILY_METHODS:
    register_sampler(_method, lambda parms, method=_method: FamilySampler.from_parms(method, parms))

__all__ = ["FAMILY_METHODS", "FamilySampler", "GpaSampler", "GreedySelection", "McdueSampler", "RandomSampler",
           "Sampler", "SelectionRequest", "SelectionRequestError", "check_selection", "make_sampler",
           "posterior_features", "register_sampler", "sampler_names", "scale_features", "select_batch", "select_gpa",
           "select_gpa_from_factor", "sketch_features", "transform_features"]
