"""Where the repository's own files are, for code run from a checkout (configs, shipped data,
the committed report; an installed copy without the checkout falls back to the working directory),
and the one path policy for every file the package writes, locks or deletes: names derived from
data are checked by safe_name, paths by inside, and files are opened by open_regular (no symbolic
link followed, no FIFO, device or hard-linked file written)."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from al_bnn.errors import InputError

_CHECKOUT = Path(__file__).resolve().parents[2]  # source/al_bnn/paths.py -> the repository root
REPO_ROOT = _CHECKOUT if (_CHECKOUT / "configs").is_dir() else Path.cwd()
SHIPPED_UCI_ROOT = REPO_ROOT / "data" / "uci"


def repo_file(path: str | Path) -> Path:
    """`path` as given, unless it does not exist and the repository root holds it (e.g. the
    default `configs/...` run from another folder); a missing file keeps the name the user gave."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPO_ROOT / path).exists():
        return path
    return REPO_ROOT / path


# -- the path policy for every file the package writes, locks or deletes -----------------------------
# A name derived from data (a run label, a dataset or sampler name, a CSV header) becomes a file name
# only if it is made of these characters, does not start with '.', and is at most this long.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
MAX_NAME_LENGTH = 120


class UnsafePathError(InputError, ValueError):
    """A name that would become a file name, or a file the package would write, lock or delete, is
    not safe: a separator, '..', a symbolic link, a hard link, a FIFO or device, or a path outside
    the output folder. The message names the value and the fix."""


def safe_name(text: object, what: str) -> str:
    """`text` if it can be used as (part of) a file name on its own: letters, digits, '_', '.', '+'
    and '-', not starting with '.' (so no '..', no hidden files) and at most MAX_NAME_LENGTH
    characters. Anything else is an UnsafePathError naming `what` and the value."""
    value = str(text)
    if len(value) <= MAX_NAME_LENGTH and SAFE_NAME.fullmatch(value):
        return value
    shown = value if len(value) <= 80 else value[:80] + f"... ({len(value)} characters)"
    raise UnsafePathError(
        f"{what} {shown!r} cannot be used in a file name: use 1 to {MAX_NAME_LENGTH} letters, digits, '_', '.', "
        "'+' or '-', not starting with '.' (no '/', '\\' or '..'); rename it")


def inside(directory: str | os.PathLike, name: str | os.PathLike, what: str = "file") -> Path:
    """`directory / name` after checking that it lies inside `directory`: `name` is relative, each of
    its parts a safe_name, and no folder between `directory` and the file is a symbolic link or
    anything but a folder (so nothing written there can land elsewhere). The file itself may not
    exist yet; if it exists it must be a regular file, not a link (UnsafePathError naming `what`)."""
    directory = Path(directory)
    relative = Path(name)
    if relative.is_absolute() or not relative.parts:
        raise UnsafePathError(f"file name {str(name)!r} must be relative to {directory}")
    for part in relative.parts:
        safe_name(part, f"file name part of {str(name)!r}:")
    current = directory
    for part in relative.parts[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # made later as a real folder (mkdir does not follow a link that is not there)
        if not stat.S_ISDIR(mode):
            raise UnsafePathError(f"{current} is a symbolic link or not a folder; the package writes only into real "
                                  f"folders inside {directory}: remove or rename it")
    target = directory / relative
    _check_not_special(target, what, hard_links_ok=True)  # replaced by a rename: other links keep their content
    return target


def check_replaceable(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse (UnsafePathError) a `path` that the atomic writer would replace by a rename but that is
    not a plain file: a symbolic link, FIFO, device or folder. A missing path is fine; so is a
    hard-linked file (a rename gives the name a new file, the other names keep the old one)."""
    _check_not_special(Path(path), what, hard_links_ok=True)


def _check_not_special(path: Path, what: str, hard_links_ok: bool = False) -> os.stat_result | None:
    """lstat of `path` (None if it does not exist) after refusing a link, FIFO, device, socket or
    folder, and a regular file with other hard links (writing it would change a file elsewhere)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    _refuse_special(path, info, what, hard_links_ok)
    return info


def _refuse_special(path: Path, info: os.stat_result, what: str, hard_links_ok: bool = False) -> None:
    if stat.S_ISLNK(info.st_mode):
        kind = "a symbolic link"
    elif not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode)
                or stat.S_ISBLK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) else "a special file")
    elif info.st_nlink > 1 and not hard_links_ok:
        kind = f"a file with {info.st_nlink} hard links"
    else:
        return
    raise UnsafePathError(f"{what} {path} is {kind}; the package never writes, locks or deletes through links or "
                          "special files (that could change a file outside the output folder): remove it, or choose "
                          "another output folder")


def open_regular(path: str | os.PathLike, what: str, truncate: bool = False, *, read_only: bool = False) -> int:
    """A file descriptor for reading and appending to the regular file `path`, created if missing,
    opened without following a symbolic link and without blocking on a FIFO; a link, FIFO, device,
    folder or hard-linked file (written in place, it would change the other names too) is refused
    (UnsafePathError) before anything is written to it, and only then truncated if `truncate`.
    With read_only=True: a descriptor for reading an existing file (FileNotFoundError if missing),
    with the same refusals except for hard links (reading one changes nothing). An OSError
    (permission, read-only, ...) is left to the caller."""
    path = Path(path)
    _check_not_special(path, what, hard_links_ok=read_only)
    if read_only:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    else:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            _check_not_special(path, what, hard_links_ok=read_only)  # a link made since the check above
        raise
    try:
        _refuse_special(path, os.fstat(fd), what, hard_links_ok=read_only)  # what was opened, not what lstat saw
        os.set_blocking(fd, True)
        if truncate and not read_only:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_file(directory: str | os.PathLike, name: str, *, hidden: bool = False) -> bool:
    """Delete `directory / name` if it is a regular file inside `directory` (checked as by inside());
    a link or special file there is refused, a missing file ignored. True if a file was removed.
    hidden=True also allows one leading '.' (the package's own temporary and pending names, e.g.
    suggest's `.suggestions.csv.pending`); the rest of the name is checked as any other."""
    if hidden and name.startswith("."):
        safe_name(name[1:], "file name")  # one part: no separator, no '..'
        target = Path(directory) / name
        _check_not_special(target, "file", hard_links_ok=True)
    else:
        target = inside(directory, name)
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_empty_folder(directory: str | os.PathLike, name: str | os.PathLike) -> bool:
    """Remove the folder `directory / name` if it is empty and a real folder inside `directory`
    (every folder on the way checked as by inside(), the folder itself too, right before): a link,
    a folder with anything in it or a missing one is left alone. True if it was removed."""
    folder = inside(directory, Path(name) / "probe", "folder").parent
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        os.rmdir(folder)
    except OSError:
        return False
    return True
