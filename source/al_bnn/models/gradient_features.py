"""Sketched gradient features: the finite-width neural tangent kernel of a model's mean output.

For one run of a stacked model, the feature of x is (an unbiased random-feature estimate of) the
gradient of the mean output f(x) with respect to every weight behind it: every hidden kernel and
bias and the output mean's kernel and bias (not the noise head, not the bnn's posterior std).
The kernel F F^T then estimates the NTK inner products grad f(x) . grad f(x').

No (n x parameters) matrix is formed. For a dense layer z = a W + b, the per-example gradient
w.r.t. W is the outer product a (x) delta with delta = df/dz (per example: examples are
independent, so backprop of the summed output gives every example's delta), and w.r.t. b it is
delta. The gradient inner product of a layer's kernel is therefore (a . a')(delta . delta'),
which the product sketch phi = (a S1) * (delta S2) / sqrt(k) (S1, S2 independent standard
Gaussian) estimates without bias; a vector part (a bias's delta, the output kernel's h(x), the
output bias's 1) is sketched, when it must be, by a plain Gaussian projection v S / sqrt(k).

The `sketch_dim` columns are split among these parts by water-filling: a part whose exact
gradient is no wider than its share is kept exact (biases, the output layer, small kernels), and
the budget it leaves is shared by the others, which are sketched. The parts are concatenated, so
the kernel is the sum of the parts' kernels and the sketched ones add independent zero-mean
errors. sketch_dim=0 keeps every part exact (the explicit (n x parameters) Jacobian, for small
networks and tests).

Ensembles: the mean output of a run is the mean of its members' mean functions, and its gradient
w.r.t. all members' weights is the concatenation of the members' gradients scaled by 1/M; that is
what is built (with the budget split over all members' parts), so the kernel is
(1/M^2) sum_m K_m, the NTK of the function the ensemble predicts.

Memory: O(chunk_size x widths) for a chunk's activations and deltas, O(chunk_size x sketch_dim)
for its features, the sketch matrices O(sum of widths x sketch_dim), and the (n, d) result.
The sketch math is float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from al_bnn.config import ConfigError
from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.dense import ACTIVATIONS, DeterministicMeanNetwork, StackedDenseNetwork, scaled
from al_bnn.models.ensemble import EnsembleNetwork
from al_bnn.models.tensorflow_setup import tf
from al_bnn.randomness import numpy_generator

SKETCH_PURPOSE = "gradient_sketch"


@dataclass
class _Part:
    """One block of the gradient: an outer product a (x) delta (in_dim > 0) or a vector (in_dim 0).

    key = (member, layer, kind) keys its sketch matrices; k = its columns (None: exact)."""

    key: tuple[int, int, int]
    in_dim: int
    out_dim: int
    k: int | None = None
    s1: np.ndarray | None = None
    s2: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.out_dim * max(self.in_dim, 1)

    @property
    def width(self) -> int:
        return self.size if self.k is None else self.k


def _units_of_run(network: StackedDenseNetwork, run: int) -> list[int]:
    if isinstance(network, EnsembleNetwork):
        size = network.ensemble_size
        return list(range(run * size, (run + 1) * size))
    return [run]


def _output_weights(network: StackedDenseNetwork):
    """The mean output's kernel and bias variables: the bnn's posterior mean, else the deterministic head."""
    if isinstance(network, BayesianLastLayerNetwork):
        return network.output_kernel_mean, network.output_bias
    if isinstance(network, DeterministicMeanNetwork):
        return network.output_kernel, network.output_bias
    raise TypeError(f"gradient_features supports the bnn, dropout and ensemble networks, not {type(network).__name__}")


def _plan(network: StackedDenseNetwork, members: int, sketch_dim: int) -> list[_Part]:
    widths = [network.input_dim, *network.layer_sizes]
    parts = []
    for member in range(members):
        for layer in range(len(network.layer_sizes)):
            parts.append(_Part((member, layer, 0), widths[layer], widths[layer + 1]))  # kernel: a (x) delta
            parts.append(_Part((member, layer, 1), 0, widths[layer + 1]))  # bias: delta
        parts.append(_Part((member, len(network.layer_sizes), 0), 0, widths[-1]))  # output kernel: h(x)
        parts.append(_Part((member, len(network.layer_sizes), 1), 0, 1))  # output bias: 1
    if sketch_dim == 0:
        return parts
    # water-filling: keep exact every part that fits its share of what is left, smallest first
    pending = sorted(range(len(parts)), key=lambda i: (parts[i].size, i))
    remaining = sketch_dim
    while pending and parts[pending[0]].size <= remaining // len(pending):
        remaining -= parts[pending.pop(0)].size
    if pending and remaining < len(pending):
        raise ConfigError(f"sketch_dim={sketch_dim} is too small: {len(pending)} gradient blocks of this network need "
                         f"at least one column each beyond the {sketch_dim - remaining} kept exact; use sketch_dim >= "
                         f"{sketch_dim - remaining + len(pending)} (512 is the default) or 0 for exact features")
    share, extra = divmod(remaining, max(len(pending), 1))
    for rank, index in enumerate(sorted(pending)):
        parts[index].k = share + (rank < extra)
    return parts


def _draw_sketches(parts: list[_Part], seed: int, counter: int) -> None:
    for part in parts:
        if part.k is None:
            continue
        rng = numpy_generator(seed, SKETCH_PURPOSE, counter, *part.key)
        if part.in_dim:
            part.s1 = rng.standard_normal((part.in_dim, part.k))
        part.s2 = rng.standard_normal((part.out_dim, part.k))


def _part_features(part: _Part, a: np.ndarray | None, delta: np.ndarray) -> np.ndarray:
    """(rows, part.width) features of one part from its activations a (rows, in_dim) and delta (rows, out_dim)."""
    if part.k is None:
        if a is None:
            return delta
        return (a[:, :, None] * delta[:, None, :]).reshape(len(delta), -1)
    if a is None:
        return (delta @ part.s2) / np.sqrt(part.k)
    return (a @ part.s1) * (delta @ part.s2) / np.sqrt(part.k)


def _activations_and_deltas(network: StackedDenseNetwork, x: tf.Tensor, unit: int, output_kernel, output_bias):
    """Per layer: the layer's input a (rows, fan_in) and delta = df/dz (rows, fan_out) of unit `unit`'s
    mean output f, and the last hidden layer h (rows, width)."""
    activation = ACTIVATIONS[network.activation]
    inputs, pre_activations = [], []
    h = network.transform_inputs(x)
    with tf.GradientTape() as tape:
        for layer in range(len(network.hidden_kernels)):
            inputs.append(h)
            z = network.pre_activation_of_unit(h, layer, unit)
            tape.watch(z)
            pre_activations.append(z)
            h = activation(z)
        total = tf.reduce_sum(scaled(tf.linalg.matvec(h, output_kernel[unit]), network.head_scale)
                              + scaled(output_bias[unit], network.bias_scale))
    deltas = tape.gradient(total, pre_activations)  # examples are independent: row i is df(x_i)/dz_i
    return inputs, deltas, h


def gradient_features(network: StackedDenseNetwork, x, run: int, sketch_dim: int = 512, seed: int = 0,
                      chunk_size: int = 2048, counter: int = 0, dtype=np.float64) -> np.ndarray:
    """(n, d) sketched gradient features of run `run`'s mean output at x (n, input_dim), computed in
    float64 per chunk and stored as `dtype` (float32 halves the (n, d) result: 2 GB for 10^6 x 512).

    d <= sketch_dim (smaller when the whole gradient is narrower); sketch_dim=0 gives the exact
    per-example gradient (d = number of parameters: small networks only). The sketch matrices are
    keyed by (seed, "gradient_sketch", counter, member, layer, kind), so the same seed and counter
    give the same features, and rows are computed chunk_size at a time (the result does not depend
    on chunk_size)."""
    if not 0 <= int(run) < network.num_runs:
        raise ValueError(f"run={run} is not a run of this model; give 0 <= run < {network.num_runs}")
    if int(sketch_dim) != sketch_dim or sketch_dim < 0:
        raise ValueError(f"sketch_dim must be an integer >= 0 (0 = exact gradients), got {sketch_dim!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != network.input_dim:
        raise ValueError(f"x must have shape (n, {network.input_dim}), got {x.shape}")
    output_kernel, output_bias = _output_weights(network)
    units = _units_of_run(network, int(run))
    scale = 1.0 / len(units)  # the gradient of the mean of the members' mean functions
    parts = _plan(network, len(units), int(sketch_dim))
    _draw_sketches(parts, int(seed), int(counter))
    offsets = np.cumsum([0, *(part.width for part in parts)])
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    result = np.empty((len(x), int(offsets[-1])), dtype=dtype)
    for start in range(0, len(x), int(chunk_size)):
        chunk = tf.convert_to_tensor(x[start:start + int(chunk_size)], network.dtype)
        rows = slice(start, start + int(chunk.shape[0]))
        index = 0
        for unit in units:
            inputs, deltas, h = _activations_and_deltas(network, chunk, unit, output_kernel, output_bias)
            # gradients w.r.t. the variables: a layer computing s * (a W) + s_b * b has
            # df/dW = s a (x) delta and df/db = s_b delta (s = s_b = 1 in the standard parametrisation)
            blocks = []
            for layer, (a, delta) in enumerate(zip(inputs, deltas, strict=True)):
                a, delta = a.numpy().astype(np.float64), delta.numpy().astype(np.float64) * scale
                blocks += [(a * network.kernel_scales[layer], delta), (None, delta * network.bias_scale)]
            h = h.numpy().astype(np.float64) * (scale * network.head_scale)
            blocks += [(None, h), (None, np.full((len(h), 1), scale * network.bias_scale))]
            for a, delta in blocks:
                part = parts[index]
                result[rows, offsets[index]:offsets[index + 1]] = _part_features(part, a, delta)
                index += 1
    return result
