"""The package's exception base and the few intermediate classes the command line maps to exit codes.

Every error the package raises for a user to act on derives from `AlBnnError`; its class says what
to do, and so which exit code a command ends with (`exit_code`, read by
al_bnn.cli.exit_code_for):

- `InputError` (2): fix the input named in the message (a config, data file, option, plugin,
  checkpoint or resume, existing results, settings too large for the memory).
- `DivergedError` (3): training diverged; change the training settings (the last good checkpoint
  is kept).
- `BusyError` (4): another run holds the results directory; wait, stop it, or choose another.
- `WriteFailure` (5): a file could not be written; free space or fix the permission, then resume.

The concrete classes live beside the code that raises them and keep a built-in base as well (e.g.
`ConfigError(InputError, ValueError)`), so `except ValueError` keeps working. Anything else that
reaches a command (a plain ValueError, a TypeError, ...) is a bug and keeps its traceback.

A leaf module: it imports nothing from the package, so any module can import it.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_FAILED = 1  # an error of the package with no more specific code (Python's code for a traceback, too)
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_BUSY = 4
EXIT_WRITE_FAILED = 5


class AlBnnError(Exception):
    """Base of every error the package raises for a user to act on; the message names the value and the fix."""

    exit_code: ClassVar[int] = EXIT_FAILED


class InputError(AlBnnError):
    """Bad input: a config, data file, option, plugin, checkpoint, resume or output folder; fix what the message
    names."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT


class DivergedError(AlBnnError):
    """Training diverged (NaN or inf); lower the learning rate or clip gradients."""

    exit_code: ClassVar[int] = EXIT_DIVERGED


class BusyError(AlBnnError):
    """Another live run holds the output folder."""

    exit_code: ClassVar[int] = EXIT_BUSY


class WriteFailure(AlBnnError):
    """A file could not be written (disk full, read-only file system, permission denied)."""

    exit_code: ClassVar[int] = EXIT_WRITE_FAILED
