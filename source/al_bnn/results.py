"""The results directory: one writer at a time, log, configs as run, tidy metrics CSVs, plots.

The writer that owns a directory (lock=True) holds an exclusive lock on its lock file for as long
as it runs, taken before anything is written: a second run into the same directory is refused
with a message naming the holder (PID, host, start time), and a lock left by a process that died
is taken over. Every file is written to a temporary name in the same directory and renamed into
place, so a crash never leaves a truncated file that looks complete, and gets the permissions
`open()` would give it under the user's umask. An existing, non-empty directory is refused
unless overwrite=True, and overwriting only replaces files this writer writes. A file that cannot
be written (disk full, read-only file system, permission denied) is a WriteError naming it.

Every path goes through al_bnn.paths' policy: names are checked (no separators, no '..'), files lie
inside the directory, and the lock file and the log are opened without following a symbolic link
and refused if they are a FIFO, device or hard-linked file. A writer that owns its directory keeps a
manifest (WRITTEN_FILE) of the names it wrote, so that removing earlier files (remove_written, e.g.
stale checkpoints on --overwrite) deletes only files the package wrote there.
"""

from __future__ import annotations

import csv
import datetime
import errno
import io
import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from al_bnn.errors import BusyError, InputError
from al_bnn.paths import UnsafePathError, inside, open_regular, remove_file
from al_bnn.safe_arrays import WriteError, atomic_write_bytes

LOG_FILE = "log.txt"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOCK_FILE = ".al_bnn.lock"
WRITTEN_FILE = ".al_bnn_written"  # the manifest: one name per line of each file the package wrote here
MAX_MANIFEST_BYTES = 16 * 2**20


class ResultsDirectoryExistsError(InputError, FileExistsError):
    """The results directory already holds files and --overwrite was not given."""


