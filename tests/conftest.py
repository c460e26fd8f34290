"""Shared test set-up: housing-dependent tests skip (with the reason) when scikit-learn's California
housing cache is missing and cannot be downloaded; with AL_BNN_REQUIRE_HOUSING=1 (CI) they fail
instead, so CI runs every test."""

import contextlib
import functools
import os
import signal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRE_HOUSING = "AL_BNN_REQUIRE_HOUSING"

# A suite started in the background by a script inherits SIGINT ignored, and the scripts keep an
# ignored signal ignored, so the tests that stop runs with Ctrl-C would meet a run that cannot be
# stopped: give the suite (and so the runs it starts) a terminal's foreground disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@functools.cache
def _housing_problem() -> str | None:
    from al_bnn.data import DataUnavailableError, housing_arrays

    try:
        housing_arrays()
    except DataUnavailableError as error:
        return str(error)
    return None


@pytest.fixture(scope="session")
def needs_housing():
    """Use in tests that load California housing."""
    problem = _housing_problem()
    if problem is None:
        return
    message = f"needs California housing, which is unavailable here. {problem}"
    if os.environ.get(REQUIRE_HOUSING) == "1":
        pytest.fail(f"{REQUIRE_HOUSING}=1 but {message}")
    pytest.skip(message)


def _execute_in_this_process(tasks, *args, **kwargs):
    """Stands in for al_bnn_lab.sweep.execute: each task runs here, one after another, as a worker
    would run it: the task and its result (or its error) cross a pickle round trip as they cross
    the process boundary, and the loop's log lines reach the sweep's log only through the result
    (a worker has no handler of the sweep's log)."""
    import logging
    import pickle

    from al_bnn_lab.sweep import run_task

    package_log = logging.getLogger("al_bnn")
    for task in tasks:
        handlers = package_log.handlers[:]
        for handler in handlers:
            package_log.removeHandler(handler)
        try:
            result = run_task(pickle.loads(pickle.dumps(task)))
        except Exception as error:
            raise pickle.loads(pickle.dumps(error)) from None
        finally:
            for handler in handlers:
                package_log.addHandler(handler)
        yield pickle.loads(pickle.dumps(result))


@contextlib.contextmanager
def _sweeps_in_this_process():
    from al_bnn_lab import benchmark

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(benchmark, "execute", _execute_in_this_process)
        yield


@pytest.fixture(scope="session")
def sweeps_in_process():
    """`with sweeps_in_process(): ...` runs the sweeps started inside (benchmark, study, bench_models)
    in the test process instead of spawned workers. Each worker pays TensorFlow's import and its
    first tracing again, which dominates a tiny sweep; here they are paid once per session. For
    tests of what a sweep does with its runs; tests of the workers themselves (signals, Dask,
    plugins reaching workers, orphaned workers) and the local end-to-end test keep real workers.
    It gives the workers' numbers exactly: test_an_incomplete_or_foreign_run_file_is_redone_and_the_log_is_appended
    redoes a worker's runs with it and compares them."""
    return _sweeps_in_this_process
