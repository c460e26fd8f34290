"""Checks and rescaling shared by the selection entry points (pure NumPy).

Scale: every selection rule here is invariant under a common rescaling of the features (or
function samples) by c once the GP noise is rescaled by c^2 (maxdiag, maxdist, kmeanspp and lcmd
have no noise and are invariant outright). Floating point is not: features of 1e-200 have kernel
values of 1e-400, which underflow to 0, and features of 1e160 overflow. So when the largest
|feature| lies outside a safe range for the dtype, the features are multiplied by a power of two
2^-e (exact: no rounding) that brings it into [0.5, 1), and the noise by 2^-2e. Inside the safe
range nothing is rescaled, so picks on ordinary inputs are bit-for-bit those of the plain math.
A rescaled noise more than 2^60 times the kernel's scale (or less than 2^-60 of it) is clamped
there: beyond, its effect on the posterior variances is below float64 rounding (conditioning
changes nothing, or the posterior of conditioned directions is rounding noise either way).
"""

from __future__ import annotations

import numbers

import numpy as np

from al_bnn.errors import InputError

# Largest |feature| left as it is, per dtype: kernel values (~ d x^2) and bait's numerators
# (~ n d x^4) stay far from overflow and underflow inside these.
_SAFE_RANGE = {np.dtype(np.float64): (2.0 ** -100, 2.0 ** 100), np.dtype(np.float32): (2.0 ** -20, 2.0 ** 20)}
_NOISE_CLAMP = 60  # log2 of the noise's largest ratio to the kernel's scale after rescaling


class SelectionRequestError(InputError, ValueError):
    """A selection was asked for something impossible (n_select not a positive integer, or more
    points than the pool holds); the message names the value and the fix. An InputError (the CLI's
    exit code 2) and a ValueError; not a ConfigError, since al_bnn.config imports this package."""


def check_n_select(n_select, n_pool: int) -> int:
    """n_select as an int: a positive integer (not a bool, not 2.5) and at most the pool size."""
    if isinstance(n_select, bool) or not isinstance(n_select, numbers.Integral):
        raise SelectionRequestError(f"n_select must be a positive integer, got {n_select!r} "
                                    f"({type(n_select).__name__}); pass a whole number of points such as 10")
    n_select = int(n_select)
    if n_select < 1:
        raise SelectionRequestError(f"n_select must be a positive integer, got {n_select}; request at least 1 point")
    if n_select > n_pool:
        raise SelectionRequestError(f"cannot select {n_select} points from a pool of {n_pool}; "
                                    f"request at most {n_pool}")
    return n_select


def scale_exponent(array: np.ndarray, dtype=None) -> int:
    """e such that array * 2^-e has its largest |value| in [0.5, 1), or 0 when that value already
    lies in the safe range of `dtype` (default: the array's), is 0, or is not finite."""
    array = np.asarray(array)
    if not array.size:
        return 0
    largest = max(float(np.max(array)), -float(np.min(array)))
    low, high = _SAFE_RANGE.get(np.dtype(dtype or array.dtype), _SAFE_RANGE[np.dtype(np.float64)])
    if largest == 0 or not np.isfinite(largest) or low <= largest <= high:
        return 0
    return int(np.frexp(largest)[1])


def rescale(array: np.ndarray, exponent: int) -> np.ndarray:
    """array * 2^-exponent, exact, in the array's dtype (the array itself when exponent is 0)."""
    if not exponent:
        return array
    return np.ldexp(array, -exponent).astype(array.dtype, copy=False)


def rescale_noise(noise: float, exponent: int, width: int) -> float:
    """The noise in the units of features rescaled by 2^-exponent: noise * 2^-2 exponent, kept
    within 2^+-60 of the rescaled kernel's scale (largest |feature| in [0.5, 1), so kernel values
    up to `width`); see the module docstring."""
    if not exponent:
        return noise
    mantissa, power = np.frexp(float(noise))
    power = int(power) - 2 * exponent
    low, high = -_NOISE_CLAMP, _NOISE_CLAMP + int(np.ceil(np.log2(max(width, 1))))
    if power <= low:
        return float(2.0 ** low)
    if power > high:
        return float(2.0 ** high)
    return float(np.ldexp(mantissa, power))
