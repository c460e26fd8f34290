"""The checkpoint format and the run fingerprint: a stack's progress as one value (StackState), saved
as arrays plus a JSON header (no pickle), with a fingerprint of everything that determines its
numbers (runs, configs, data, code), so that a resume with other settings, data or code is noticed.

`digest` is the package's one fingerprint hash: the checkpoint's fingerprint, the sweep's run keys
and config fingerprint and suggest's file digests are all computed by it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import yaml

from al_bnn.config import ConfigError, ExperimentConfig, config_from_dict
from al_bnn.data import RegressionData
from al_bnn.errors import InputError
from al_bnn.safe_arrays import ArrayFileError, load_arrays, save_arrays

DIGEST_BLOCK = 1 << 20  # bytes read at a time from a file being digested


def digest(*parts: object, length: int | None = None) -> str:
    """SHA-256 (hex, cut to `length` characters if given) of the parts in order: the one hash that
    every fingerprint of the package uses, so that they all hash a value the same way. Each part
    enters as bytes: bytes as they are, text as UTF-8, a `Path` or a binary stream as the file's
    content (read in blocks; a stream is read from where it is to its end), a NumPy array as its
    dtype and shape then its C-ordered bytes (equal bytes of another shape differ), and any other
    value (mappings, lists, numbers) as its YAML with sorted keys."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with open(part, "rb") as stream:
                _update_from_stream(hasher, stream)
        elif hasattr(part, "read"):
            _update_from_stream(hasher, part)  # type: ignore[arg-type]  # a binary stream
        elif isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            hasher.update(f"{array.dtype.str}{array.shape}".encode())
            hasher.update(array.tobytes())
        elif isinstance(part, bytes | bytearray | memoryview):
            hasher.update(part)
        elif isinstance(part, str):
            hasher.update(part.encode())
        else:
            hasher.update(yaml.safe_dump(part, sort_keys=True).encode())
    return hasher.hexdigest()[:length]


def _update_from_stream(hasher, stream: BinaryIO) -> None:
    for block in iter(lambda: stream.read(DIGEST_BLOCK), b""):
        hasher.update(block)


class RunLike(Protocol):
    """What the fingerprint reads of a run: its label, its group and its config."""

    label: str
    group: str
    config: ExperimentConfig


@dataclass
class RunResult:
    """Everything a run produced; the writer turns it into files."""

    label: str
    config: ExperimentConfig
    group: str
    metrics: list[dict] = field(default_factory=list)      # one row per evaluation
    acquisitions: list[dict] = field(default_factory=list)  # one row per phase (0 = initial set)
    selected: list[dict] = field(default_factory=list)      # one row per selected point
    initial_indices: np.ndarray | None = None
    train_indices: np.ndarray | None = None                 # final, in order labelled

    @property
    def total_selection_seconds(self) -> float:
        return float(sum(row["selection_seconds"] for row in self.acquisitions))


@dataclass
class StackState:
    """All of a stack's progress as one value, so that saving and resuming is a dump and a load."""

    labels: list[str]
    results: list[RunResult]
    train_sets: list[np.ndarray]
    phase: int = 0                  # the phase being worked on (0 = training on the initial set)
    selected: bool = True           # whether this phase's acquisition is done (phase 0 has none)
    epoch: int = 0                  # epochs of this phase already trained
    weights: list[np.ndarray] | None = None
    optimizer_state: list[np.ndarray] | None = None
    phase_training_seconds: float = 0.0
    finished: bool = False
    fingerprint: dict = field(default_factory=dict)  # what determines the numbers (run_fingerprint)


class CheckpointError(InputError, ValueError):
    """A checkpoint cannot be used: unreadable, truncated, of another version, or a pickle."""


class ResumeMismatchError(InputError, ValueError):
    """The runs or data to resume differ from those the checkpoint was written for."""


CHECKPOINT_KIND = "al_bnn checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = re.compile(r"checkpoint_[0-9]+\.npz")
_ROW_LISTS = ("metrics", "acquisitions", "selected")
# What a calibrated phase (train_schedule.calibration: holdout) adds to its last metrics row:
# al_bnn.stack_calibration writes them, the benchmark's tidy tables read them. Each raw value under
# its own name beside the calibrated one, and the two variance scales; named once, here (no
# TensorFlow import), so the writer and the readers cannot drift apart.
RAW_COLUMNS = {"test_log_likelihood": "test_log_likelihood_raw", "test_coverage_90": "test_coverage_90_raw"}
SCALE_COLUMNS = ("calibration_epistemic", "calibration_aleatoric")
CALIBRATION_COLUMNS = (*RAW_COLUMNS.values(), *SCALE_COLUMNS)


def checkpoint_path(checkpoint_dir: Path, index: int) -> Path:
    """Where stack `index` checkpoints (a name CHECKPOINT_NAME matches)."""
    return checkpoint_dir / f"checkpoint_{index}.npz"


