"""Will a phase fit in memory? A rough estimate, made before any training or sampling, of what a
training phase and an acquisition hold at their peak, checked against the memory this process can
still get; a phase that cannot fit is refused with the estimate and the config key to change,
instead of a kernel OOM kill or an allocation error after hours of training.

The estimate counts the large arrays only (float32 network, float64 selection math by default)
and errs on the small side: it refuses what cannot fit, not what might be tight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from al_bnn.config import ConfigError, ExperimentConfig
from al_bnn.registry import model_entry
from al_bnn.selection.gpa_math import _ROW_CHUNK as DENSE_ROW_CHUNK  # rows updated at a time by fast GPA

MODEL_BYTES = 4  # float32 network


class MemoryEstimateError(ConfigError):
    """A phase needs more memory than is available; the message gives the estimate and the key."""


@dataclass
class Part:
    what: str
    bytes: float
    key: str  # the config key that changes it most


def gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB" if value >= 2**27 else f"{value / 2**20:.0f} MiB"


def available_memory() -> int | None:
    """Bytes this process can still allocate: the system's available memory, capped by a cgroup
    (container) limit when there is one; None when neither can be read. The package's one probe of
    free memory (the memory checks here, the selection benchmark's budget); it imports no TensorFlow."""
    candidates = []
    try:
        import psutil

        candidates.append(int(psutil.virtual_memory().available))
    except Exception:  # psutil missing or unsupported platform
        try:
            with open("/proc/meminfo") as stream:
                for line in stream:
                    if line.startswith("MemAvailable:"):
                        candidates.append(int(line.split()[1]) * 1024)
        except OSError:
            pass
    try:
        with open("/sys/fs/cgroup/memory.max") as stream:
            limit = stream.read().strip()
        with open("/sys/fs/cgroup/memory.current") as stream:
            used = int(stream.read().strip())
        if limit != "max":
            candidates.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(candidates) if candidates else None


def _uses_dense_pool_covariance(config: ExperimentConfig) -> bool:
    from al_bnn.selection import make_sampler

    parms = config.parms
    references = [name for name in parms.compare_with if name.startswith("fast_")]
    try:
        method = getattr(make_sampler(parms), "method", None)
    except Exception:  # a user's sampler that cannot be built here fails later with its own message
        method = None
    return method == "fast" or bool(references)


def training_parts(config: ExperimentConfig, runs: int, n_features: int, n_test: int) -> list[Part]:
    # what one training call holds; imported here so that available_memory needs no TensorFlow
    from al_bnn.models.trainer import epoch_draw_bytes, epochs_per_call

    net, train, parms = config.net_config, config.train_schedule, config.parms
    model = model_entry(parms.name_model)
    units = runs * model.units_per_run(parms)
    widths = [n_features, *net.layer_sizes]
    parameters = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False)) + 4 * widths[-1] + 4
    n_train = config.final_train_size
    padded = -(-n_train // train.batch_size) * train.batch_size
    # dropout's masks, one per example and unit; the other models' step noise is a few values per batch
    noise_per_batch = train.batch_size * sum(net.layer_sizes) if "dropout_rate" in model.options else 0
    per_epoch = epoch_draw_bytes(units, n_train, n_features, train.batch_size, noise_per_batch,
                                 net.ood_std_prior is not None, MODEL_BYTES)
    # the epochs of one training call, as the trainer chunks them (epochs_per_call holds the cap)
    chunk = min(train.eval_after_epochs, max(config.phase_epochs()), epochs_per_call(per_epoch))
    parts = [
        Part(f"network weights, Adam moments and gradients ({units} network(s) of {parameters:,} parameters)",
             6.0 * units * parameters * MODEL_BYTES, "net_config.layer_sizes"),
        Part(f"the minibatches of {chunk} epochs gathered at once ({padded:,} labelled points)",
             chunk * per_epoch, "train_schedule.eval_after_epochs"),
        Part(f"evaluation activations ({max(n_train, n_test):,} points x {sum(net.layer_sizes):,} units)",
             2.0 * units * max(n_train, n_test) * sum(net.layer_sizes) * MODEL_BYTES, "net_config.layer_sizes"),
    ]
    if train.calibration == "holdout":
        # the calibration copy trains while the phase's model is kept (al_bnn.stack_calibration)
        parts.append(Part(f"the calibration copy's weights, Adam moments and gradients ({units} network(s))",
                          6.0 * units * parameters * MODEL_BYTES, "train_schedule.calibration"))
    return parts


def acquisition_parts(config: ExperimentConfig, n_pool: int) -> list[Part]:
    net, parms = config.net_config, config.parms
    math_bytes = 8 if parms.gpa_dtype == "float64" else 4
    model = model_entry(parms.name_model)
    samples = model.samples_per_draw(parms)
    samples_key = "parms.ensemble_size" if "ensemble_size" in model.options else "parms.n_mc_samples"
    widest, last = max(net.layer_sizes), net.layer_sizes[-1]
    parts = [Part(f"hidden activations of {n_pool:,} points", 2.0 * n_pool * sum(net.layer_sizes) * MODEL_BYTES,
                  "net_config.layer_sizes")]
    gradient_features = _needs_gradient_features(config)
    if gradient_features:
        # the pool's sketched gradient features, stored in gpa_dtype, and the selection math's working copy
        width = parms.family_sketch_dim
        parts.append(Part(f"gradient features of {n_pool:,} points x {width:,} sketch columns (and a working copy)",
                          2.0 * n_pool * width * math_bytes,
                          "parms.family_sketch_dim (or parms.sample_policy: lrgpa, which needs no features)"))
    if (parms.sample_policy != "random" and not gradient_features) or parms.compare_with:
        parts.append(Part(f"{samples:,} function samples x {n_pool:,} points (and their copies for the selection "
                          "math)", 1.0 * samples * n_pool * (3 * MODEL_BYTES + math_bytes),
                          samples_key))
    if parms.function_samples == "marginal":
        parts.append(Part("marginal weight draws (8 rows at a time)", 8.0 * n_pool * last * MODEL_BYTES,
                          "parms.function_samples"))
    if "dropout_rate" in model.options:
        parts.append(Part("one dropout pass", 2.0 * n_pool * widest * MODEL_BYTES, "net_config.layer_sizes"))
    if _uses_dense_pool_covariance(config):
        parts.append(Part(f"fast GPA's dense {n_pool:,} x {n_pool:,} pool covariance",
                          1.0 * n_pool * (n_pool + DENSE_ROW_CHUNK) * math_bytes,
                          "data.size_pool (or parms.sample_policy: lrgpa, which needs no pool x pool matrix)"))
    return parts


def _needs_gradient_features(config: ExperimentConfig) -> bool:
    """Whether the sampler selects on gradient features (the family on `family_kernel: grad`)."""
    from al_bnn.selection import make_sampler

    try:
        return make_sampler(config.parms).needs == "gradient_features"
    except (ValueError, TypeError):
        return False  # an unknown sampler is reported where it is built, with its own message


def check_fits(configs: Sequence[ExperimentConfig], labels: Sequence[str], n_pool: int, n_test: int,
               n_features: int, available: int | None = None) -> None:
    """Refuse (MemoryEstimateError) a stack of runs whose training phase or acquisition needs more
    memory than is available. Runs select one after another, so the largest acquisition counts."""
    available = available_memory() if available is None else available
    if available is None:
        return
    phases = [("a training phase", training_parts(configs[0], len(configs), n_features, n_test))]
    phases += [(f"an acquisition of run {label}", acquisition_parts(config, n_pool))
               for label, config in zip(labels, configs, strict=True)]
    for phase, parts in phases:
        total = sum(part.bytes for part in parts)
        if total <= available:
            continue
        largest = max(parts, key=lambda part: part.bytes)
        detail = "; ".join(f"{part.what}: {gib(part.bytes)}" for part in sorted(parts, key=lambda p: -p.bytes)
                           if part.bytes >= 0.01 * total)
        raise MemoryEstimateError(
            f"run(s) {', '.join(labels)}: {phase} needs about {gib(total)} of memory ({detail}), but only "
            f"{gib(available)} are available on this machine; lower {largest.key}.")

