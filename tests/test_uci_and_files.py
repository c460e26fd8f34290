"""Dataset registry: the shipped UCI sets, CSV/NPZ files, seeded splits, and bad files."""

from pathlib import Path

import numpy as np
import pytest

from al_bnn.data import DataFileError, load_dataset, read_table, read_uci_folder, uci_dataset_names

UCI_ROOT = Path(__file__).resolve().parent.parent / "data" / "uci"
# rows x features as documented in data/SOURCES.md
SHAPES = {"abalone": (4177, 10), "airfoil": (1503, 5), "auto-mpg": (392, 7), "bike-sharing": (17379, 12),
          "bostonHousing": (506, 13), "concrete": (1030, 8), "cpu-act": (8192, 21), "elevators": (16599, 18),
          "energy": (768, 8), "kin8nm": (8192, 8), "parkinsons-telemonitoring": (5875, 19),
          "wine-quality-red": (1599, 11), "wine-quality-white": (4898, 11), "yacht": (308, 6)}


def test_every_shipped_uci_set_loads_with_its_documented_shape():
    assert set(SHAPES) == set(uci_dataset_names(UCI_ROOT))
    sources = (UCI_ROOT.parent / "SOURCES.md").read_text()
    for name, (rows, columns) in SHAPES.items():
        features, target = read_uci_folder(UCI_ROOT / name)
        assert features.shape == (rows, columns) and target.shape == (rows,)
        assert f"| {name} | {rows} | {columns} |" in sources, f"data/SOURCES.md lacks {name}'s row"


def test_the_shipped_folder_is_the_default_uci_root(monkeypatch):
    monkeypatch.delenv("UCI_DATA_DIR", raising=False)
    data = load_dataset("airfoil", seed=0)
    assert data.pool_x.shape == (1202, 5)


