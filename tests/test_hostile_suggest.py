"""Issue 31, the suggest command attacked as a hostile user would: blank lines that shifted the
printed rows, output columns that overwrote the user's, a resumed model for another target, CSV
formula injection, extreme magnitudes, unwritable --out, disk full half-way through a round,
--overwrite leaving old round files, huge configs, duplicate columns past 64 KB of header.

Four trainings in all (tiny network, two epochs); the rest calls the reading and scaling functions
or is refused before training. Every test checks that nothing appeared outside its tmp_path."""

import csv
import errno
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from al_bnn import suggest
from al_bnn.suggest import SuggestInputError, main

TINY = """\
net_config: {layer_sizes: [8], learning_rate: 0.01}
train_schedule: {num_epochs: 2, min_steps: 0}
parms: {sample_policy: lrgpa, n_mc_samples: 10, sampling_batch_size: 3}
"""
FEATURES = ["a", "score", "=SUM(A1)"]  # a user's column named like suggest's own, and a formula header
HOSTILE_IDS = ["=cmd|' /C calc'!A{}", "@SUM({})", "+{}x", "-x{}", "\tq{}"]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def listing(*folders: Path) -> dict:
    return {str(folder): sorted(os.listdir(folder)) for folder in folders}


@pytest.fixture(autouse=True)
def nothing_outside(tmp_path):
    """Nothing may be written outside tmp_path: the working directory and tmp_path's parent keep
    their entries."""
    before = listing(Path.cwd(), tmp_path.parent)
    yield
    assert listing(Path.cwd(), tmp_path.parent) == before


def make_files(folder: Path) -> tuple[Path, Path]:
    """labelled.csv (12 rows) and pool.csv (40 rows, blank and white-space lines between them, every
    id formula-like); the id column is called pool_row and a feature score."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(52, 3)).round(6).tolist()
    y = [a + 2 * b - c for a, b, c in X]
    labelled = ["pool_row," + ",".join(FEATURES) + ",y"]
    labelled += [f"L{i},{x[0]!r},{x[1]!r},{x[2]!r},{t!r}" for i, (x, t) in enumerate(zip(X[:12], y[:12], strict=True))]
    pool = ["pool_row," + ",".join(FEATURES), ""]
    for i, x in enumerate(X[12:]):
        pool.append(HOSTILE_IDS[i % 5].format(i) + f",{x[0]!r},{x[1]!r},{x[2]!r}")
        if i % 7 == 3:
            pool += ["", "  "] if i % 2 else [""]
    (folder / "labelled.csv").write_text("\n".join(labelled) + "\n")
    (folder / "pool.csv").write_text("\n".join(pool) + "\n\n\n")
    (folder / "tiny.yaml").write_text(TINY)
    return folder / "labelled.csv", folder / "pool.csv"


def arguments(folder: Path, out: Path, *extra: str, labelled: str = "labelled.csv", target: str = "y") -> list[str]:
    return ["--labelled", str(folder / labelled), "--target", target, "--pool", str(folder / "pool.csv"), "--n", "6",
            "--out", str(out), "--config", str(folder / "tiny.yaml"), "--id-column", "pool_row", *extra]


def data_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line, cells) of every non-blank data line, read independently of suggest."""
    lines = path.read_text().split("\n")
    return [(number, next(csv.reader([text]))) for number, text in enumerate(lines[1:], start=2) if text.strip()]


