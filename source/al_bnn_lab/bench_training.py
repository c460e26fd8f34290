"""Benchmark the BNN trainer: Python-loop baseline, in-graph trainer, stacked trainer.

    python source/bench_training.py                 # all measurements, then compare_gpa_rand.py itself
    python source/bench_training.py --skip-script   # per-step costs and the projection only (~1 min)

Everything is measured in one process, side by side, on the published network (hidden layers
[100, 100], 5 inputs, batch size 16) and a training set of 500 points (32 steps per epoch):
(a) a Python loop that calls a compiled tf.function step per batch, (b) the in-graph trainer
(one compiled call per chunk of epochs, K = 1), (c) the stacked trainer at K = 2, 10, 20 runs
as the scripts use it (its units split into 2 concurrently running programs), reported per
model-step, (d) the largest stack again as one program, to show what the second core adds, and
(e) the matmuls of the largest stack's steps alone (forward and backward, one program, no
Adam): the floor XLA's own matmul code puts under (d). Each figure is the best of three timings.
It then projects the training time of compare_gpa_rand.py at published settings from (c) at
K = 2 and, unless --skip-script, runs that script and reports its wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from al_bnn.config import load_config
from al_bnn.models.bnn import BayesianLastLayerNetwork
from al_bnn.models.tensorflow_setup import tf
from al_bnn.models.trainer import StackedTrainer
from al_bnn.paths import REPO_ROOT

LAYER_SIZES, INPUT_DIM, BATCH_SIZE, N_TRAIN = [100, 100], 5, 16, 500


def make_trainer(num_runs: int, unit_groups: int = 2) -> StackedTrainer:
    network = BayesianLastLayerNetwork(INPUT_DIM, LAYER_SIZES, 0.1, seeds=list(range(num_runs)))
    return StackedTrainer(network, 1e-4, 100.0, 1.0, BATCH_SIZE, unit_groups=unit_groups)


def toy_data(num_runs: int):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(num_runs, N_TRAIN, INPUT_DIM)).astype(np.float32)
    y = np.sin(x.sum(-1)).astype(np.float32)
    return x, y


def best_of_three(timed: Callable[[int], object]) -> float:
    """Seconds of the fastest of timed(1), timed(2), timed(3), after an untimed timed(0) that
    traces and compiles (the argument lets a call vary, e.g. the training phase)."""
    timed(0)
    timings = []
    for repeat in range(1, 4):
        started = time.perf_counter()
        timed(repeat)
        timings.append(time.perf_counter() - started)
    return min(timings)


def python_loop_seconds_per_step(epochs: int) -> float:
    """Baseline: shuffle in NumPy, slice batches in Python, call a tf.function step per batch."""
    trainer = make_trainer(1)
    step = tf.function(trainer._step_eager)  # the same step the trainer compiles, without XLA
    x, y = toy_data(1)
    rng = np.random.default_rng(0)
    num_batches = -(-N_TRAIN // BATCH_SIZE)
    batches_per_epoch = tf.constant(N_TRAIN / BATCH_SIZE, tf.float32)
    mask = tf.ones([1, BATCH_SIZE])

    def run(num_epochs):
        for _ in range(num_epochs):
            order = rng.permutation(N_TRAIN)
            for batch in range(num_batches):
                index = order[batch * BATCH_SIZE:(batch + 1) * BATCH_SIZE]
                if len(index) < BATCH_SIZE:  # keep one static batch shape, as the trainer does
                    index = np.concatenate([index, order[: BATCH_SIZE - len(index)]])
                noise = tf.random.normal([1, LAYER_SIZES[-1]])
                step(x[:, index], y[:, index], mask, noise, batches_per_epoch)

    return best_of_three(lambda repeat: run(epochs if repeat else 1)) / (epochs * num_batches)


def trainer_seconds_per_step(num_runs: int, epochs: int, unit_groups: int = 2) -> float:
    """The in-graph (stacked) trainer: seconds per optimiser step of the whole stack."""
    trainer = make_trainer(num_runs, unit_groups)
    x, y = toy_data(num_runs)
    seconds = best_of_three(lambda phase: trainer.fit(x, y, x[0], y[0], num_epochs=epochs, eval_every=epochs,
                                                      phase=phase))
    return seconds / (epochs * -(-N_TRAIN // BATCH_SIZE))


def matmul_seconds_per_step(num_runs: int, steps: int = 2000) -> tuple[float, float]:
    """Seconds per step of only the matmuls of the published network's optimiser step for a stack
    of num_runs (forward through both hidden layers, backward to both kernels), as one XLA
    program, and the FLOP count of one such step."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(num_runs, BATCH_SIZE, INPUT_DIM)), tf.float32)
    first = tf.constant(rng.normal(size=(num_runs, INPUT_DIM, LAYER_SIZES[0])) * 0.1, tf.float32)
    second = tf.constant(rng.normal(size=(num_runs, *LAYER_SIZES)) * 0.1, tf.float32)

    @tf.function(jit_compile=True)
    def run(first, second):
        def body(i, first, second):
            hidden = tf.nn.leaky_relu(tf.matmul(x, first))
            output_gradient = tf.matmul(hidden, second) * 1e-3  # stands in for the loss's gradient
            hidden_gradient = tf.matmul(output_gradient, second, transpose_b=True)
            return (i + 1, first - 1e-6 * tf.matmul(x, hidden_gradient, transpose_a=True),
                    second - 1e-6 * tf.matmul(hidden, output_gradient, transpose_a=True))
        return tf.while_loop(lambda i, *_: i < steps, body, (0, first, second))[1:]

    seconds = best_of_three(lambda repeat: run(first, second)[0].numpy())
    first_width, second_width = LAYER_SIZES
    flops = 2 * num_runs * BATCH_SIZE * (2 * INPUT_DIM * first_width + 3 * first_width * second_width)
    return seconds / steps, flops