def data_fingerprint(data: RegressionData) -> str:
    """SHA-256 of the arrays a run trains and tests on (standardised, so the scaling counts too)
    and of the target scale its metrics are reported in."""
    return digest(data.pool_x, data.pool_y, data.test_x, data.test_y, repr(data.target_scale))


def run_fingerprint(runs: Sequence[RunLike], datas: Sequence[RegressionData]) -> dict:
    """Everything that determines a stack's numbers, as flat `key: value` pairs: the runs (labels,
    groups, every config key as run), each run's data (name, shapes, a hash of the arrays) and the
    code that computes them (code_version)."""
    fingerprint: dict = {"runs": [run.label for run in runs], CODE_KEY: code_version()}
    for run, data in zip(runs, datas, strict=True):
        fingerprint.update(_config_fingerprint(run.label, run.group, run.config.to_dict()))
        fingerprint[f"{run.label}: data arrays"] = (f"{data.name}, pool {list(data.pool_x.shape)}, test "
                                                    f"{list(data.test_x.shape)}, sha256 {data_fingerprint(data)[:16]}")
    return fingerprint


CODE_KEY = "code version"


@functools.cache
def code_version() -> str:
    """The package version and a digest of the library's source (al_bnn/*.py, models/, selection/):
    what computes a run's numbers, recorded in its checkpoints and run.yaml so that a resume with
    other code is noticed. Computed once per process."""
    from al_bnn.version import __version__

    root = Path(__file__).resolve().parent
    sources = sorted([*root.glob("*.py"), *root.glob("models/*.py"), *root.glob("selection/*.py")])
    parts = [part for source in sources for part in (source.relative_to(root).as_posix() + "\0", source)]
    return f"al_bnn {__version__}, source sha256 {digest(*parts, length=16)}"


def _config_fingerprint(label: str, group: str, config: dict) -> dict:
    """The fingerprint's keys for one run's group and config (config as `to_dict` gives it)."""
    keys: dict = {f"{label}: group": group}
    for section, values in config.items():
        if isinstance(values, dict):
            keys.update({f"{label}: {section}.{key}": value for key, value in values.items()})
        else:
            keys[f"{label}: {section}"] = values
    return keys


def check_fingerprint(checkpoints: Sequence[Path], recorded: Mapping, current: Mapping) -> None:
    """ResumeMismatchError naming every key the checkpoints recorded whose value differs now."""
    absent = "(absent)"
    changed = [f"  {key}: {value!r} -> {current.get(key, absent)!r}" for key, value in recorded.items()
               if current.get(key, absent) != value]
    if changed:
        raise ResumeMismatchError(
            f"{', '.join(map(str, checkpoints))} {'was' if len(checkpoints) == 1 else 'were'} written for other "
            f"settings or data than the run to resume now ({len(changed)} change(s), checkpoint -> now):\n"
            + "\n".join(changed) + "\nResuming would mix the two. Undo the change (run.yaml, the data files), or "
            "start a new run (another --results-dir, or --overwrite).")


def check_state_fits(path: Path | None, runs: Sequence[RunLike], state: StackState, n_pool: int,
                     initial_sets: Sequence[np.ndarray]) -> None:
    """CheckpointError unless the state holds what its (already checked) fingerprint promises for
    these runs and this data: the same labels, groups and configs, each run's initial set as its
    seed draws it (`initial_sets`, one per run), and training sets of indices into this pool of
    `n_pool` points, of the size the phase implies."""
    where = f"checkpoint refused: {path}"
    if state.labels != [run.label for run in runs]:
        raise CheckpointError(f"{where}: it holds the runs {_short(state.labels)}, not "
                              f"{_short([r.label for r in runs])}")
    for run, result, train_set, initial in zip(runs, state.results, state.train_sets, initial_sets, strict=True):
        if result.group != run.group or _plain(result.config.to_dict()) != _plain(run.config.to_dict()):
            raise CheckpointError(f"{where}: run {run.label!r} was saved with another group or config than its "
                                  "fingerprint and run.yaml say")
        schedule = run.config.al_schedule
        acquired = state.phase if state.selected else state.phase - 1
        expected = schedule.num_train_init + max(acquired, 0) * schedule.num_al_incr
        if (result.initial_indices is None or not np.array_equal(result.initial_indices, initial)
                or train_set.ndim != 1 or len(train_set) != expected
                or not np.array_equal(train_set[:len(initial)], initial) or train_set.min(initial=0) < 0
                or train_set.max(initial=0) >= n_pool or len(np.unique(train_set)) != len(train_set)
                or state.phase > schedule.al_iter + 1 or state.finished != (state.phase == schedule.al_iter + 1)):
            raise CheckpointError(f"{where}: run {run.label!r}: its initial or training set is not the one its seed "
                                  f"and phase {state.phase} give on this pool of {n_pool} points (edited, or from "
                                  "another run)")


