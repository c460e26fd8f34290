"""The experiment loop: initial set, train, select, add, train... for several runs at once.

Runs whose training settings match (same network, schedule and data; any seed and sampler) are
trained as one stacked model: they grow their training sets by the same amounts, so they stay in
lockstep, and selection runs per run between training phases. Every random draw is keyed by the
run's seed, so a run computes the same numbers whichever runs share its stack.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from al_bnn.acquisition import select_with_model
from al_bnn.checkpoint import (
    CHECKPOINT_NAME,
    CODE_KEY,
    CheckpointError,
    ResumeMismatchError,
    RunResult,
    StackState,
    check_fingerprint,
    check_state_fits,
    checkpoint_path,
    load_checkpoint,
    run_fingerprint,
    save_checkpoint,
)
from al_bnn.config import ConfigError, ExperimentConfig
from al_bnn.data import RegressionData, data_key, load_dataset
from al_bnn.errors import DivergedError
from al_bnn.memory import check_fits
from al_bnn.models import StackedDenseNetwork, build_model_and_trainer
from al_bnn.models.trainer import EvaluationMetrics, stack_training_sets
from al_bnn.paths import inside
from al_bnn.randomness import numpy_generator
from al_bnn.selection import make_sampler
from al_bnn.stack_calibration import record_phase_calibration

logger = logging.getLogger("al_bnn")
# one line per trained phase; a sweep worker writes these at once (its other lines wait for the task's end)
PROGRESS_LOGGER = "al_bnn.progress"
progress_logger = logging.getLogger(PROGRESS_LOGGER)


@dataclass
class RunSpec:
    """One run to do: a label for its files, the group it is plotted with, and its config."""

    label: str
    config: ExperimentConfig
    group: str = ""  # runs of one group (e.g. one sampler over several seeds) are averaged in plots

    def __post_init__(self):
        self.group = self.group or self.label

    @property
    def data_key(self) -> tuple:
        data = self.config.data
        return data_key(data.dataset, data.size_pool, data.size_test, self.config.seed, data.uci_root, data.path,
                        data.target, data.test_fraction, validation_fraction=data.validation_fraction)



def initial_training_set(seed: int, n_pool: int, size: int) -> np.ndarray:
    """The random initial set: a function of the seed only, so all samplers share it."""
    if size > n_pool:
        raise ConfigError(f"num_train_init={size} exceeds the pool of {n_pool} points")
    return np.sort(numpy_generator(seed, "initial_training_set").choice(n_pool, size=size, replace=False))


def group_into_stacks(runs: Sequence[RunSpec], datas: Sequence[RegressionData]) -> list[list[int]]:
    """Indices of runs that can share a stack: identical training settings and equally shaped
    data (each run keeps its own arrays, e.g. its own split). Order is preserved."""
    stacks: dict[tuple, list[int]] = {}
    for index, (run, data) in enumerate(zip(runs, datas, strict=True)):
        key = (run.config.training_signature(), data.pool_x.shape, data.test_x.shape)
        stacks.setdefault(key, []).append(index)
    return list(stacks.values())


def load_run_data(run: RunSpec) -> RegressionData:
    data = run.config.data
    return load_dataset(data.dataset, data.size_pool, data.size_test, run.config.seed, uci_root_dir=data.uci_root,
                        path=data.path, target=data.target, test_fraction=data.test_fraction,
                        validation_fraction=data.validation_fraction)


@dataclass
class PreparedStack:
    """One stack ready to run: its runs and data, its checkpoint file, the fingerprint of what
    determines its numbers, and the state read from the checkpoint (None: start afresh)."""

    runs: list[RunSpec]
    datas: list[RegressionData]
    checkpoint: Path | None
    fingerprint: dict
    state: StackState | None = None
    # where the checkpoint lies below a folder the user named: each save checks again (paths.inside)
    # that no folder between them has become a link since (a sweep's checkpoints/<dataset>/<model>/)
    checkpoint_root: Path | None = None


def prepare_experiments(runs: Sequence[RunSpec], data_for: Callable[[RunSpec], RegressionData] = load_run_data,
                        checkpoint_dir: Path | None = None, resume: bool = True,
                        allow_code_change: bool = False) -> list[PreparedStack]:
    """Everything that can fail before training, done before anything is written or trained: load
    the data (runs with the same data key share one copy), group the runs into stacks, check that
    each schedule fits its pool and that each phase fits in memory, and with
    checkpoint_dir and resume, read each stack's checkpoint and check that it was written by these
    very runs on this very data (else CheckpointError / ResumeMismatchError, naming what changed),
    by this version of the code (unless allow_code_change: then the change is logged)."""
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"run labels must be unique, got {labels}")
    loaded: dict[tuple, RegressionData] = {}
    for run in runs:
        if run.data_key not in loaded:
            loaded[run.data_key] = data_for(run)
            data = loaded[run.data_key]
            logger.info("data %s (seed %d): pool %s, test %s", data.name, run.config.seed, data.pool_x.shape,
                        data.test_x.shape)
    datas = [loaded[run.data_key] for run in runs]
    stacks = []
    for index, members in enumerate(group_into_stacks(runs, datas)):
        stack_runs, stack_datas = [runs[i] for i in members], [datas[i] for i in members]
        config, n_pool_total = stack_runs[0].config, len(stack_datas[0].pool_x)
        if config.final_train_size > n_pool_total:
            raise ConfigError(f"dataset {stack_datas[0].name!r}: the schedule labels {config.final_train_size} "
                              f"points (num_train_init + al_iter * num_al_incr) but the pool holds {n_pool_total}; "
                              "shorten the schedule or use a larger pool")
        check_fits([run.config for run in stack_runs], [run.label for run in stack_runs], n_pool_total,
                   len(stack_datas[0].test_x), stack_datas[0].pool_x.shape[1])
        checkpoint = checkpoint_path(checkpoint_dir, index) if checkpoint_dir is not None else None
        stacks.append(PreparedStack(stack_runs, stack_datas, checkpoint, run_fingerprint(stack_runs, stack_datas)))
    if checkpoint_dir is not None and resume:
        _read_checkpoints(stacks, checkpoint_dir, allow_code_change)
    return stacks


def _read_checkpoints(stacks: list[PreparedStack], checkpoint_dir: Path, allow_code_change: bool = False) -> None:
    """Give each stack the state of its checkpoint, after checking that every checkpoint there
    was written for these runs and this data (all differences reported at once), that what it
    holds is what its fingerprint says (labels, groups, configs, the initial and training sets for
    this pool), and that it was written by this code (package version and source digest; with
    allow_code_change a difference is logged instead of refused)."""
    legacy = sorted(checkpoint_dir.glob("checkpoint_*.pkl"))
    if legacy and not any(checkpoint_dir.glob("checkpoint_*.npz")):
        raise CheckpointError(
            f"{legacy[0]}: a pickle checkpoint, written by an older version of al_bnn. Pickles can run arbitrary "
            "code when loaded (anyone who can write to this directory could have replaced it), so it is refused "
            "and was not read. Start the run again with this version (--overwrite).")
    states = {path: load_checkpoint(path) for path in map(_checkpoint_file, stacks) if path.exists()}
    # any other checkpoint_<i>.npz was written by a stack that no longer exists: run.yaml was changed
    # (only names this package writes, checkpoint_<digits>.npz: a user's checkpoint_best.npz is not ours)
    ours = {path for path in checkpoint_dir.glob("checkpoint_*.npz") if CHECKPOINT_NAME.fullmatch(path.name)}
    orphans = sorted(ours - {_checkpoint_file(stack) for stack in stacks})
    recorded: dict[str, object] = {}
    current: dict[str, object] = {}
    for path in orphans:
        recorded[f"runs of {path.name}"] = load_checkpoint(path).fingerprint.get("runs")
        current[f"runs of {path.name}"] = None
    code_changes = []
    for stack in stacks:
        state = states.get(_checkpoint_file(stack))
        if state is None:
            continue
        written_by = state.fingerprint.get(CODE_KEY, "an unrecorded (older) version")
        if written_by != stack.fingerprint[CODE_KEY]:
            code_changes.append(f"{_checkpoint_file(stack).name} was written by {written_by!s:.200}")
        recorded.update({key: value for key, value in state.fingerprint.items() if key != CODE_KEY})
        recorded[f"runs of {_checkpoint_file(stack).name}"] = recorded.pop("runs", None)
        current[f"runs of {_checkpoint_file(stack).name}"] = stack.fingerprint["runs"]
    for stack in stacks:  # keys of runs that moved to another stack are compared too
        current.update({key: value for key, value in stack.fingerprint.items() if key not in ("runs", CODE_KEY)})
    check_fingerprint(sorted(states) + orphans, recorded, current)
    for stack in stacks:
        state = states.get(_checkpoint_file(stack))
        if state is not None:
            n_pool = len(stack.datas[0].pool_x)
            check_state_fits(stack.checkpoint, stack.runs, state, n_pool, [
                initial_training_set(run.config.seed, n_pool, run.config.al_schedule.num_train_init)
                for run in stack.runs])
        stack.state = state
    if code_changes:
        now = stacks[0].fingerprint[CODE_KEY]
        if not allow_code_change:
            raise ResumeMismatchError(
                f"{'; '.join(code_changes)}, but this is {now}. The code that computes the numbers changed, so a "
                "resumed run would mix the two; resume with the version that started it, start a new run (another "
                "--results-dir, or --overwrite), or pass --allow-code-change to resume anyway (recorded in the log).")
        logger.warning("resuming with changed code (--allow-code-change): %s; now %s. Numbers after this point may "
                       "differ from an uninterrupted run.", "; ".join(code_changes), now)


def _checkpoint_file(stack: PreparedStack) -> Path:
    """The stack's checkpoint file, where a checkpoint directory was given (the only case that reads them)."""
    assert stack.checkpoint is not None
    return stack.checkpoint



