"""Shared test set-up: housing-dependent tests skip (with the reason) when scikit-learn's California
housing cache is missing and cannot be downloaded; with AL_BNN_REQUIRE_HOUSING=1 (CI) they fail
instead, so CI runs every test."""

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