class ResultsDirectoryBusyError(BusyError, RuntimeError):
    """Another live process holds the results directory's lock."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def describe_holder(holder: dict) -> str:
    return (f"PID {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}: "
            f"{holder.get('command')}")


class DirectoryLock:
    """An exclusive lock on `directory` through `fcntl.flock` on its lock file, which records the
    holder (PID, host, start time, command). The kernel releases a flock when its holder dies, so a
    lock left by a killed run is simply taken over (and the log says whose it was). On a file
    system without flock the record alone decides: a holder on this host whose PID no longer runs
    is taken over; any other holder is refused. The lock file is opened without following a
    symbolic link and must be a regular file with no other hard link (UnsafePathError otherwise),
    so locking can never truncate or create a file elsewhere, nor wait on a FIFO."""

    def __init__(self, directory: str | os.PathLike, name: str = LOCK_FILE):
        self.directory = Path(directory)
        self.path = self.directory / name
        self._fd: int | None = None
        self.taken_over: dict | None = None  # the dead holder's record, when its lock was taken over

    def _read_holder(self, fd: int) -> dict | None:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 65536).decode(errors="replace").strip()
        if not text:
            return None
        try:
            holder = json.loads(text)
        except ValueError:
            return {"pid": None, "host": None, "started": None, "command": f"unreadable lock record {text[:80]!r}"}
        return holder if isinstance(holder, dict) else None

    def _busy(self, holder: dict | None) -> ResultsDirectoryBusyError:
        who = describe_holder(holder) if holder else "a process that left no record"
        return ResultsDirectoryBusyError(
            f"{self.directory} is in use by another run ({who}); only one run may write into a results directory "
            f"at a time. Wait for it to finish, stop it, or choose another directory (lock file: {self.path})")

    def acquire(self) -> DirectoryLock:
        import fcntl

        try:
            fd = open_regular(self.path, "the lock file")
        except OSError as error:
            raise WriteError(self.path, "the lock file", error) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                raise self._busy(self._read_holder(fd)) from None
            except OSError as error:
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
                locked = False  # no flock on this file system: the record decides
            previous = self._read_holder(fd)
            if previous and previous.get("pid") not in (None, os.getpid()):
                same_host = previous.get("host") == socket.gethostname()
                alive = same_host and isinstance(previous.get("pid"), int) and _process_alive(previous["pid"])
                if not locked and (alive or not same_host):
                    raise self._busy(previous)
                self.taken_over = previous
            record = dict(pid=os.getpid(), host=socket.gethostname(),
                          started=datetime.datetime.now().isoformat(timespec="seconds"),
                          command=" ".join(sys.argv)[:500])
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(record).encode() + b"\n")
        except BaseException as error:
            os.close(fd)
            if isinstance(error, OSError) and not isinstance(error, WriteError):
                raise WriteError(self.path, "the lock file", error) from None
            raise
        self._fd = fd
        return self

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self, discard: bool = False) -> None:
        """Give the lock up; with discard=True also delete the lock file (still holding it, and only
        if the name still is the file locked), e.g. to leave no trace of a run that was refused."""
        if self._fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self._fd, 0)  # no record: nobody holds it
        except OSError:
            pass
        if discard:
            try:
                opened, named = os.fstat(self._fd), os.lstat(self.path)
                if (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino):
                    self.path.unlink()
            except OSError:
                pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


class LogFile(logging.FileHandler):
    """A run's log file. It is opened without following a symbolic link and must be a regular file
    with no other hard link (UnsafePathError otherwise), so a planted link never has its target
    overwritten. If a line cannot be written (disk full, ...) it says so once on stderr and writes
    nothing more, instead of a traceback per line; `failure` keeps the error."""

    def __init__(self, path: str | os.PathLike, mode: str):
        self.failure: WriteError | None = None
        super().__init__(path, mode=mode)

    def _open(self):
        fd = open_regular(self.baseFilename, "the log", truncate="w" in self.mode)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        if self.failure is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if self.failure is None and isinstance(error, OSError):
            self.failure = WriteError(self.baseFilename, "the log", error)
            print(f"warning: {self.failure}; the log stops here", file=sys.stderr)
        elif self.failure is None:
            super().handleError(record)


class ResultsWriter:
    """Writes files into `path` atomically. With lock=True it owns the directory: it takes the
    directory's lock before writing anything and holds it until close() (or the end of a `with`)."""

    def __init__(self, path: str | os.PathLike, overwrite: bool = False, lock: bool = False):
        self.path = Path(path)
        self._log_handler: LogFile | None = None
        self._log_failure: WriteError | None = None
        self.lock: DirectoryLock | None = None
        self._written: dict[str, None] | None = None  # the manifest's names (owners of the directory only)
        if self.path.exists() and not self.path.is_dir():
            raise ResultsDirectoryExistsError(f"{self.path} exists and is not a directory; choose another "
                                              "--results-dir")
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WriteError(self.path, "the results directory", error) from None
        if lock:
            self.lock = DirectoryLock(self.path).acquire()
        try:
            if not overwrite and any(p.name not in (LOCK_FILE, WRITTEN_FILE) for p in self.path.iterdir()):
                raise ResultsDirectoryExistsError(
                    f"results directory {self.path} already exists and is not empty; pass --overwrite to replace "
                    "the files this run writes (other files are kept), or choose another --results-dir")
            if lock:
                self._written = dict.fromkeys(self._read_manifest())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the directory's lock (if held)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def discard(self) -> bool:
        """Release the lock and delete the directory with everything in it, only if this writer created
        it (a run refused before it produced anything leaves no folder behind). True if deleted."""
        if not self.created:
            return False
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        return True

    def file(self, name: str) -> Path:
        """The path of `name` in the directory, checked by the path policy (al_bnn.paths.inside)."""
        return inside(self.path, name)

    def folder_for(self, name: str) -> Path:
        """The path of `name` after making its missing sub-folders as real folders (checked as by
        file() before and after: no sub-folder was replaced by a link meanwhile)."""
        target = self.file(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WriteError(target.parent, "the folder", error) from None
        return self.file(name)

    def write_bytes(self, name: str, payload: bytes) -> Path:
        """Write `name` (a path relative to the directory; missing sub-folders are made) atomically."""
        target = self.folder_for(name)
        self.record([name])
        return atomic_write_bytes(target, payload, "the results file")

    # -- the manifest of files written here -----------------------------------------------------------
    def _read_manifest(self) -> list[str]:
        """The names listed in WRITTEN_FILE that pass the path policy (others are ignored: they are
        never deleted)."""
        path = self.path / WRITTEN_FILE
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise WriteError(path, "the manifest of written files", error) from None
        try:
            fd = open_regular(path, "the manifest of written files")
        except OSError as error:
            raise WriteError(path, "the manifest of written files", error) from None
        with os.fdopen(fd, "rb") as stream:
            text = stream.read(min(info.st_size, MAX_MANIFEST_BYTES)).decode(errors="replace")
        names = []
        for line in text.splitlines():
            try:
                inside(self.path, line)
            except UnsafePathError:
                continue
            names.append(line)
        return names

    def record(self, names: Sequence[str]) -> None:
        """Add `names` (relative to the directory) to the manifest of files the package wrote here,
        before they are written (by this writer, or by code that writes them itself, e.g. checkpoints);
        only a writer that owns the directory (lock=True) keeps a manifest."""
        if self._written is None:
            return
        new = [str(name) for name in names if str(name) not in self._written]
        if not new:
            return
        for name in new:
            inside(self.path, name)
        path = self.path / WRITTEN_FILE
        try:
            fd = open_regular(path, "the manifest of written files")
            try:
                os.write(fd, "".join(f"{name}\n" for name in new).encode())
            finally:
                os.close(fd)
        except OSError as error:
            raise WriteError(path, "the manifest of written files", error) from None
        self._written.update(dict.fromkeys(new))

    def written(self) -> list[str]:
        """The names in the manifest (this writer's and earlier writers' in this directory)."""
        return list(self._written or ())

    def remove_written(self, names: Sequence[str]) -> list[str]:
        """Delete those of `names` that the manifest lists, each only if it is a regular file inside the
        directory (a link or special file there is refused); files the manifest does not list are
        never deleted. Returns the names deleted."""
        removed = []
        for name in names:
            if self._written is None or name not in self._written:
                continue
            try:
                if remove_file(self.path, name):
                    removed.append(name)
            except OSError as error:
                raise WriteError(self.path / name, "(deleting) the earlier file", error) from None
        if removed:
            assert self._written is not None  # only names in the manifest were removed
            for name in removed:
                del self._written[name]
            atomic_write_bytes(self.path / WRITTEN_FILE, "".join(f"{n}\n" for n in self._written).encode(),
                               "the manifest of written files")
        return removed

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

    def save_figure(self, name: str, figure, dpi: int = 120, bbox_inches: str | None = "tight") -> Path:
        """A matplotlib figure as `name` (its suffix gives the format), written as every other file."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format=Path(name).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches=bbox_inches)
        return self.write_bytes(name, buffer.getvalue())

    def attach_log(self, logger: logging.Logger, append: bool = False) -> None:
        """Send the logger's records to LOG_FILE in this directory, line by line as the run goes
        (append=True continues an existing log, e.g. on resume)."""
        self._log_handler = attach_log(self.path, logger, append)

    @property
    def log_failure(self) -> WriteError | None:
        """The error that stopped the log file, if a line could not be written."""
        return self._log_failure if self._log_handler is None else self._log_handler.failure

    def detach_log(self, logger: logging.Logger) -> None:
        if self._log_handler is not None:
            self._log_failure = self._log_handler.failure
            detach_log(logger, self._log_handler)
            self._log_handler = None


def attach_log(directory: str | os.PathLike, logger: logging.Logger, append: bool = False) -> LogFile:
    """The package's one way to log a run to a file: LOG_FILE in `directory` (checked by the path
    policy and opened by LogFile: no symbolic link followed, no FIFO, device or hard-linked file),
    one timestamped line per record, added to `logger`; append=True continues an existing log. A
    log that cannot be opened is a WriteError naming it. Undo with detach_log."""
    path = inside(directory, LOG_FILE, "the log")
    try:
        handler = LogFile(path, mode="a" if append else "w")
    except OSError as error:
        raise WriteError(path, "the log", error) from None
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    return handler


def detach_log(logger: logging.Logger, handler: logging.Handler) -> None:
    """Remove a handler attach_log added and close its file (a full disk that refuses the final
    flush is ignored here: the failure was already reported)."""
    logger.removeHandler(handler)
    try:
        handler.close()
    except OSError:
        pass