def run_prepared(stacks: Sequence[PreparedStack], runs: Sequence[RunSpec], show_progress: bool | None = None,
                 stop: threading.Event | None = None) -> list[RunResult]:
    """Run prepared stacks; results in the order of `runs` (the runs given to prepare_experiments).
    Setting `stop` makes the runs checkpoint at the next chunk boundary and raise StopRequested."""
    results: dict[str, RunResult] = {}
    for stack in stacks:
        try:
            stack_results = _run_stack(stack, show_progress, stop)
        except StopRequested as stopped:
            stopped.results = [*results.values(), *stopped.results]
            raise
        for result in stack_results:
            results[result.label] = result
    return [results[run.label] for run in runs]


def run_experiments(runs: Sequence[RunSpec], show_progress: bool | None = None,
                    data_for: Callable[[RunSpec], RegressionData] = load_run_data,
                    checkpoint_dir: Path | None = None, stop: threading.Event | None = None) -> list[RunResult]:
    """Run every spec, stacking those that can share a model; results in the order given.

    data_for(run) gives a run's arrays; runs with the same data key share one loaded copy. With
    checkpoint_dir, stack i checkpoints to checkpoint_dir/checkpoint_<i>.npz after every phase and
    resumes from it when it exists (after checking it belongs to these runs and data). Setting
    `stop` makes the runs checkpoint at the next chunk boundary and raise StopRequested.
    """
    return run_prepared(prepare_experiments(runs, data_for, checkpoint_dir), runs, show_progress, stop)


