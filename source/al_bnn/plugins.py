"""--plugins: the user's modules (e.g. registering samplers), imported by the scripts and by every
worker process before any task runs. A module that is missing or fails to import is a clear
error naming it, not a traceback or an 'unknown sampler' much later."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Sequence

from al_bnn.config import ConfigError


class PluginError(ConfigError):
    """A --plugins module could not be imported; the message names it and why."""


def import_plugins(modules: Sequence[str], where: str = "") -> None:
    """Import each module (once per process; later calls are free). `where` says in which process
    (e.g. 'on Dask worker tcp://...'), for the message."""
    for name in modules:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as error:
            if isinstance(error, ModuleNotFoundError) and error.name == name.split(".")[0]:
                detail = (f"there is no module {name!r} on this process's path; put its folder on PYTHONPATH "
                          "(e.g. PYTHONPATH=. for a module in the current directory) or install it")
            else:
                frames = traceback.extract_tb(error.__traceback__)
                at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
                detail = f"importing it raised {type(error).__name__}: {error}{at}"
            place = f" {where}" if where else ""
            raise PluginError(f"--plugins {name}: could not import the module{place}: {detail}") from None
