"""The research harness: sweeps, the benchmark, the standard UCI protocol, the study and its report,
the model benchmark, the bench_* measurements and the two published comparisons. It imports the
library (`al_bnn`), which never imports it (tests/test_package.py checks both)."""

import shlex
import sys
from collections.abc import Sequence


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command a report says it was made by: `script` (a path under source/) run by the project's
    virtual environment with these arguments (sys.argv's when None), quoted so it can be pasted back."""
    return f".venv/bin/python {script} " + shlex.join(sys.argv[1:] if argv is None else list(argv))