class StopRequested(Exception):
    """A stop was requested (SIGINT or SIGTERM); the stack's state was checkpointed at a chunk boundary."""

    def __init__(self, state: StackState):
        super().__init__("stopped on request; the run can be resumed from its checkpoint")
        self.state = state
        self.results: list[RunResult] = list(state.results)  # run_experiments adds finished stacks


class TrainingDiverged(DivergedError, RuntimeError):
    """The loss or metrics became NaN/inf; the last good checkpoint is kept."""


def _new_state(runs: list[RunSpec], n_pool_total: int) -> StackState:
    schedule = runs[0].config.al_schedule
    train_sets = [initial_training_set(run.config.seed, n_pool_total, schedule.num_train_init) for run in runs]
    results = [RunResult(run.label, run.config, run.group) for run in runs]
    for result, indices in zip(results, train_sets, strict=True):
        result.initial_indices = indices.copy()
    return StackState([run.label for run in runs], results, train_sets)


def _run_stack(stack: PreparedStack, show_progress: bool | None,
               stop: threading.Event | None = None) -> list[RunResult]:
    """Train and select for one stack; continues from the state read from its checkpoint (if any),
    and saves the checkpoint after every phase (and when `stop` is set, at the next chunk boundary)."""
    state = stack.state
    if state is not None and state.finished:
        return _final_results(state)
    if state is not None:
        logger.info("resuming %s at phase %d, epoch %d", ", ".join(state.labels), state.phase, state.epoch)
    state = state or _new_state(stack.runs, len(stack.datas[0].pool_x))
    return _StackRun(stack, state, stop).run(show_progress)


