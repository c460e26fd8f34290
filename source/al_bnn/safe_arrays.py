"""Arrays plus a JSON header in one `.npz` file: the package's only on-disk format for trained
state (saved estimators, learners, checkpoints).

Loading uses `numpy.load(..., allow_pickle=False)` and `json.loads`, neither of which can run code,
so a file from a shared directory or another user is safe to open: the worst it can do is fail to
load, with a message naming the file. Writes go to a temporary file in the same folder, are
flushed to disk and renamed into place, so a crash never leaves half a file under the real name;
the file gets the permissions `open()` would give it under the user's umask.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

HEADER_KEY = "__header__"
PICKLE_MAGIC = b"\x80"  # every pickle protocol >= 2 starts with the PROTO opcode


class ArrayFileError(ValueError):
    """A file is not a readable array file of the expected kind; the message names it and why."""


class WriteError(OSError):
    """A file could not be written: disk full, read-only file system, permission denied. The
    message names the path and what could not be written; nothing half-written is left under
    the real name (writes go through a temporary file that is removed on failure)."""

    def __init__(self, path: str | os.PathLike, what: str, error: OSError):
        super().__init__(error.errno, error.strerror or str(error), str(path))
        self.path, self.what, self.cause = Path(path), what, error

    def __str__(self) -> str:
        reason = self.cause.strerror or str(self.cause)
        return f"could not write {self.what} {self.path}: {reason} (errno {self.cause.errno})"


def umask_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the process's umask (read from /proc where
    Linux shows it, so other threads never see the umask changed; elsewhere set and restored)."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(target: str | os.PathLike, payload: bytes, what: str = "file") -> Path:
    """Write `payload` to `target` through a temporary file in the same folder, fsync and rename.

    An OSError (disk full, read-only file system, permission denied) becomes a WriteError naming
    `what` and the path; the temporary file is removed and `target` keeps its previous content."""
    target = Path(target)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise WriteError(target, what, error) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, umask_mode())
        os.replace(temporary, target)
    except BaseException as error:
        try:
            Path(temporary).unlink(missing_ok=True)
        except OSError:
            pass  # the original error is the one to report
        if isinstance(error, OSError):
            raise WriteError(target, what, error) from None
        raise
    return target


def save_arrays(path: str | os.PathLike, kind: str, version: int, header: Mapping,
                arrays: Mapping[str, np.ndarray], what: str = "file") -> Path:
    """Write `arrays` (names without a leading '__') and a JSON-serialisable `header` to `path`
    (NumPy scalars in the header are written as plain numbers; mappings keep their key order)."""
    import io

    bad = [name for name in arrays if name.startswith("__")]
    if bad:
        raise ValueError(f"array names may not start with '__': {bad}")
    full_header = {"kind": kind, "version": int(version), **header}
    encoded = np.frombuffer(json.dumps(full_header, default=_plain).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **{HEADER_KEY: encoded}, **{name: np.asarray(value) for name, value in arrays.items()})
    return atomic_write_bytes(path, buffer.getvalue(), what)


def _plain(value):
    """JSON fallback for NumPy scalars and arrays in a header."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_arrays(path: str | os.PathLike, kind: str,
                versions: tuple[int, ...] = (1,)) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a file written by save_arrays with this `kind` and a known version.

    Refuses, naming the file: a missing file, a pickle (never unpickled), a truncated or corrupt
    file, a file of another kind or an unknown version, and object arrays."""
    path = Path(path)
    if not path.is_file():
        raise ArrayFileError(f"{path}: file not found")
    with open(path, "rb") as stream:
        start = stream.read(2)
    if start[:1] == PICKLE_MAGIC:
        raise ArrayFileError(f"{path}: this is a pickle file (an older format of this package, or not ours). "
                             "Pickles can run arbitrary code when loaded, so it is refused and was not read; "
                             "rerun the step that wrote it with the current version")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if HEADER_KEY not in archive.files:
                raise ArrayFileError(f"{path}: not a {kind} file of this package (no header)")
            header = json.loads(archive[HEADER_KEY].tobytes().decode())
            arrays = {name: archive[name] for name in archive.files if name != HEADER_KEY}
    except ArrayFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError) as error:
        # ValueError includes numpy's refusal of object arrays without allow_pickle, and bad JSON
        raise ArrayFileError(f"{path}: unreadable (truncated, corrupt or not a {kind} file): "
                             f"{type(error).__name__}: {error}") from None
    if not isinstance(header, dict) or header.get("kind") != kind:
        found = header.get("kind") if isinstance(header, dict) else type(header).__name__
        raise ArrayFileError(f"{path}: a {found!r} file, not a {kind!r} file")
    if header.get("version") not in versions:
        raise ArrayFileError(f"{path}: {kind} format version {header.get('version')!r} is not one this version of "
                             f"the package reads ({', '.join(map(str, versions))}); use the package version that "
                             "wrote it")
    return header, arrays
