"""Stateless, named randomness: every draw is keyed by (run seed, purpose, counters).

A run's numbers therefore do not depend on what else runs in the process, and two runs with the
same seed (e.g. two samplers) see the same initial set, weights and data order until their
training sets differ. NumPy draws use SeedSequence; TensorFlow draws use stateless ops with a
seed derived here (tf_seed) and folded in with counters inside compiled code.
"""

from __future__ import annotations

import zlib

import numpy as np

# Purposes are identified by a stable 31-bit code of their name, so adding a purpose never
# shifts the streams of the others.


def purpose_code(purpose: str) -> int:
    return zlib.crc32(purpose.encode()) & 0x7FFFFFFF


def numpy_generator(seed: int, purpose: str, *counters: int) -> np.random.Generator:
    """A NumPy generator for one named purpose of one run (counters: AL iteration, round, ...)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), purpose_code(purpose),
                                                         *map(int, counters)]))


def tf_seed(seed: int, purpose: str, *counters: int) -> np.ndarray:
    """A shape-(2,) int64 seed for tf.random.stateless_* ops, derived like numpy_generator."""
    words = numpy_generator(seed, purpose, *counters).integers(0, 2**31 - 1, size=2, dtype=np.int64)
    return words
