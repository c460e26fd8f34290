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
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from al_bnn.errors import InputError, WriteFailure
from al_bnn.paths import check_replaceable

HEADER_KEY = "__header__"
PICKLE_MAGIC = b"\x80"  # every pickle protocol >= 2 starts with the PROTO opcode


class ArrayFileError(InputError, ValueError):
    """A file is not a readable array file of the expected kind; the message names it and why."""


class WriteError(WriteFailure, OSError):
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
    """The package's one way to write a file: `payload` goes to a new temporary file in the target's
    folder (created exclusively and without following a link: tempfile.mkstemp opens it with
    O_CREAT | O_EXCL | O_NOFOLLOW), is flushed and fsynced, gets the mode `open()` would give it
    under the user's umask, and is renamed over `target`; a crash never leaves half a file under the
    real name. A `target` that is a symbolic link, FIFO, device or folder is refused
    (UnsafePathError) before anything is written: the rename would replace the link, but the
    package never writes where a link points nor through one.

    An OSError (disk full, read-only file system, permission denied) becomes a WriteError naming
    `what` and the path; the temporary file is removed and `target` keeps its previous content."""
    target = Path(target)
    check_replaceable(target, what)
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise WriteError(target, what, error) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
            os.fchmod(stream.fileno(), umask_mode())
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
    # savez's stub types a ** mapping as possibly holding its allow_pickle flag; these keys are array names.
    np.savez(buffer, **{HEADER_KEY: encoded}, **{name: np.asarray(value)  # type: ignore[arg-type]
                                                 for name, value in arrays.items()})
    return atomic_write_bytes(path, buffer.getvalue(), what)


