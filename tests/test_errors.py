"""One exception base: every error the package raises for a user derives from al_bnn.errors.AlBnnError,
its class gives the command's exit code, and anything else (a plain ValueError: a bug) reaches the
user with its traceback instead of a silent "bad input" exit 2."""

import errno
import importlib
import inspect
import pkgutil
import re
import signal
from pathlib import Path

import numpy as np
import pytest

import al_bnn
from al_bnn import suggest
from al_bnn.cli import Aborted, StoppedEarly, exit_code_for, run_reporting_errors
from al_bnn.config import ConfigError
from al_bnn.data import DataFileError, DataUnavailableError, hold_out, load_dataset, split_by_seed
from al_bnn.errors import (
    EXIT_BAD_INPUT,
    EXIT_BUSY,
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_WRITE_FAILED,
    AlBnnError,
    BusyError,
    DivergedError,
    InputError,
    WriteFailure,
)
from al_bnn.results import ResultsDirectoryBusyError, ResultsDirectoryExistsError
from al_bnn.safe_arrays import ArrayFileError, WriteError
from al_bnn_lab import bench_models, benchmark, comparison, suggest_example

DOCS = Path(__file__).resolve().parent.parent / "docs"

# exception classes of the package that are not AlBnnErrors, each with the reason
NOT_ALBNN_ERRORS = {
    "al_bnn.loop.StopRequested": "a stop asked for (SIGINT/SIGTERM) carrying the checkpointed state, not an error",
    "al_bnn.cli.StoppedEarly": "a sweep stopped as asked; exit_code_for maps it to 128 + signal",
    "al_bnn.cli.Aborted": "a second stop signal; a BaseException on purpose, mapped to 128 + signal",
}


def package_exception_classes() -> dict[str, type]:
    """Every exception class defined in a module of the packages (imported: the classes as Python sees them)."""
    import al_bnn_lab

    found = {}
    infos = [*pkgutil.walk_packages(al_bnn.__path__, "al_bnn."),
             *pkgutil.walk_packages(al_bnn_lab.__path__, "al_bnn_lab.")]  # the library and the harness
    for info in infos:
        module = importlib.import_module(info.name)
        for name, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__ and issubclass(value, BaseException):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_error_class_of_the_package_derives_from_AlBnnError_with_a_specific_exit_code():
    classes = package_exception_classes()
    assert "al_bnn.config.ConfigError" in classes and "al_bnn.safe_arrays.WriteError" in classes  # the walk works
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, AlBnnError))
    assert outside == sorted(name for name in NOT_ALBNN_ERRORS if name in classes), \
        "derive these from al_bnn.errors.AlBnnError (or list them in NOT_ALBNN_ERRORS with the reason)"
    assert set(NOT_ALBNN_ERRORS) <= set(classes), "a listed exception no longer exists: remove it from the list"
    bases = (InputError, DivergedError, BusyError, WriteFailure)
    vague = sorted(name for name, cls in classes.items()
                   if issubclass(cls, AlBnnError) and cls.__module__ != "al_bnn.errors" and not issubclass(cls, bases))
    assert not vague, f"{vague}: derive from InputError, DivergedError, BusyError or WriteFailure (the exit code)"


def test_the_built_in_bases_are_kept_so_except_clauses_of_callers_still_catch_them():
    assert issubclass(ConfigError, ValueError) and issubclass(DataFileError, ValueError)
    assert issubclass(ArrayFileError, ValueError) and issubclass(WriteError, OSError)
    assert issubclass(ResultsDirectoryExistsError, FileExistsError)
    assert issubclass(ResultsDirectoryBusyError, RuntimeError) and issubclass(DataUnavailableError, RuntimeError)
    error = WriteError("/nowhere/file", "the log", OSError(errno.ENOSPC, "No space left on device"))
    assert error.errno == errno.ENOSPC and "could not write the log /nowhere/file" in str(error)


@pytest.mark.parametrize("error, code", [
    (AlBnnError("x"), EXIT_FAILED),
    (InputError("x"), EXIT_BAD_INPUT),
    (ConfigError("x"), 2),
    (DataFileError("x"), 2),
    (DataUnavailableError("x"), 2),
    (ArrayFileError("x"), 2),
    (ResultsDirectoryExistsError("x"), 2),
    (DivergedError("x"), EXIT_DIVERGED),
    (BusyError("x"), EXIT_BUSY),
    (ResultsDirectoryBusyError("x"), 4),
    (WriteFailure("x"), EXIT_WRITE_FAILED),
    (WriteError("/f", "a file", OSError(errno.EROFS, "Read-only file system")), 5),
    (StoppedEarly(3, signal.SIGTERM), 143),
    (StoppedEarly(3), 130),
    (Aborted(signal.SIGINT), 130),
])
def test_exit_code_for_follows_the_class(error, code):
    assert exit_code_for(error) == code


def test_the_loop_errors_map_to_their_documented_codes():
    from al_bnn.checkpoint import CheckpointError, ResumeMismatchError
    from al_bnn.loop import TrainingDiverged

    assert exit_code_for(CheckpointError("x")) == exit_code_for(ResumeMismatchError("x")) == 2
    assert exit_code_for(TrainingDiverged("x")) == 3


