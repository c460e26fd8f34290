"""The results directory: log, configs as run, tidy metrics CSVs, plots.

Every file is written to a temporary name in the same directory and renamed into place, so a
crash never leaves a truncated file that looks complete. An existing, non-empty directory is
refused unless overwrite=True, and overwriting only replaces files this writer writes.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

LOG_FILE = "log.txt"


class ResultsDirectoryExistsError(FileExistsError):
    """The results directory already holds files and --overwrite was not given."""


class ResultsWriter:
    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ResultsDirectoryExistsError(f"{self.path} exists and is not a directory; choose another "
                                              "--results-dir")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise ResultsDirectoryExistsError(
                f"results directory {self.path} already exists and is not empty; pass --overwrite to replace "
                "the files this run writes (other files are kept), or choose another --results-dir")
        self.path.mkdir(parents=True, exist_ok=True)
        self._log_handler: logging.Handler | None = None

    def file(self, name: str) -> Path:
        return self.path / name

    def write_bytes(self, name: str, payload: bytes) -> Path:
        target = self.file(name)
        handle, temporary = tempfile.mkstemp(dir=self.path, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(payload)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode())

    def write_csv(self, name: str, rows: Sequence[dict]) -> Path:
        if not rows:
            raise ValueError(f"no rows to write to {name}")
        buffer = io.StringIO()
        # rows may differ in keys (e.g. acquisition 0 has no pick comparisons): union, first-seen order
        fieldnames = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return self.write_text(name, buffer.getvalue())

    def save_figure(self, name: str, figure) -> Path:
        buffer = io.BytesIO()
        figure.savefig(buffer, format=Path(name).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
        return self.write_bytes(name, buffer.getvalue())

    def attach_log(self, logger: logging.Logger, append: bool = False) -> None:
        """Send the logger's records to LOG_FILE in this directory, line by line as the run goes
        (append=True continues an existing log, e.g. on resume)."""
        handler = logging.FileHandler(self.file(LOG_FILE), mode="a" if append else "w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        self._log_handler = handler

    def detach_log(self, logger: logging.Logger) -> None:
        if self._log_handler is not None:
            logger.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
