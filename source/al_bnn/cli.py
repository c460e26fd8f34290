"""What the command-line entry points share: exit codes, turning errors into one clear message,
and stopping cleanly on SIGINT / SIGTERM.

Exit codes (docs/reliability.md lists them too) follow from the error's class (al_bnn.errors):
0 done; 2 bad input, `InputError` (config, data, options, plugins, a refused checkpoint, a resume
that does not match, existing results, settings too large for the memory, an unreachable
scheduler); 3 training diverged, `DivergedError` (the last good checkpoint is kept); 4 the results
directory is in use by another run, `BusyError`; 5 a file could not be written, `WriteFailure`
(disk full, read-only file system, permission denied: nothing half-written is left, `--resume`
continues once fixed); 1 any other `AlBnnError`; 130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM
after saving a checkpoint and the metrics so far (a sweep: after its running tasks finish,
starting no new one), and a second signal aborts at once, with the same code (a repeat within
REPEAT_WINDOW_S of the first counts as the same stop: GNU `timeout` sends its signal to the
command and then to the command's process group). Any other exception (a plain ValueError,
OSError, ...) is a bug, not bad input: it propagates with its traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from al_bnn.errors import (  # noqa: F401 (the exit codes are re-exported for the scripts)
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_WRITE_FAILED,
    AlBnnError,
)

EXIT_DONE = 0
SIGNAL_NAMES: dict[int, str] = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}


def interrupted_exit_code(signum: int) -> int:
    return 128 + int(signum)


class StoppedEarly(Exception):
    """A sweep stopped as asked (the first SIGINT or SIGTERM) once its running tasks finished:
    their runs are kept and `not_started` tasks remain for the next start of the same command."""

    def __init__(self, not_started: int, signum: int | None = None):
        super().__init__(f"stopped as asked: the running task(s) finished and their runs are kept; {not_started} "
                         "task(s) were not started. Run the same command again to continue")
        self.not_started, self.signum = not_started, signum


class Aborted(BaseException):
    """A second stop signal: abort at once, without saving (BaseException, so no handler of
    ordinary errors catches it on the way out)."""

    def __init__(self, signum: int):
        super().__init__(f"aborted by a second {SIGNAL_NAMES.get(signum, signum)}")
        self.signum = signum


def exit_code_for(error: BaseException) -> int | None:
    """The exit code of an error a user can cause or fix (an AlBnnError: its class's `exit_code`) or
    of a stop asked for; None for anything else, a bug, which keeps its traceback."""
    if isinstance(error, AlBnnError):
        return error.exit_code
    if isinstance(error, Aborted):
        return interrupted_exit_code(error.signum)
    if isinstance(error, StoppedEarly):
        return interrupted_exit_code(error.signum or signal.SIGINT)
    return None


def run_reporting_errors(run: Callable[[], int], hint: Callable[[BaseException], str] = lambda error: "") -> int:
    """Call `run` and turn the errors a user can cause or fix into one message on stderr and an
    exit code; `hint(error)` may add what to do next (e.g. the resume command)."""
    try:
        return run()
    except BaseException as error:
        code = exit_code_for(error)
        if code is None:
            raise
        extra = hint(error)
        label = "" if isinstance(error, StoppedEarly) else "error: "  # a stop asked for is no error
        print(f"{label}{error}" + (f"\n{extra}" if extra else ""), file=sys.stderr)
        return code


REPEAT_WINDOW_S = 1.0


class StopSignals:
    """While installed: the first SIGINT or SIGTERM sets `stop` (the run saves a checkpoint at the
    next chunk boundary and ends); a second one raises Aborted at once, unless it is the same signal
    within REPEAT_WINDOW_S of the first (one stop delivered twice, as GNU `timeout` does: to the
    command, then to its process group). Only the main thread can install signal handlers;
    elsewhere this does nothing."""

    def __init__(self, stop: threading.Event, on_first: Callable[[int], None] = lambda signum: None):
        self.stop, self.on_first = stop, on_first
        self.received: int | None = None
        self.aborted: int | None = None  # the second signal, once one came
        self._received_at = 0.0
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}  # prior handlers

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_NAMES:
                if signal.getsignal(signum) is signal.SIG_IGN:
                    continue  # ignored on purpose (e.g. SIGINT of a job started with & by a script): stays so
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    @property
    def handled(self) -> list[int]:
        """The signals this instance handles now (an inherited SIG_IGN is left alone)."""
        return list(self._previous)

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.stop.is_set():
            if signum == self.received and now - self._received_at < REPEAT_WINDOW_S:
                return  # the first stop, delivered twice
            self.aborted = signum
            raise Aborted(signum)
        self.received, self._received_at = signum, now
        self.stop.set()
        self.on_first(signum)

    def __exit__(self, exc_type, error, traceback) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if self.aborted is not None and not isinstance(error, Aborted):
            # the handler's Aborted was raised where Python ignores exceptions (e.g. in an import
            # lock's callback, under load): the second signal still decides how the run ends
            raise Aborted(self.aborted)