@pytest.mark.parametrize("error", [ValueError("bug"), OSError("bug"), FileExistsError("bug"), RuntimeError("bug"),
                                   KeyError("bug"), TypeError("bug")])
def test_an_error_that_is_no_AlBnnError_has_no_exit_code(error):
    assert exit_code_for(error) is None


def test_run_reporting_errors_lets_a_plain_ValueError_through_and_reports_a_ConfigError(capsys):
    def bug() -> int:
        raise ValueError("an internal bug")

    with pytest.raises(ValueError, match="an internal bug"):
        run_reporting_errors(bug)

    def bad_input() -> int:
        raise ConfigError("config.yaml: key 'x': bad")

    assert run_reporting_errors(bad_input) == 2
    assert capsys.readouterr().err == "error: config.yaml: key 'x': bad\n"


def _raiser(error: BaseException):
    def raise_it(*args, **kwargs):
        raise error
    return raise_it


@pytest.mark.parametrize("command, target, argv", [
    (comparison.main, "al_bnn_lab.comparison._run", None),
    (benchmark.main, "al_bnn_lab.benchmark._run", []),
    (bench_models.main, "al_bnn_lab.bench_models.load_benchmark_config", []),
    (suggest.main, "al_bnn.suggest.run_round",
     ["--labelled", "l.csv", "--target", "y", "--pool", "p.csv", "--n", "1", "--out", "o"]),
    (suggest_example.example_main, "al_bnn_lab.suggest_example.label_example",
     ["label", "--dir", "d", "--suggestions", "s"]),
])
def test_a_plain_ValueError_inside_a_command_keeps_its_traceback(monkeypatch, capsys, command, target, argv):
    if command is comparison.main:
        def command(argv):
            return comparison.main(comparison.Comparison("test", [], "r", "p.png", lambda results: ""), argv)
        argv = ["--quiet"]
    monkeypatch.setattr(target, _raiser(ValueError("an internal bug")))
    with pytest.raises(ValueError, match="an internal bug"):
        command(argv)
    monkeypatch.setattr(target, _raiser(ConfigError("a named bad value")))
    assert command(argv) == 2
    assert "error: a named bad value" in capsys.readouterr().err


def test_input_problems_met_by_a_command_are_input_errors(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i * 0.5}\n" for i in range(10)))
    with pytest.raises(ConfigError, match="dataset 'file' needs a path"):
        load_dataset("file")
    with pytest.raises(ConfigError, match="size_pool=50 is larger than the 8 points available"):
        load_dataset("file", path=table, target="y", size_pool=50)
    with pytest.raises(DataFileError, match="no_such_set"):
        load_dataset("no_such_set", uci_root_dir=tmp_path)
    features, target = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    with pytest.raises(ConfigError, match="test_fraction must be between 0 and 1"):
        split_by_seed(features, target, "t", 0, test_fraction=1.5)
    with pytest.raises(ConfigError, match="validation_fraction must be in"):
        hold_out(features, target, features, target, "t", 0, 1.5)


def test_the_loop_and_report_inputs_are_input_errors(tmp_path):
    from al_bnn.loop import initial_training_set
    from al_bnn_lab.study import update_headline

    with pytest.raises(ConfigError, match="num_train_init=30 exceeds the pool of 20 points"):
        initial_training_set(0, 20, 30)
    page = tmp_path / "results.md"
    page.write_text("# results, no markers\n")
    with pytest.raises(DataFileError, match="lacks the study headline markers"):
        update_headline(page, "headline")


def test_the_walk_through_names_a_missing_file_and_an_unknown_id(tmp_path, capsys):
    suggestions = tmp_path / "suggestions.csv"
    assert suggest_example.example_main(["label", "--dir", str(tmp_path), "--suggestions", str(suggestions)]) == 2
    assert "labelled.csv: file not found" in capsys.readouterr().err
    (tmp_path / "labelled.csv").write_text("id,x,y\na,1,2\nb,2,3\n")
    (tmp_path / "answers.csv").write_text("id,y\na,2\nb,3\nc,4\n")
    suggestions.write_text("id,x\nc,5\nzz,6\n")
    assert suggest_example.example_main(["label", "--dir", str(tmp_path), "--suggestions", str(suggestions)]) == 2
    assert "['zz'] are not in" in capsys.readouterr().err
    assert (tmp_path / "labelled.csv").read_text() == "id,x,y\na,1,2\nb,2,3\n"  # nothing appended


def test_the_documented_exit_codes_are_the_classes_codes():
    text = (DOCS / "reliability.md").read_text()
    table = text[text.index("- **Exit codes**"):text.index("- **Error messages")]
    documented = {int(code) for code in re.findall(r"^\s*\| (\d+) \|", table, flags=re.MULTILINE)}
    assert {EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_BUSY, EXIT_WRITE_FAILED} <= documented
    for name in ("InputError", "DivergedError", "BusyError", "WriteFailure", "AlBnnError"):
        assert f"`{name}`" in table, name