def _plain(value):
    """JSON fallback for NumPy scalars and arrays in a header."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# -- reading: every size is checked from the declared shapes before any array data is read ------------
MAX_ARRAY_BYTES = 16 * 2**30    # the declared size of all arrays of one file together
MAX_HEADER_BYTES = 64 * 2**20   # the JSON header (a checkpoint's holds every metrics row)
MAX_MEMBERS = 100_000
COMPRESSED_FLOOR_BYTES = 64 * 2**20  # compressed members may expand to this much, or ...
MAX_EXPANSION = 64                   # ... this many times the file's size on disk, whichever is more
_READ_CHUNK = 2**20
_ARRAY_KINDS = "biufc"  # booleans and numbers only: no objects, strings, records or void


class ArrayMember:
    """One array of an open file as its npy header declares it (nothing of its data read yet)."""

    __slots__ = ("name", "info", "shape", "dtype", "fortran", "nbytes", "offset")

    def __init__(self, name: str, info: zipfile.ZipInfo, shape: tuple[int, ...], dtype: np.dtype, fortran: bool,
                 offset: int):
        self.name, self.info, self.shape, self.dtype, self.fortran, self.offset = \
            name, info, shape, dtype, fortran, offset
        self.nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow


class ArrayReader(Mapping):
    """An array file opened for reading: the header parsed and every member's npy header read and
    checked (dtype, shape, declared sizes against the caps) before any array data is read. As a
    mapping it reads a member when it is asked for, so members nobody asks for are never
    decompressed; `shape(name)` gives a declared shape without reading. Close it (or use `with`)."""

    def __init__(self, path: str | os.PathLike, kind: str, versions: tuple[int, ...] = (1,),
                 max_bytes: int = MAX_ARRAY_BYTES):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if not self.path.is_file():
            raise ArrayFileError(f"{self.path}: file not found")
        with open(self.path, "rb") as stream:
            start = stream.read(2)
        if start[:1] == PICKLE_MAGIC:
            raise ArrayFileError(f"{self.path}: this is a pickle file (an older format of this package, or not ours). "
                                 "Pickles can run arbitrary code when loaded, so it is refused and was not read; "
                                 "rerun the step that wrote it with the current version")
        try:
            self._open(kind, versions, max_bytes)
        except ArrayFileError:
            self.close()
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, TypeError,
                UnicodeDecodeError, RecursionError, NotImplementedError, RuntimeError, OverflowError) as error:
            # ValueError includes bad JSON and npy headers; RuntimeError an encrypted member;
            # NotImplementedError an unknown compression method
            self.close()
            raise ArrayFileError(f"{self.path}: unreadable (truncated, corrupt or not a {kind} file): "
                                 f"{type(error).__name__}: {_brief(error)}") from None

    def _open(self, kind: str, versions: tuple[int, ...], max_bytes: int) -> None:
        self._zip = zipfile.ZipFile(self.path)
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ArrayFileError(f"{self.path}: {len(infos)} members, more than the {MAX_MEMBERS} a file of this "
                                 "package has")
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise ArrayFileError(f"{self.path}: a member name is repeated; not a file this package wrote")
        bad = [name for name in names if not name.endswith(".npy")]
        if bad:
            raise ArrayFileError(f"{self.path}: member {_brief(bad[0])} is not an array; not a file this package "
                                 "wrote")
        members = {info.filename[:-4]: self._member(info) for info in infos}
        header_member = members.pop(HEADER_KEY, None)
        if header_member is None:
            raise ArrayFileError(f"{self.path}: not a {kind} file of this package (no header)")
        if header_member.dtype != np.uint8 or len(header_member.shape) != 1 \
                or header_member.nbytes > MAX_HEADER_BYTES:
            raise ArrayFileError(f"{self.path}: its header is not a JSON text of at most {MAX_HEADER_BYTES} bytes "
                                 f"(declared {header_member.dtype.str} {header_member.shape})")
        compressed = any(m.info.compress_type != zipfile.ZIP_STORED for m in [header_member, *members.values()])
        size_on_disk = self.path.stat().st_size
        cap = min(max_bytes, max(COMPRESSED_FLOOR_BYTES, MAX_EXPANSION * size_on_disk)) if compressed else max_bytes
        total = sum(m.nbytes for m in members.values())
        if total > cap:
            largest = max(members.values(), key=lambda m: m.nbytes)
            raise ArrayFileError(f"{self.path}: its arrays declare {total} bytes in all (e.g. {largest.name!r}: "
                                 f"{largest.dtype.str} {_brief(largest.shape)}), more than the {cap} allowed for a "
                                 f"file of {size_on_disk} bytes; refused before reading any of it")
        header = json.loads(self._data(header_member).tobytes().decode())
        if not isinstance(header, dict) or header.get("kind") != kind:
            found = header.get("kind") if isinstance(header, dict) else type(header).__name__
            raise ArrayFileError(f"{self.path}: a {_brief(found)} file, not a {kind!r} file")
        if header.get("version") not in versions:
            raise ArrayFileError(f"{self.path}: {kind} format version {_brief(header.get('version'))} is not one "
                                 f"this version of the package reads ({', '.join(map(str, versions))}); use the "
                                 "package version that wrote it")
        self.header: dict = header
        self.members: dict[str, ArrayMember] = members

    def _member(self, info: zipfile.ZipInfo) -> ArrayMember:
        name = info.filename[:-4]
        assert self._zip is not None  # open from __init__ until close()
        with self._zip.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ArrayFileError(f"{self.path}: array {_brief(name)} has npy format version {version}, which "
                                     "this package never writes")
            offset = stream.tell()
        if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.subdtype is not None:
            raise ArrayFileError(f"{self.path}: unreadable: array {_brief(name)} has dtype {_brief(dtype.str)}; "
                                 "only numbers and booleans are read (object arrays could run code)")
        if not isinstance(shape, tuple) or len(shape) > 32 or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
            raise ArrayFileError(f"{self.path}: array {_brief(name)} declares the shape {_brief(shape)}")
        member = ArrayMember(name, info, shape, dtype, bool(fortran), offset)
        if info.file_size != offset + member.nbytes:
            raise ArrayFileError(f"{self.path}: array {_brief(name)} declares {member.nbytes} bytes of data "
                                 f"({dtype.str} {_brief(shape)}) but its member holds {info.file_size - offset}; "
                                 "the file is corrupt or crafted")
        return member

    def _data(self, member: ArrayMember) -> np.ndarray:
        """The member's data, read in chunks into one buffer of its declared size (checked against
        the member's size and CRC: a member that decompresses to more or less is refused)."""
        buffer = np.empty(member.nbytes, dtype=np.uint8)
        view = memoryview(buffer)  # type: ignore[arg-type]  # numpy's stubs declare __buffer__ for Python >= 3.12 only
        assert self._zip is not None  # open from __init__ until close()
        with self._zip.open(member.info) as stream:
            stream.seek(member.offset)
            position = 0
            while position < member.nbytes:
                chunk = stream.read(min(_READ_CHUNK, member.nbytes - position))
                if not chunk:
                    raise ArrayFileError(f"{self.path}: array {_brief(member.name)} is truncated")
                view[position:position + len(chunk)] = chunk
                position += len(chunk)
            if stream.read(1):
                raise ArrayFileError(f"{self.path}: array {_brief(member.name)} holds more data than it declares")
        return buffer

    # -- the mapping: names without '.npy', values read on demand ------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        """The declared shape of member `name`, without reading it."""
        return self.members[name].shape

    def __getitem__(self, name: str) -> np.ndarray:
        member = self.members[name]
        try:
            data = self._data(member)
        except ArrayFileError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
            raise ArrayFileError(f"{self.path}: array {_brief(name)} unreadable: {type(error).__name__}: "
                                 f"{_brief(error)}") from None
        array = data.view(member.dtype) if member.nbytes else np.empty(0, member.dtype)
        return array.reshape(member.shape, order="F" if member.fortran else "C")

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def require(self, names: Iterable[str], what: str = "file") -> None:
        """Refuse a file whose arrays are not exactly `names` (the ones its header names)."""
        expected = set(names)
        missing = sorted(expected - set(self.members))
        extra = sorted(set(self.members) - expected)
        if missing or extra:
            parts = ([f"missing {', '.join(map(_brief, missing[:5]))}"] if missing else []) + \
                    ([f"unexpected {', '.join(map(_brief, extra[:5]))}"] if extra else [])
            raise ArrayFileError(f"{self.path}: its arrays are not the ones its header names ({'; '.join(parts)}); "
                                 f"not a {what} this package wrote")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> ArrayReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_arrays(path: str | os.PathLike, kind: str, versions: tuple[int, ...] = (1,),
                max_bytes: int = MAX_ARRAY_BYTES) -> ArrayReader:
    """An ArrayReader of a file written by save_arrays with this `kind` and a known version: the
    header and the arrays' declared shapes are checked, no array data is read yet."""
    return ArrayReader(path, kind, versions, max_bytes)


def load_arrays(path: str | os.PathLike, kind: str, versions: tuple[int, ...] = (1,), *,
                expect: Callable[[dict], Iterable[str]] | None = None,
                max_bytes: int = MAX_ARRAY_BYTES) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a file written by save_arrays with this `kind` and a known version.

    Refuses, naming the file: a missing file, a pickle (never unpickled), a truncated or corrupt
    file, a file of another kind or an unknown version, object arrays, and arrays whose declared
    sizes exceed `max_bytes` in all (checked from the npy headers before any data is read, so a
    small file cannot make it allocate much more than it holds). `expect(header)`, if given, names
    the arrays the header says the file holds: any other, or one missing, is refused, and only
    those are read. It may raise ArrayFileError itself (a header it cannot use)."""
    with open_arrays(path, kind, versions, max_bytes) as reader:
        if expect is not None:
            reader.require(expect(reader.header), kind)
        return reader.header, {name: reader[name] for name in reader}


def _brief(value: object, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters: messages never print an unbounded value."""
    text = repr(value) if not isinstance(value, BaseException) else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
