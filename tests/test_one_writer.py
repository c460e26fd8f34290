"""Issue 33, one of each: every file the packages write goes through one atomic primitive
(al_bnn.safe_arrays.atomic_write_bytes: a temporary file in the folder, fsync, rename, the user's
umask), files are deleted by al_bnn.paths.remove_file only, logs are opened by results.attach_log
only, and free memory is probed by al_bnn.memory.available_memory only. Each public writer refuses
a symbolic link planted under a name it writes, leaving the link's target as it was."""

import ast
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from al_bnn import safe_arrays, suggest
from al_bnn.paths import UnsafePathError, open_regular, remove_file
from al_bnn.results import LOCK_FILE, WRITTEN_FILE, ResultsWriter
from al_bnn_lab import bench_models, bench_samplers, bench_suggest, suggest_example

SOURCE = Path(__file__).resolve().parent.parent / "source"
PRECIOUS = b"a file outside the output folder\n"


def _matplotlib_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(2, 2))
    figure.gca().plot([0, 1], [1, 0])
    return figure


def write_with_results_writer(folder: Path) -> None:
    with ResultsWriter(folder, overwrite=True, lock=True) as writer:
        writer.write_text("notes.md", "# notes\n")
        writer.write_csv("table.csv", [{"a": 1, "b": 2.5}])
        writer.write_bytes("runs/raw.bin", b"\x00\x01")
        writer.save_figure("plot.png", _matplotlib_figure())


def write_arrays(folder: Path) -> None:
    safe_arrays.save_arrays(folder / "arrays.npz", "test", 1, {"n": 2}, {"x": np.arange(3.0)})


def write_suggest_round(folder: Path) -> None:
    suggest.commit_round(folder, {"suggestions.csv": b"rank\n1\n", "history.csv": b"round\n0\n"},
                         lambda path: safe_arrays.save_arrays(path, "model", 1, {}, {"w": np.ones(2)}), 0,
                         overwrite=False)


def write_example_split(folder: Path) -> None:
    suggest_example.split_example("airfoil", 20, folder)


def write_bench_tables(folder: Path) -> None:
    bench_suggest.write_tables(folder, pool_rows=30, labelled_rows=10, features=3)


def write_model_benchmark_plot(folder: Path) -> None:
    report = pd.DataFrame({"dataset": ["a", "a"], "recipe": ["base", "other"], "coverage_90": [0.8, 0.9],
                           "mean_log_rmse_change": [0.0, -0.1], "change_low": [0.0, -0.2], "change_high": [0.0, 0.0]})
    bench_models.plot_report(report, folder / "models.png", baseline="base")


# each public writer, with a name it writes (where a planted link must be refused)
WRITERS = {
    "ResultsWriter": (write_with_results_writer, "table.csv"),
    "save_arrays": (write_arrays, "arrays.npz"),
    "suggest.commit_round": (write_suggest_round, "suggest_manifest.json"),
    "suggest_example.split_example": (write_example_split, "pool.csv"),
    "bench_suggest.write_tables": (write_bench_tables, "pool.csv"),
    "bench_models.plot_report": (write_model_benchmark_plot, "models.png"),
}
KEPT_OPEN = {LOCK_FILE, WRITTEN_FILE, ".lock", "log.txt"}  # opened in place by open_regular (lock, manifest, log)


@pytest.fixture
def primitive_targets(monkeypatch):
    """The paths written through the primitive: every loaded module of both packages that holds it
    gets a recording wrapper in its place."""
    real, targets = safe_arrays.atomic_write_bytes, []

    def recording(target, payload, what="file"):
        targets.append(Path(target))
        return real(target, payload, what)

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("al_bnn", "al_bnn_lab") and module is not None:
            for attribute, value in list(vars(module).items()):
                if value is real:
                    monkeypatch.setattr(module, attribute, recording)
    return targets