def _plain(value):
    """A value as its JSON round trip gives it (tuples as lists), for comparing with a header."""
    return json.loads(json.dumps(value))


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def save_checkpoint(path: Path, state: StackState) -> None:
    """Write the state as arrays plus a JSON header (no pickle), through a temporary file that is
    renamed into place: a crash or a full disk never leaves half a checkpoint, and the previous
    checkpoint stays until the new one is complete."""
    header = dict(labels=state.labels, phase=state.phase, selected=state.selected, epoch=state.epoch,
                  phase_training_seconds=state.phase_training_seconds, finished=state.finished,
                  fingerprint=state.fingerprint,
                  runs=[dict(label=r.label, group=r.group, config=r.config.to_dict(),
                             **{name: getattr(r, name) for name in _ROW_LISTS}) for r in state.results],
                  weights=len(state.weights or []), optimizer_state=len(state.optimizer_state or []))
    arrays = {f"train_set_{k}": indices for k, indices in enumerate(state.train_sets)}
    arrays.update({f"initial_{k}": r.initial_indices  # type: ignore[misc]  # drawn before any checkpoint
                   for k, r in enumerate(state.results)})
    arrays.update({f"weight_{i}": value for i, value in enumerate(state.weights or [])})
    arrays.update({f"optimizer_{i}": value for i, value in enumerate(state.optimizer_state or [])})
    save_arrays(path, CHECKPOINT_KIND, CHECKPOINT_VERSION, header, arrays, "the checkpoint")


def load_checkpoint(path: Path) -> StackState:
    """Read a checkpoint written by save_checkpoint. Loading runs no code (NumPy without pickle,
    JSON); a missing, truncated or foreign file, another format version or a pickle is refused
    with a CheckpointError naming the file, and nothing from it is used. Its header is checked
    against the schema (types, ranges, sizes) and its fingerprint against what it holds (labels,
    groups, configs, the arrays it names), so an edit of one without the other is refused."""
    from al_bnn.headers import checkpoint_schema, validate

    def expected_arrays(header: dict) -> list[str]:
        header = validate(header, checkpoint_schema(), path)
        n_runs = len(header["runs"])
        return [*(f"train_set_{k}" for k in range(n_runs)), *(f"initial_{k}" for k in range(n_runs)),
                *(f"weight_{i}" for i in range(header["weights"])),
                *(f"optimizer_{i}" for i in range(header["optimizer_state"]))]

    try:
        header, arrays = load_arrays(path, CHECKPOINT_KIND, (CHECKPOINT_VERSION,), expect=expected_arrays)
    except ArrayFileError as error:
        raise CheckpointError(f"checkpoint refused: {error}") from None
    header = validate(header, checkpoint_schema(), path)  # already checked: gives the checked copy
    fingerprint = header["fingerprint"]
    try:
        results = []
        for k, run in enumerate(header["runs"]):
            result = RunResult(run["label"], config_from_dict(run["config"], f"{path} [{run['label']}]"), run["group"],
                               **{name: list(run[name]) for name in _ROW_LISTS})  # type: ignore[arg-type]  # list fields
            result.initial_indices = arrays[f"initial_{k}"]
            results.append(result)
            promised = _config_fingerprint(result.label, result.group, _plain(result.config.to_dict()))
            differs = [key for key, value in promised.items() if _plain(fingerprint.get(key)) != value]
            if differs:
                raise CheckpointError(f"checkpoint refused: {path}: its fingerprint does not match the run it holds "
                                      f"({_short(differs[0])}: {_short(fingerprint.get(differs[0]))} in the "
                                      f"fingerprint, {_short(promised[differs[0]])} in the run); it was edited")
        state = StackState(
            labels=list(header["labels"]), results=results,
            train_sets=[arrays[f"train_set_{k}"] for k in range(len(results))],
            phase=header["phase"], selected=header["selected"], epoch=header["epoch"],
            weights=[arrays[f"weight_{i}"] for i in range(header["weights"])] or None,
            optimizer_state=[arrays[f"optimizer_{i}"] for i in range(header["optimizer_state"])] or None,
            phase_training_seconds=float(header["phase_training_seconds"]), finished=header["finished"],
            fingerprint=dict(fingerprint))
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint refused: {path}: incomplete or inconsistent ({type(error).__name__}: "
                              f"{str(error)[:300]})") from None
    labels = [r.label for r in results]
    if state.labels != labels or fingerprint.get("runs") != labels or any(
            indices.dtype.kind not in "iu" or indices.ndim != 1  # type: ignore[union-attr]  # set from the file above
            for indices in [*state.train_sets, *(r.initial_indices for r in results)]):
        raise CheckpointError(f"checkpoint refused: {path}: inconsistent runs or training sets (labels "
                              f"{_short(state.labels)}, fingerprint runs {_short(fingerprint.get('runs'))}, runs "
                              f"{_short(labels)})")
    return state