def _final_results(state: StackState) -> list[RunResult]:
    """The runs' results, each with its final training set."""
    for result, indices in zip(state.results, state.train_sets, strict=True):
        result.train_indices = indices
    return state.results


class _StackRun:
    """One stack's rounds from a state on: the stacked model and its trainer, what every phase
    needs, and the steps of a phase (select, train and record, save), each a method."""

    progress: tqdm  # the progress bar of run()
    started: float  # perf_counter() when run() began

    def __init__(self, stack: PreparedStack, state: StackState, stop: threading.Event | None):
        self.runs, self.datas, self.checkpoint = stack.runs, stack.datas, stack.checkpoint
        self.checkpoint_root = stack.checkpoint_root
        self.state, self.stop = state, stop
        state.fingerprint = stack.fingerprint
        self.config = config = stack.runs[0].config  # training settings are identical across the stack
        self.samplers = [make_sampler(run.config.parms) for run in self.runs]
        self.network, self.trainer = build_model_and_trainer(config, self.datas[0].pool_x.shape[1],
                                                             [run.config.seed for run in self.runs])
        # The initial weights are keyed by seed, so they are the same after a resume.
        self.initial_weights = (self.network.get_weights() if config.train_schedule.retrain_from == "initial"
                                else None)
        if state.weights is not None:
            self._restore_weights()
        self.scales = [data.target_scale for data in self.datas]
        self.test_x = np.stack([data.test_x for data in self.datas])
        self.test_y = np.stack([data.test_y for data in self.datas])
        self.phase_epochs = config.phase_epochs()
        # epoch numbering runs across phases
        self.epochs_before = np.concatenate([[0], np.cumsum(self.phase_epochs)]).tolist()
        self.names = ", ".join(r.label for r in self.runs)

    def _restore_weights(self) -> None:
        """Set the network's weights and the optimiser's state to the checkpoint's, once their
        shapes are checked against the network the runs' config describes."""
        state, network, trainer = self.state, self.network, self.trainer
        assert state.weights is not None
        shapes = [tuple(np.shape(w)) for w in [*network.get_weights(), *trainer.get_optimizer_state()]]
        saved = [tuple(w.shape) for w in [*state.weights, *(state.optimizer_state or [])]]
        if saved != shapes:  # a fingerprint edited along with the config
            raise CheckpointError(f"checkpoint refused: {self.checkpoint}: its weights do not fit the network its "
                                  "runs' config describes (edited, or from another run)")
        network.set_weights(state.weights)
        assert state.optimizer_state is not None  # its shapes were compared just above
        trainer.set_optimizer_state(state.optimizer_state)

    def run(self, show_progress: bool | None) -> list[RunResult]:
        """Every remaining phase: select (unless done before the checkpoint), train, save."""
        state = self.state
        self.started = time.perf_counter()
        logger.info("training %d run(s) as one stack in %d XLA program(s): %s", len(self.runs),
                    self.trainer.unit_groups, self.names)
        # disable=None lets tqdm show the bar only on a terminal, so logs and CI output stay clean.
        disable = None if show_progress is None else not show_progress
        with tqdm(total=self.epochs_before[-1], initial=self.epochs_before[state.phase] + state.epoch,
                  desc=self.names, unit="epoch", disable=disable, leave=False) as self.progress:
            for phase in range(state.phase, self.config.al_schedule.al_iter + 1):
                if not state.selected:
                    self._select(phase)
                self._train(phase)
        return _final_results(state)

    def _select(self, phase: int) -> None:
        """Each run selects and adds its points; training then starts from the retraining point."""
        _acquire(self.network, self.runs, self.samplers, self.datas, self.state, phase)
        self.trainer.reset_optimizer()
        if self.initial_weights is not None:
            self.network.set_weights(self.initial_weights)
        self.state.selected = True

    def _train(self, phase: int) -> None:
        """Train the phase (from the checkpoint's epoch), recording every evaluation, then save."""
        state, results, schedule = self.state, self.state.results, self.config.al_schedule
        train_x, train_y = stack_training_sets(self.datas, state.train_sets)
        phase_started = time.perf_counter() - state.phase_training_seconds
        record = functools.partial(
            self._record, phase=phase, phase_started=phase_started,
            selection_seconds=[r.acquisitions[-1]["selection_seconds"] if phase else 0.0 for r in results])
        self.trainer.fit(train_x, train_y, self.test_x, self.test_y, self.phase_epochs[phase],
                         self.config.train_schedule.eval_after_epochs, phase=phase, first_epoch=state.epoch,
                         on_evaluation=record)
        training_seconds = time.perf_counter() - phase_started
        for result in results:
            if phase == 0:  # the initial set counts as acquisition 0, picked at random
                result.acquisitions.append(dict(al_iter=0, n_train_before=0,
                                                n_selected=schedule.num_train_init, selection_seconds=0.0))
            result.acquisitions[-1]["training_seconds"] = training_seconds
        if self.config.train_schedule.calibration == "holdout":  # the phase's last rows; selection stays raw
            record_phase_calibration(results, self.network, self.config, self.datas, state.train_sets, phase)
        finished = phase == schedule.al_iter
        self._save(phase=phase + 1, selected=False, epoch=0, phase_training_seconds=0.0, finished=finished)
        progress_logger.info("phase %d/%d trained: %d run(s), %d labelled rows each%s; %.1f min since this start",
                             phase, schedule.al_iter, len(self.runs), len(state.train_sets[0]),
                             ", checkpoint saved" if self.checkpoint is not None else "",
                             (time.perf_counter() - self.started) / 60)
        if self._stop_requested() and not finished:
            raise StopRequested(self.state)

    def _record(self, metrics: EvaluationMetrics, phase: int, selection_seconds: list[float],
                phase_started: float) -> bool:
        """The trainer's callback at each evaluation: check, record and log the metrics; on a stop
        request, save and stop at this chunk boundary. Returns False: training goes on."""
        state, epochs = self.state, self.phase_epochs[phase]
        self.progress.update(metrics.epoch - state.epoch)
        self._check_finite(metrics, phase)
        self._append_metrics(metrics, phase, selection_seconds)
        state.epoch = metrics.epoch
        if metrics.epoch % self.config.train_schedule.log_after_epochs == 0 or metrics.epoch == epochs:
            self._log_evaluation(phase, metrics.epoch)
        if self._stop_requested() and metrics.epoch < epochs:
            self._save(phase_training_seconds=time.perf_counter() - phase_started)
            raise StopRequested(state)
        return False

    def _check_finite(self, metrics: EvaluationMetrics, phase: int) -> None:
        """TrainingDiverged, naming the runs, the phase and the epoch, if any metric is NaN or inf."""
        values = np.concatenate([metrics.train_rmse, metrics.train_log_likelihood, metrics.test_rmse,
                                 metrics.test_log_likelihood])
        if not np.all(np.isfinite(values)):
            bad = [r.label for k, r in enumerate(self.state.results)
                   if not np.isfinite([metrics.train_rmse[k], metrics.train_log_likelihood[k]]).all()]
            raise TrainingDiverged(
                f"training diverged (NaN or inf) in run(s) {', '.join(bad) or self.names} at AL iteration "
                f"{phase}, epoch {metrics.epoch}; the last good checkpoint is kept. Try a smaller "
                "learning_rate or clip_gradient.")

    def _append_metrics(self, metrics: EvaluationMetrics, phase: int, selection_seconds: list[float]) -> None:
        """One metrics row per run, in the target's original units."""
        assert metrics.test_coverage_90 is not None  # the trainer always measures it
        scales = self.scales
        for k, result in enumerate(self.state.results):
            result.metrics.append(dict(
                al_iter=phase, epoch=self.epochs_before[phase] + metrics.epoch,
                n_train=len(self.state.train_sets[k]),
                train_rmse=float(metrics.train_rmse[k]) * scales[k],
                train_log_likelihood=float(metrics.train_log_likelihood[k]) - np.log(scales[k]),
                test_rmse=float(metrics.test_rmse[k]) * scales[k],
                test_log_likelihood=float(metrics.test_log_likelihood[k]) - np.log(scales[k]),
                test_coverage_90=float(metrics.test_coverage_90[k]),
                selection_seconds=selection_seconds[k]))

    def _log_evaluation(self, phase: int, epoch: int) -> None:
        for result in self.state.results:
            row = result.metrics[-1]
            logger.info("[%s] phase %d/%d, n_train %d, epoch %d/%d: train RMSE %.4f, test RMSE %.4f, test log-lik "
                        "%.4f", result.label, phase, self.config.al_schedule.al_iter, row["n_train"], epoch,
                        self.phase_epochs[phase], row["train_rmse"], row["test_rmse"], row["test_log_likelihood"])

    def _stop_requested(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _save(self, **changes) -> None:
        """Update the state, take the weights and optimiser state, and write the checkpoint (if any)."""
        state = self.state
        for key, value in changes.items():
            setattr(state, key, value)
        state.weights, state.optimizer_state = self.network.get_weights(), self.trainer.get_optimizer_state()
        if self.checkpoint is not None:
            if self.checkpoint_root is not None:
                inside(self.checkpoint_root, self.checkpoint.relative_to(self.checkpoint_root), "the checkpoint")
            save_checkpoint(self.checkpoint, state)


def _acquire(network, runs, samplers, datas, state: StackState, phase: int) -> None:
    """Every run of the stack selects its next points and adds them to its training set."""
    schedule = runs[0].config.al_schedule
    for k, (run, sampler) in enumerate(zip(runs, samplers, strict=True)):
        new_points, seconds, comparisons = _select(network, k, run, sampler, datas[k], state.train_sets[k], phase)
        state.results[k].acquisitions.append(dict(
            al_iter=phase, n_train_before=len(state.train_sets[k]), n_selected=len(new_points),
            selection_seconds=seconds, **comparisons))
        state.results[k].selected.extend(dict(al_iter=phase, rank=i, pool_index=int(p))
                                         for i, p in enumerate(new_points))
        state.train_sets[k] = np.concatenate([state.train_sets[k], new_points])
        logger.info("[%s] acquisition %d/%d: selected %d points in %.2f s (n_train %d)", run.label, phase,
                    schedule.al_iter, len(new_points), seconds, len(state.train_sets[k]))


def _select(network: StackedDenseNetwork, run_index: int, run: RunSpec, sampler, data: RegressionData,
            train_indices: np.ndarray, phase: int) -> tuple[np.ndarray, float, dict]:
    """Ask the run's sampler for new pool points. Returns them as indices into data.pool_x, the
    seconds the sampler took (drawing what it needs included), and, for each reference selection
    in `parms.compare_with`, its agreement with the picks and its own selection seconds."""
    remaining = np.setdiff1d(np.arange(len(data.pool_x)), train_indices)  # sorted: ties -> lowest index
    order = np.concatenate([train_indices, remaining])  # anchors first, then the pool
    count = min(run.config.al_schedule.num_al_incr, len(remaining))
    picks, seconds, comparisons, _ = select_with_model(network, run_index, run.config.parms, sampler, data.pool_x,
                                                       order, len(train_indices), count, run.config.seed, phase)
    return remaining[picks], seconds, comparisons