def _final_name(path: Path, folder: Path) -> str:
    """The name a written file ends up under: suggest renames `.NAME.pending` to NAME."""
    relative = path.relative_to(folder).as_posix()
    if path.name.startswith(".") and path.name.endswith(suggest.PENDING_SUFFIX):
        relative = relative[:-len(path.name)] + path.name[1:-len(suggest.PENDING_SUFFIX)]
    return relative


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_writes_each_file_through_the_one_primitive(tmp_path, primitive_targets, writer):
    folder = tmp_path / "out"
    folder.mkdir()
    WRITERS[writer][0](folder)
    present = {path.relative_to(folder).as_posix() for path in folder.rglob("*")
               if path.is_file() and path.name not in KEPT_OPEN}
    through_primitive = {_final_name(path, folder) for path in primitive_targets}
    assert present, "the writer wrote nothing"
    assert present <= through_primitive, f"written without the primitive: {sorted(present - through_primitive)}"


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_refuses_a_link_planted_under_a_name_it_writes(tmp_path, writer):
    function, name = WRITERS[writer]
    folder, precious = tmp_path / "out", tmp_path / "precious.txt"
    folder.mkdir()
    precious.write_bytes(PRECIOUS)
    (folder / name).symlink_to(precious)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        function(folder)
    assert precious.read_bytes() == PRECIOUS
    assert (folder / name).is_symlink() and os.readlink(folder / name) == str(precious)