def test_missing_root_and_missing_dataset_say_what_is_missing_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("UCI_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"the UCI root .*nowhere \(from \$UCI_DATA_DIR\) is not a folder.*data/uci"):
        load_dataset("yacht")
    with pytest.raises(ValueError, match=r"no folder .*yacht.*put yacht/data.txt, index_features.txt"):
        load_dataset("yacht", uci_root_dir=tmp_path)


def test_uci_root_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("UCI_DATA_DIR", str(UCI_ROOT))
    data = load_dataset("yacht", seed=0)
    assert data.pool_x.shape == (246, 6) and data.test_x.shape == (62, 6)  # test fraction 0.2


def test_split_is_keyed_by_seed_and_standardised_on_the_pool():
    first = load_dataset("concrete", seed=3, uci_root_dir=UCI_ROOT)
    again = load_dataset("concrete", seed=3, uci_root_dir=UCI_ROOT)
    other = load_dataset("concrete", seed=4, uci_root_dir=UCI_ROOT)
    np.testing.assert_array_equal(first.test_x, again.test_x)
    assert not np.array_equal(first.test_y, other.test_y)
    np.testing.assert_allclose(first.pool_x.mean(0), 0, atol=1e-5)
    assert first.pool_x.shape == (824, 8)


def test_unknown_dataset_lists_the_known_ones(monkeypatch):
    known = "housing, file, " + ", ".join(sorted(SHAPES, key=str))
    with pytest.raises(ValueError, match=f"unknown dataset 'nope'.*known: {known}"):
        load_dataset("nope", uci_root_dir=UCI_ROOT)
    monkeypatch.delenv("UCI_DATA_DIR", raising=False)
    monkeypatch.setattr("al_bnn.data.SHIPPED_UCI_ROOT", UCI_ROOT.parent / "missing")  # a checkout without data/
    with pytest.raises(ValueError, match=r"no UCI root is set and .*missing does not exist.*or \$UCI_DATA_DIR"):
        load_dataset("yacht")


def write_uci(folder: Path, rows: str, features="0\n1\n", target="2\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.txt").write_text(rows)
    (folder / "index_features.txt").write_text(features)
    (folder / "index_target.txt").write_text(target)
    return folder


@pytest.mark.parametrize("rows,message", [
    ("1 2 3\n4 5\n", r"line 2: ragged rows: 2 values where earlier rows have 3"),
    ("1 2 3\n4 x 6\n", r"line 2: non-numeric cell 'x'"),
    ("1 2 3\n4 nan 6\n", r"NaN or inf in the features \(row 1, feature column 1\)"),
    ("1 2 inf\n4 5 6\n", r"NaN or inf in the target"),
    ("1 2 3\n4 5 3\n", r"the target is constant"),
    ("", r"no data rows"),
])
def test_bad_uci_files_name_the_file_and_the_problem(tmp_path, rows, message):
    folder = write_uci(tmp_path / "bad", rows)
    with pytest.raises(DataFileError, match=message) as error:
        read_uci_folder(folder)
    assert str(folder) in str(error.value)


def test_missing_uci_files(tmp_path):
    with pytest.raises(DataFileError, match="dataset folder not found"):
        read_uci_folder(tmp_path / "absent")
    folder = write_uci(tmp_path / "noindex", "1 2 3\n4 5 6\n")
    (folder / "index_target.txt").unlink()
    with pytest.raises(DataFileError, match="index_target.txt: file not found"):
        read_uci_folder(folder)
    write_uci(folder, "1 2 3\n4 5 6\n", target="7\n")
    with pytest.raises(DataFileError, match=r"column indices must be integers in \[0, 3\)"):
        read_uci_folder(folder)


def test_csv_and_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ [1.0, -2.0, 0.5]
    csv = tmp_path / "table.csv"
    csv.write_text("a,b,price,c\n" + "\n".join(f"{r[0]},{r[1]},{t},{r[2]}" for r, t in zip(x, y, strict=True)))
    features, target = read_table(csv, "price")
    np.testing.assert_allclose(features, x) and np.testing.assert_allclose(target, y)
    np.testing.assert_allclose(read_table(csv, "2")[1], y)  # a column index works too
    npz = tmp_path / "arrays.npz"
    np.savez(npz, x=x, y=y)
    np.testing.assert_allclose(read_table(npz, None)[0], x)
    data = load_dataset("file", path=csv, target="price", seed=1, test_fraction=0.3)
    assert data.pool_x.shape == (35, 3) and data.name == "table"


@pytest.mark.parametrize("content,target,message", [
    ("a,b\n1,2\n3,4\n", "price", r"no target column 'price'; columns are \['a', 'b'\]"),
    ("a,b\n1,2\n3,oops\n", "a", r"non-numeric cell 'oops' in column 'b' \(row 2\)"),
    ("a,b\n1,2\n3,\n", "a", r"NaN or inf in the features"),
    ("a,b\n1,2\n1,4\n", "a", r"the target is constant"),
    ("a,b\n1,2\n3,4\n", None, r"name the target column"),
])
def test_bad_csv_files(tmp_path, content, target, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataFileError, match=message):
        read_table(path, target)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataFileError, match="file not found"):
        read_table(tmp_path / "none.csv", "a")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataFileError, match="unsupported data file type '.json'"):
        read_table(tmp_path / "data.json", "a")
    np.savez(tmp_path / "wrong.npz", features=np.zeros((3, 2)))
    with pytest.raises(DataFileError, match="needs arrays 'x'"):
        read_table(tmp_path / "wrong.npz", None)


def test_a_validation_share_of_the_pool_replaces_the_test_set_and_never_holds_test_rows():
    full = load_dataset("concrete", seed=3, uci_root_dir=UCI_ROOT)
    held = load_dataset("concrete", seed=3, uci_root_dir=UCI_ROOT, validation_fraction=0.2)
    again = load_dataset("concrete", seed=3, uci_root_dir=UCI_ROOT, validation_fraction=0.2)
    other = load_dataset("concrete", seed=4, uci_root_dir=UCI_ROOT, validation_fraction=0.2)
    assert len(held.test_y) == round(0.2 * len(full.pool_y)) and len(held.pool_y) + len(held.test_y) == len(full.pool_y)

    def raw_rows(data, x):
        return {tuple(row) for row in np.round(data.x_scaler.inverse_transform(x.astype(np.float64)), 4)}

    pool_rows = raw_rows(full, full.pool_x)
    validation_rows = raw_rows(held, held.test_x)
    assert validation_rows <= pool_rows  # held out of the pool: no test row (concrete has duplicate rows)
    assert raw_rows(held, held.pool_x) | validation_rows == pool_rows
    np.testing.assert_allclose(held.pool_x.mean(axis=0), 0, atol=1e-5)  # scaled on what is left of the pool
    np.testing.assert_array_equal(held.test_x, again.test_x)  # keyed by the seed
    assert not np.array_equal(held.test_y[:20], other.test_y[:20])