def read_output(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as stream:
        rows = list(csv.reader(stream))
    return rows[0], [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def unescape(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:2] in TRIGGERS else text


@pytest.fixture(scope="module")
def hostile_round(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    before = listing(Path.cwd(), folder.parent)
    make_files(folder)
    code = main(arguments(folder, folder / "out"))
    assert listing(Path.cwd(), folder.parent) == before
    assert sorted(os.listdir(folder)) == ["labelled.csv", "out", "pool.csv", "tiny.yaml"]
    assert code == 0
    return folder


# -- item 4: the printed rows are the file's rows, whatever blank lines lie between them ------------------
def test_item4_blank_lines_every_printed_value_is_the_files_row(hostile_round):
    header, records = read_output(hostile_round / "out" / "suggestions.csv")
    rows = data_rows(hostile_round / "pool.csv")
    number = "suggest_pool_row" if "suggest_pool_row" in header else "pool_row"
    pool_header = next(csv.reader([(hostile_round / "pool.csv").read_text().split("\n")[0]]))
    for record in records:
        line, cells = rows[int(record[number]) - 1]
        for name, cell in zip(pool_header, cells, strict=True):
            key = name if name in record else "'" + name
            assert unescape(record[key]) == cell, (name, record)
        assert int(record["suggest_pool_line"]) == line


def test_item4_quoted_newlines_and_blank_lines_keep_rows_on_their_lines(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('id,a\n\n"two\nlines",1.5\n  \nplain,-2\n\n')
    table = suggest.read_csv(path, "pool", "id")
    assert list(table.places.lines) == [3, 6] and list(table.ids) == ["two\nlines", "plain"]
    assert suggest.row_cells(path, table.places, np.array([1, 0])) == [["plain", "-2"], ["two\nlines", "1.5"]]
    path.write_text("a,b\n1,2\n\n3,x\n")
    with pytest.raises(SuggestInputError, match=r"column 'b', row 2 \(line 4\) holds 'x'"):
        suggest.read_csv(path, "pool")


# -- item 8: the user's columns are kept; suggest's own get a prefix --------------------------------------
def test_item8_user_columns_named_like_outputs_are_kept_and_ids_survive(hostile_round):
    header, records = read_output(hostile_round / "out" / "suggestions.csv")
    rows = data_rows(hostile_round / "pool.csv")
    assert {"suggest_rank", "suggest_pool_row", "suggest_score", "suggest_predicted_y", "suggest_predicted_std",
            "pool_row", "score"} <= set(header)
    for rank, record in enumerate(records, start=1):
        assert int(record["suggest_rank"]) == rank
        _, cells = rows[int(record["suggest_pool_row"]) - 1]
        assert unescape(record["pool_row"]) == cells[0]  # the id, not a row number
        assert record["score"] == cells[2]  # the user's feature, not suggest's score
    with pytest.raises(SuggestInputError, match=r"'suggest_score'.*rename 'suggest_score'"):
        suggest.output_columns("y", ["id", "score", "suggest_score"])


# -- item 18: formula-like text cells are escaped, plain numbers are not -----------------------------------
def test_item18_csv_formula_cells_are_escaped(hostile_round):
    with open(hostile_round / "out" / "suggestions.csv", newline="") as stream:
        cells = [cell for row in csv.reader(stream) for cell in row]
    formula = [cell for cell in cells if cell.startswith(TRIGGERS) and not PLAIN_NUMBER.fullmatch(cell)]
    assert not formula, formula[:5]
    _, records = read_output(hostile_round / "out" / "suggestions.csv")
    assert "'=SUM(A1)" in cells and all(record["pool_row"][:1] == "'" for record in records)  # escaped, kept
    assert any(cell.startswith("-0.") for cell in cells)  # negative numbers stay numbers
    assert [suggest.escape_cell(c) for c in ["-5", "+2e3", "-.5", "=1+1", "-1+1", "@A1", "\tx", "\rx", "id"]] == \
        ["-5", "+2e3", "-.5", "'=1+1", "'-1+1", "'@A1", "'\tx", "'\rx", "id"]


# -- item 7: a resumed model must be for this target, in these units ------------------------------------
@pytest.mark.parametrize("change, message", [
    ("rename", r"trained for target 'y', not 'price'"),
    ("scale", r"trained on target 'y' with mean .* but the labelled rows .* another target or other units"),
])
def test_item7_resume_model_for_another_target_is_refused(hostile_round, tmp_path, capsys, change, message):
    for name in ("pool.csv", "tiny.yaml"):
        shutil.copy(hostile_round / name, tmp_path / name)
    text = (hostile_round / "labelled.csv").read_text().split("\n")
    if change == "rename":
        text[0] = text[0].replace(",y", ",price")
    else:
        text = text[:1] + [",".join(row.split(",")[:-1] + [repr(float(row.split(",")[-1]) * 1e5)])
                           for row in text[1:] if row]
    (tmp_path / "other.csv").write_text("\n".join(text) + "\n")
    code = main(arguments(tmp_path, tmp_path / "next", "--resume-model", str(hostile_round / "out/model.npz"),
                          labelled="other.csv", target="price" if change == "rename" else "y"))
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "next" / "model.npz").exists()


# -- items 14 and 15: extreme magnitudes ---------------------------------------------------------------
def fake_inputs(X_labelled, X_pool, y):
    return SimpleNamespace(X_labelled=np.asarray(X_labelled, float), X_pool=np.asarray(X_pool, float),
                           y_labelled=np.asarray(y, float), features=["a", "b"], target="y",
                           labelled_path=Path("l.csv"), pool_path=Path("p.csv"))


def test_item14_a_1e300_feature_is_standardised_not_zeroed():
    X = np.array([[1e300, 1.0], [0.0, 2.0], [-3e299, 0.5], [2e299, 4.0], [5e299, 3.0]])
    for scale in (1.0, 1e-300):  # and a feature of magnitude 1e-300 (its square underflows)
        inputs = fake_inputs(X[:3] * [scale, 1], X[3:] * [scale, 1], [1.0, 2.0, 3.0])
        _, x_mean, x_scale, _, _ = suggest._standardise(inputs, None)
        assert np.isfinite(x_scale).all() and (x_scale > 0).all()
        standardised = (X * [scale, 1] - x_mean) / x_scale
        v = X[:, 0] / 1e300
        np.testing.assert_allclose(standardised[:, 0], (v - v.mean()) / v.std(), rtol=1e-12)
    normal = fake_inputs(X[:3, 1:].repeat(2, 1), X[3:, 1:].repeat(2, 1), [1.0, 2.0, 3.0])
    both = np.concatenate([normal.X_labelled, normal.X_pool])
    _, x_mean, x_scale, y_mean, y_scale = suggest._standardise(normal, None)
    assert (x_mean == both.mean(0)).all() and y_scale == np.std([1.0, 2.0, 3.0])  # normal inputs: the same numbers


@pytest.mark.parametrize("y", [[1e300, -1e300, 5e299], [1e-200, 3e-200, 2e-200]])
def test_item15_targets_of_extreme_magnitude_get_a_named_error(y):
    inputs = fake_inputs([[1.0, 2.0], [2.0, 1.0], [0.0, 0.0]], [[1.0, 1.0]], y)
    with pytest.raises(SuggestInputError, match=r"column 'y' \(the target\) has a spread .* Rescale the column"):
        suggest._standardise(inputs, None)


# -- item 15: --out that cannot be a folder, huge configs, disk full --------------------------------------
def test_item15_out_that_is_a_file_or_under_one_is_one_message_exit_2(tmp_path, capsys):
    make_files(tmp_path)
    (tmp_path / "file").write_text("keep")
    for out, shown in [(tmp_path / "file", "file"), (tmp_path / "file" / "sub", "sub"),
                       (Path("/proc/al_bnn_no_such_folder"), "al_bnn_no_such_folder")]:
        assert main(arguments(tmp_path, out)) == 2
        error = capsys.readouterr().err
        assert error.count("error:") == 1 and shown in error and "Traceback" not in error
    assert (tmp_path / "file").read_text() == "keep"


def test_item15_huge_config_is_refused_before_training(tmp_path, capsys, monkeypatch):
    make_files(tmp_path)
    monkeypatch.setattr("al_bnn.memory.available_memory", lambda: 2**30)
    # gpa draws n_mc_samples function samples (the default sampler, lcmd on the gradient kernel, draws none)
    for key, value in [("parms", "{sample_policy: gpa, n_mc_samples: 100000000}"),
                       ("net_config", "{layer_sizes: [100000, 100000]}")]:
        (tmp_path / "huge.yaml").write_text(f"{key}: {value}\n")
        args = arguments(tmp_path, tmp_path / "out")
        args[args.index("--config") + 1] = str(tmp_path / "huge.yaml")
        assert main(args) == 2
        error = capsys.readouterr().err
        assert "memory" in error and ("n_mc_samples" in error or "layer_sizes" in error), error
        assert not (tmp_path / "out" / "log.txt").exists()


def test_item15_disk_full_while_writing_leaves_no_half_round(tmp_path, capsys, monkeypatch):
    from al_bnn.learner import ActiveLearner
    from al_bnn.safe_arrays import WriteError

    make_files(tmp_path)

    def full(self, path):
        raise WriteError(path, "the learner", OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(ActiveLearner, "save", full)
    assert main(arguments(tmp_path, tmp_path / "out")) == 5
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and "No space left on device" in error
    left = sorted(os.listdir(tmp_path / "out")) if (tmp_path / "out").exists() else []
    assert not [name for name in left if name not in ("log.txt", ".lock")], left  # no suggestions without a model


def test_item15_a_write_failing_part_way_leaves_the_previous_round_whole(tmp_path, monkeypatch):
    from al_bnn.safe_arrays import WriteError

    out = tmp_path / "out"
    out.mkdir()
    suggest.commit_round(out, {"suggestions.csv": b"old", "suggestions_round_0.csv": b"old"},
                         lambda path: path.write_bytes(b"model 0"), 0, overwrite=False)
    assert suggest.round_state(out) == ("complete", "")
    real, calls = suggest.atomic_write_bytes, []

    def read_only_after_one(target, payload, what="file"):
        if calls:
            raise WriteError(target, what, OSError(errno.EROFS, "Read-only file system"))
        calls.append(target)
        return real(target, payload, what)

    monkeypatch.setattr(suggest, "atomic_write_bytes", read_only_after_one)
    with pytest.raises(WriteError, match="Read-only file system"):
        suggest.commit_round(out, {"suggestions.csv": b"new", "suggestions_round_1.csv": b"new"},
                             lambda path: path.write_bytes(b"model 1"), 1, overwrite=False)
    assert sorted(os.listdir(out)) == ["model.npz", "suggest_manifest.json", "suggestions.csv",
                                       "suggestions_round_0.csv"]
    assert (out / "suggestions.csv").read_bytes() == b"old" and suggest.round_state(out) == ("complete", "")
    (out / "model.npz").write_bytes(b"a model the manifest does not list")
    assert suggest.round_state(out)[0] == "incomplete"


# -- item 22: a half-written round is not a round; --overwrite removes what the old rounds wrote ---------
@pytest.mark.slow
def test_item22_half_written_round_is_not_resumed_and_overwrite_removes_old_round_files(hostile_round, tmp_path,
                                                                                       capsys):
    folder = tmp_path / "copy"
    shutil.copytree(hostile_round, folder)
    out = folder / "out"
    rows = data_rows(folder / "pool.csv")[:3]  # label three pool rows: a real second round
    with open(folder / "labelled.csv", "a") as stream:
        for _, cells in rows:
            stream.write(",".join(cells) + f",{sum(float(c) for c in cells[1:])!r}\n")
    resume = ("--resume-model", str(out / "model.npz"))
    (out / ".suggestions.csv.pending").write_text("half")  # a round stopped while its files were renamed
    assert main(arguments(folder, out, *resume)) == 2
    assert "half-written round" in capsys.readouterr().err
    (out / ".suggestions.csv.pending").unlink()
    assert main(arguments(folder, out, *resume)) == 0
    assert (out / "suggestions_round_1.csv").is_file()
    (out / "my_notes.csv").write_text("mine")
    assert main(arguments(folder, out, "--overwrite")) == 0
    assert not (out / "suggestions_round_1.csv").exists() and (out / "suggestions_round_0.csv").is_file()
    assert (out / "my_notes.csv").read_text() == "mine"
    assert not [name for name in os.listdir(out) if name.endswith(".pending")]
    manifest = suggest.read_manifest(out)
    assert manifest and set(manifest["files"]) == {"suggestions.csv", "suggestions_round_0.csv", "model.npz",
                                                   "history.csv", "uncertainty.png", "config.yaml"}


# -- item 19: duplicate column names anywhere in the header -----------------------------------------------
def test_item19_duplicate_columns_after_64kb_of_header_are_refused(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("x" * 70000 + ",a,b,a\n1,2,3,4\n")
    with pytest.raises(SuggestInputError, match=r"\['a'\] appear more than once"):
        suggest._check_is_csv(path, "pool")