def test_the_primitive_refuses_a_fifo_and_a_folder_and_keeps_the_umask(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    for name in ("fifo", "folder"):
        with pytest.raises(UnsafePathError, match="FIFO|folder"):
            safe_arrays.atomic_write_bytes(tmp_path / name, b"x")
    previous = os.umask(0o027)
    try:
        written = safe_arrays.atomic_write_bytes(tmp_path / "file.txt", b"x")
    finally:
        os.umask(previous)
    assert written.read_bytes() == b"x" and (written.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "file.txt", "folder"]  # no temporary file left


def test_open_regular_reads_without_creating_or_following_a_link(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing", "the manifest", read_only=True)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "real").write_text("text")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        open_regular(tmp_path / "link", "the manifest", read_only=True)
    fd = open_regular(tmp_path / "real", "the manifest", read_only=True)
    try:
        assert os.read(fd, 100) == b"text"
        with pytest.raises(OSError):
            os.write(fd, b"more")
    finally:
        os.close(fd)


def test_suggest_reads_a_linked_or_fifo_manifest_as_none_without_hanging(tmp_path):
    (tmp_path / "real.json").write_text('{"files": {}, "written": []}')
    (tmp_path / suggest.MANIFEST_FILE).symlink_to(tmp_path / "real.json")
    assert suggest.read_manifest(tmp_path) is None
    (tmp_path / suggest.MANIFEST_FILE).unlink()
    os.mkfifo(tmp_path / suggest.MANIFEST_FILE)
    assert suggest.read_manifest(tmp_path) is None
    (tmp_path / suggest.MANIFEST_FILE).unlink()
    (tmp_path / suggest.MANIFEST_FILE).write_text('{"files": {}, "written": ["history.csv"]}')
    assert suggest.read_manifest(tmp_path) == {"files": {}, "written": ["history.csv"]}


def test_remove_file_takes_the_packages_hidden_names_and_nothing_outside(tmp_path):
    (tmp_path / ".suggestions.csv.pending").write_text("x")
    assert remove_file(tmp_path, ".suggestions.csv.pending", hidden=True)
    assert not remove_file(tmp_path, ".suggestions.csv.pending", hidden=True)  # already gone
    for name in ("../escape", "..pending", ".a/b"):
        with pytest.raises(UnsafePathError):
            remove_file(tmp_path, name, hidden=True)
    with pytest.raises(UnsafePathError):
        remove_file(tmp_path, ".hidden")  # hidden names only when asked for
    (tmp_path / "outside.txt").write_bytes(PRECIOUS)
    (tmp_path / ".link.pending").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        remove_file(tmp_path, ".link.pending", hidden=True)
    assert (tmp_path / ".link.pending").is_symlink() and (tmp_path / "outside.txt").read_bytes() == PRECIOUS


def test_the_selection_benchmark_asks_the_librarys_memory_probe(monkeypatch):
    monkeypatch.setattr(bench_samplers, "available_memory", lambda: 12345)
    assert bench_samplers.available_bytes() == 12345
    monkeypatch.setattr(bench_samplers, "available_memory", lambda: None)
    assert bench_samplers.available_bytes() == 8 * 2**30


# -- the source: no second way to write, delete, rename, log or probe memory ---------------------------
DELETERS = {"unlink", "remove", "rmtree", "rmdir"}
ALLOWED = {  # module file -> the calls it may make, and why
    "al_bnn/paths.py": {"unlink", "rmdir"},  # remove_file and remove_empty_folder themselves
    "al_bnn/safe_arrays.py": {"unlink", "replace", "mkstemp"},  # the primitive: its temporary file and the rename
    "al_bnn/results.py": {"unlink", "rmtree", "LogFile", "FileHandler"},  # the lock file; a folder it made; the log
    "al_bnn/suggest.py": {"replace", "rmdir"},  # the round's pending files renamed in; an empty folder it made
}


def _receiver(node: ast.Call) -> str:
    value = node.func.value if isinstance(node.func, ast.Attribute) else None
    if isinstance(value, ast.Name):
        return value.id
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id + "()"
    if isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
        return value.value.id + "[]"
    return ""


def _writes_a_second_way(node: ast.Call, name: str) -> str | None:
    if name == "open" and _receiver(node) != "os":
        modes = [arg.value for arg in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
                 if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
        return "opened for writing" if any(set(mode) & set("wax+") for mode in modes) else None
    if name in ("write_text", "write_bytes"):
        receiver = _receiver(node)
        ok = receiver.endswith(("writer", "writers[]")) or receiver in ("self", "ResultsWriter()")
        return None if ok else "written past the results writer"
    if name in ("savefig", "savetxt", "save", "savez", "savez_compressed", "to_csv", "to_json") and node.args:
        to_buffer = isinstance(node.args[0], ast.Name) and node.args[0].id in ("buffer", "stream", "pool", "labelled")
        return None if to_buffer else "written to a path, not a buffer"
    return None


def _deletes_renames_or_logs_a_second_way(node: ast.Call, name: str, allowed: set[str]) -> str | None:
    if name not in (DELETERS | {"replace", "rename", "mkstemp", "LogFile", "FileHandler"}) - allowed:
        return None
    if name in ("replace", "rename", "remove") and _receiver(node) != "os":
        return None  # str.replace, DataFrame.rename, dataclasses.replace, list.remove
    return "outside the one way"


def second_ways(path: Path, relative: str) -> list[str]:
    """Calls in one source file that write, delete, rename, log or probe memory outside the one way."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "open" and any(isinstance(a, ast.Constant) and a.value == "/proc/meminfo" for a in node.args):
            problem = None if relative == "al_bnn/memory.py" else "a second memory probe"
        else:
            problem = (_writes_a_second_way(node, name)
                       or _deletes_renames_or_logs_a_second_way(node, name, ALLOWED.get(relative, set())))
        if problem:
            found.append(f"{relative}:{node.lineno} {name}: {problem}")
    return found


def test_no_module_writes_deletes_renames_or_logs_a_file_a_second_way():
    found = []
    for path in sorted([*SOURCE.glob("al_bnn/**/*.py"), *SOURCE.glob("al_bnn_lab/**/*.py"), *SOURCE.glob("*.py")]):
        found += second_ways(path, path.relative_to(SOURCE).as_posix())
    assert not found, "\n".join(found)


def test_the_source_check_catches_each_second_way(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text("import os\nfrom pathlib import Path\n"
                        "open('x', 'w')\nPath('x').write_text('y')\nfigure.savefig(path)\nos.replace('a', 'b')\n"
                        "Path('x').unlink()\nlogging.FileHandler('x')\nopen('/proc/meminfo')\n")
    found = second_ways(offender, "al_bnn_lab/offender.py")
    assert len(found) == 7, found


# -- one reader of a user's table ----------------------------------------------------------------------
def test_a_data_file_is_read_by_suggests_strict_reader(tmp_path):
    from al_bnn.data import DataFileError, read_table

    repeated = tmp_path / "repeated.csv"
    repeated.write_text("a,a,y\n1,2,3\n4,5,7\n")
    with pytest.raises(DataFileError, match=r"repeated.csv: column name\(s\) \['a'\] appear more than once"):
        read_table(repeated, "y")
    blank_lines = tmp_path / "blank.csv"
    blank_lines.write_text("a,y\n1,2\n\n3,oops\n")
    with pytest.raises(DataFileError, match=r"non-numeric cell 'oops' in column 'y' \(row 2\) on line 4"):
        read_table(blank_lines, "a")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,y\n1,\x00\n")
    with pytest.raises(DataFileError, match="holds binary data"):
        read_table(binary, "y")
    fine = tmp_path / "fine.csv"
    fine.write_text("a,y\n1,2\n\n3,5\n")
    features, target = read_table(fine, "y")
    assert features.tolist() == [[1.0], [3.0]] and target.tolist() == [2.0, 5.0]