def published_steps_per_run() -> int:
    config = load_config(REPO_ROOT / "configs" / "config_gpa.yaml")
    schedule, train = config.al_schedule, config.train_schedule
    sizes = [schedule.num_train_init + i * schedule.num_al_incr for i in range(schedule.al_iter + 1)]
    return sum(train.num_epochs * -(-n // train.batch_size) for n in sizes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs timed per measurement (default 20)")
    parser.add_argument("--stack-sizes", type=int, nargs="+", default=[2, 10, 20])
    parser.add_argument("--skip-script", action="store_true", help="do not run compare_gpa_rand.py")
    args = parser.parse_args(argv)
    if args.epochs < 1 or min(args.stack_sizes) < 1:
        parser.error(f"--epochs and --stack-sizes must be positive, got {args.epochs} and {args.stack_sizes}")
    print(f"Training benchmark: hidden {LAYER_SIZES}, batch {BATCH_SIZE}, n_train {N_TRAIN}, {args.epochs} epochs "
          f"timed, {os.cpu_count()} cores, TensorFlow {tf.__version__}")
    baseline = python_loop_seconds_per_step(max(2, args.epochs // 4))
    print(f"(a) Python loop over a tf.function step: {baseline * 1e6:8.0f} us/step")
    single = trainer_seconds_per_step(1, args.epochs)
    print(f"(b) in-graph trainer:                     {single * 1e6:8.0f} us/step   {baseline / single:5.1f}x faster "
          "than (a)")
    per_stack = {}
    for num_runs in args.stack_sizes:
        per_stack[num_runs] = trainer_seconds_per_step(num_runs, args.epochs)
        per_model = per_stack[num_runs] / num_runs
        print(f"(c) stacked trainer, K = {num_runs:2d}:            {per_model * 1e6:8.0f} us/model-step "
              f"({per_stack[num_runs] * 1e6:.0f} us per stacked step)   {single / per_model:5.1f}x cheaper than (b)")
    largest = max(args.stack_sizes)
    one_program = trainer_seconds_per_step(largest, args.epochs, unit_groups=1) / largest
    print(f"(d) stacked trainer, K = {largest:2d}, one program: {one_program * 1e6:8.0f} us/model-step   "
          f"{single / one_program:5.1f}x cheaper than (b); 2 programs are "
          f"{one_program / (per_stack[largest] / largest):.2f}x faster")
    matmul_seconds, flops = matmul_seconds_per_step(largest)
    matmul_per_model = matmul_seconds / largest
    print(f"(e) matmuls of a K = {largest} step alone, one program: {matmul_per_model * 1e6:5.1f} us/model-step "
          f"({flops / matmul_seconds / 1e9:.0f} GFLOP/s; {matmul_per_model / 2 * 1e6:.1f} if 2 programs scaled "
          f"perfectly); 4x cheaper than (b) needs whole steps at {single / 4 * 1e6:.1f} us/model-step")
    steps = published_steps_per_run()
    stack_step = per_stack.get(2) or trainer_seconds_per_step(2, args.epochs)
    print(f"compare_gpa_rand.py at published settings: {steps} optimiser steps per run; both runs in one stack "
          f"(K = 2) -> projected training time {steps * stack_step:.0f} s, plus evaluation and selection")
    if not args.skip_script:
        with tempfile.TemporaryDirectory() as directory:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, str(REPO_ROOT / "source" / "compare_gpa_rand.py"), "--quiet",
                                   "--results-dir", str(Path(directory) / "results")], cwd=REPO_ROOT)
            seconds = time.perf_counter() - started
            log = (Path(directory) / "results" / "log.txt")
            selection = [line for line in log.read_text().splitlines() if "selection" in line and "final" in line]
        print(f"measured: python source/compare_gpa_rand.py took {seconds:.0f} s (exit code {done.returncode})")
        for line in selection:
            print("   ", line.split(" INFO ")[-1])
    return 0

