"""Data: plain arrays (pool X/y, test X/y) and the fitted scalers. Knows nothing of models."""

from __future__ import annotations

import csv
import dataclasses
import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from al_bnn.config import ConfigError
from al_bnn.errors import InputError
from al_bnn.paths import SHIPPED_UCI_ROOT
from al_bnn.randomness import numpy_generator


class DataUnavailableError(InputError, RuntimeError):
    """The dataset is neither cached locally nor downloadable."""


@dataclass
class RegressionData:
    """Standardised pool and test arrays, plus the scalers that undo the standardisation."""

    pool_x: np.ndarray  # (n_pool, d) float32, standardised with x_scaler
    pool_y: np.ndarray  # (n_pool,) float32, standardised with y_scaler
    test_x: np.ndarray
    test_y: np.ndarray
    x_scaler: StandardScaler
    y_scaler: StandardScaler
    name: str

    @property
    def target_scale(self) -> float:
        """Std of the pool's raw target: multiply a standardised RMSE by it for original units."""
        return float(self.y_scaler.scale_[0])


def _fetch_housing_frame():
    from sklearn.datasets import fetch_california_housing

    cache = os.environ.get("SCIKIT_LEARN_DATA")
    try:
        return fetch_california_housing(as_frame=True)
    except Exception as error:  # sklearn raises URLError/OSError/HTTPError depending on the failure
        where = f"SCIKIT_LEARN_DATA={cache!r}" if cache else "SCIKIT_LEARN_DATA is not set"
        raise DataUnavailableError(
            "California housing could not be loaded: it is not in scikit-learn's data cache "
            f"({where}) and downloading it failed ({type(error).__name__}: {error}). Point "
            "SCIKIT_LEARN_DATA at a folder holding cal_housing_py3.pkz, e.g. "
            "`export SCIKIT_LEARN_DATA=/path/to/folder`, or allow network "
            "access once so scikit-learn can download it.") from error


def housing_arrays() -> tuple[np.ndarray, np.ndarray]:
    """California housing preprocessed as in the published experiments: 5 features, target in 100k$."""
    frame = _fetch_housing_frame().frame
    frame = frame.copy()
    frame["AveRooms"] = frame["AveRooms"] + frame["AveBedrms"]
    target = frame.pop("MedHouseVal").to_numpy(dtype=np.float64)
    features = frame.drop(columns=["Latitude", "Longitude", "AveBedrms"]).to_numpy(dtype=np.float64)
    return features, target


def load_housing(size_pool: int = 0, size_test: int = 0, seed: int = 0,
                 validation_fraction: float = 0.0) -> RegressionData:
    """Pool 14448 x 5 and test 6192 x 5 (70/30 split, random_state=0), standardised on the pool.

    size_pool / size_test > 0 subsample the pool / test set (reproducibly, by seed); 0 keeps all.
    validation_fraction > 0: the test set is replaced by that share of the pool (see hold_out).
    """
    features, target = housing_arrays()
    pool_x, test_x, pool_y, test_y = train_test_split(features, target, test_size=0.3, random_state=0)
    pool_x, pool_y, test_x, test_y = hold_out(pool_x, pool_y, test_x, test_y, "housing", seed, validation_fraction)
    return _scaled(pool_x, pool_y, test_x, test_y, size_pool, size_test, seed, "housing")


def hold_out(pool_x, pool_y, test_x, test_y, name: str, seed: int,
             validation_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """With validation_fraction > 0, (pool without a seeded share of it, pool, that share, its
    targets) in place of (pool, test): settings can then be chosen on the held-out share of the
    pool without the test set ever taking part. Unchanged arrays otherwise."""
    if not validation_fraction:
        return pool_x, pool_y, test_x, test_y
    if not 0 < validation_fraction < 1:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    order = numpy_generator(seed, f"validation/{name}").permutation(len(pool_y))
    count = max(1, int(round(validation_fraction * len(pool_y))))
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    return pool_x[kept], pool_y[kept], pool_x[held], pool_y[held]


def _scaled(pool_x, pool_y, test_x, test_y, size_pool, size_test, seed, name) -> RegressionData:
    pool_x, pool_y = _subsample(pool_x, pool_y, size_pool, seed, "pool_subsample", "size_pool")
    test_x, test_y = _subsample(test_x, test_y, size_test, seed, "test_subsample", "size_test")
    x_scaler = StandardScaler().fit(pool_x)
    y_scaler = StandardScaler().fit(pool_y[:, None])
    return RegressionData(
        pool_x=x_scaler.transform(pool_x).astype(np.float32),
        pool_y=y_scaler.transform(pool_y[:, None])[:, 0].astype(np.float32),
        test_x=x_scaler.transform(test_x).astype(np.float32),
        test_y=y_scaler.transform(test_y[:, None])[:, 0].astype(np.float32),
        x_scaler=x_scaler, y_scaler=y_scaler, name=name)


def _subsample(x: np.ndarray, y: np.ndarray, size: int, seed: int, purpose: str, key: str):
    if size <= 0:
        return x, y
    if size > len(x):
        raise ConfigError(f"{key}={size} is larger than the {len(x)} points available; use at most "
                          f"{len(x)} or 0 for all.")
    keep = np.sort(numpy_generator(seed, purpose).choice(len(x), size=size, replace=False))
    return x[keep], y[keep]


# -- files: the UCI benchmark layout, CSV and NPZ ------------------------------------------------

class DataFileError(InputError, ValueError):
    """A data file is missing or malformed; the message names the file and the problem."""


class NonNumericCellError(DataFileError):
    """A cell of a user's table that should hold a number does not; `column`, `row` (1-based among
    the data rows), `line` (in the file) and `cell` say where and what."""

    def __init__(self, path: Path, column: str, row: int, line: int, cell: str):
        super().__init__(f"{path}: non-numeric cell {cell!r} in column {column!r} (row {row}) on line {line}")
        self.path, self.column, self.row, self.line, self.cell = path, column, row, line, cell


# -- a user's table: the package's one CSV reader (data.path files, suggest's labelled and pool files) ----
MISSING = ["", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"]  # cells read as missing values


def _read_header(path: Path) -> list[str]:
    """The header row in full, however long (the csv module's reading; a UTF-8 BOM is dropped)."""
    with open(path, newline="", encoding="utf-8-sig", errors="strict") as stream:
        return next(csv.reader(stream))


def check_csv_file(path: Path, what: str) -> list[str]:
    """The column names of a CSV file `path` (the `what` file, e.g. 'pool'), after refusing a missing
    or empty file, binary data, a blank first line, an unreadable header and repeated column names
    (DataFileError naming the file)."""
    import pandas as pd

    if not path.is_file():
        raise DataFileError(f"{path}: {what} file not found")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: the {what} file is empty; it needs a header row of column names and "
                            "data rows")
    with open(path, "rb") as stream:
        head = stream.read(65536)
    if b"\x00" in head:
        raise DataFileError(f"{path}: not a CSV file (it holds binary data); give a comma-separated text file "
                            "with a header row")
    if not head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip():
        raise DataFileError(f"{path}: line 1 is blank; the first line must be the header row of column names")
    try:
        header = _read_header(path)
        columns = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, StopIteration, IndexError,
            csv.Error) as error:
        raise DataFileError(f"{path}: not a readable CSV file ({type(error).__name__}: {error})") from None
    counts = Counter(header)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        shown = [name if len(name) <= 80 else name[:77] + "..." for name in repeated[:5]]
        raise DataFileError(f"{path}: column name(s) {shown} appear more than once in the header; give every "
                            "column its own name")
    return [str(c) for c in columns]


@dataclasses.dataclass
class RowPlaces:
    """Where each data row of a CSV lies in the file: its line (1 = the header) and how to find its
    text again (a byte offset, or its record number among the records after the header)."""

    lines: np.ndarray  # (n,) int64, the line each row starts on
    offsets: np.ndarray | None  # (n,) int64 byte offsets (files without quotes: one line per record)
    records: np.ndarray | None  # (n,) int64 record numbers after the header, blank records counted


def _row_places(path: Path, n_rows: int) -> RowPlaces:
    """The places of the n_rows data rows that pandas reads (it skips blank, white-space-only lines).
    Refuses rather than guess when the count differs from n_rows."""
    data = path.read_bytes()
    if b'"' not in data and data.count(b"\r") == data.count(b"\r\n"):
        buffer = np.frombuffer(data, dtype=np.uint8)
        starts = np.concatenate([[0], np.flatnonzero(buffer == 10) + 1])
        if starts[-1] == len(buffer):
            starts = starts[:-1]  # the file ends with a newline
        ends = np.append(starts[1:], len(buffer))
        filled = buffer[starts] > 32  # a blank line starts with white space or its newline
        for line in np.flatnonzero(~filled):
            filled[line] = bool(data[starts[line]:ends[line]].strip())
        del buffer, data
        data_lines = np.flatnonzero(filled[1:]) + 1  # 0-based line indices of the data rows
        places = RowPlaces(lines=data_lines + 1, offsets=starts[data_lines], records=None)
    else:  # quoted cells may hold newlines: walk the records
        del data
        places = _record_places(path)
    if len(places.lines) != n_rows:
        raise DataFileError(f"{path}: {n_rows} data rows were read but {len(places.lines)} non-blank records "
                            "found, so rows cannot be matched to their lines; remove unusual line breaks or "
                            "white space (blank lines are fine)")
    return places


def _record_places(path: Path) -> RowPlaces:
    """The places of the non-blank records after the header, walked with the csv module."""
    lines, records = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            next(reader)
            record = 0
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                if row and not (len(row) == 1 and not row[0].strip()):
                    lines.append(start)
                    records.append(record)
                record += 1
    except (csv.Error, UnicodeDecodeError) as error:
        raise DataFileError(f"{path}: not a readable CSV file ({type(error).__name__}: {error})") from None
    return RowPlaces(lines=np.asarray(lines, dtype=np.int64), offsets=None, records=np.asarray(records, dtype=np.int64))


def row_cells(path: Path, places: RowPlaces, rows: np.ndarray) -> list[list[str]]:
    """The text cells of the given data rows (0-based, in the order given), as written in the file."""
    if places.offsets is not None:
        cells = []
        with open(path, "rb") as stream:
            for row in rows:
                stream.seek(int(places.offsets[row]))
                cells.append(next(csv.reader([stream.readline().decode("utf-8").rstrip("\r\n")])))
        return cells
    assert places.records is not None  # a RowPlaces has offsets or records
    wanted = {int(places.records[row]): index for index, row in enumerate(rows)}
    found: list[list[str]] = [[] for _ in rows]
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream)
        next(reader)
        for record, row in enumerate(reader):
            if record in wanted:
                found[wanted[record]] = row
    return found


@dataclasses.dataclass
class Table:
    """A CSV read by read_csv_table: float64 columns (without the id column), the ids as text, the
    columns in file order, and where each row lies in the file."""

    frame: Any  # pandas.DataFrame (pandas is imported only when a table is read)
    ids: np.ndarray | None
    columns: list[str]
    places: RowPlaces


def read_csv_table(path: str | os.PathLike, what: str, id_column: str | None = None,
                   optional: tuple[str, ...] | None = (), allow_empty: bool = False) -> Table:
    """A user's CSV table, strictly checked (check_csv_file first). The id column is read as text;
    every other column must be numeric (a non-number is a NonNumericCellError); cells of the
    `optional` columns (None: every column) may be empty, NaN or inf, other columns' must be finite.
    Blank lines are skipped; messages name a row by its number among the data rows and by its line
    in the file. A header without rows is refused unless allow_empty."""
    import pandas as pd

    path = Path(path)
    columns = check_csv_file(path, what)
    if id_column is not None and id_column not in columns:
        raise DataFileError(f"{path}: no id column {id_column!r} (--id-column); columns are {columns}")
    numeric = [c for c in columns if c != id_column]
    dtypes: dict[str, type] = {c: np.float64 for c in numeric}  # the id column, if any, is read as text
    if id_column is not None:
        dtypes[id_column] = str
    try:
        frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values={c: MISSING for c in numeric},
                            engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError) as error:  # both are ValueErrors: first
        raise DataFileError(f"{path}: not a well-formed CSV file ({error})") from None
    except ValueError as error:  # a cell that is not a number: find it (slow path, only on error)
        _raise_first_non_numeric(path, numeric)
        raise DataFileError(f"{path}: not a well-formed CSV file ({error})") from None
    if frame.empty and not allow_empty:
        raise DataFileError(f"{path}: the {what} file has a header but no data rows")
    places = _row_places(path, len(frame))
    _check_finite(frame, numeric, columns if optional is None else optional, places, path, what)
    ids = None if id_column is None else _checked_ids(frame.pop(id_column).to_numpy(dtype=object), id_column,
                                                      places, path)
    return Table(frame, ids, columns, places)


def _check_finite(frame, numeric: list[str], optional, places: RowPlaces, path: Path, what: str) -> None:
    for column in numeric:
        values = frame[column].to_numpy()
        bad = ~np.isfinite(values)
        if column in optional or not bad.any():
            continue
        row = int(np.flatnonzero(bad)[0])
        kind = "an empty or NaN (missing) cell" if np.isnan(values[row]) else f"the value {values[row]}"
        raise DataFileError(f"{path}: column {column!r}, row {row + 1} (line {places.lines[row]}) has {kind}; "
                            f"every {'target' if what == 'labelled' and column in optional else 'feature'} cell "
                            "must be a finite number: fill it in or remove the row")


def _checked_ids(ids: np.ndarray, id_column: str, places: RowPlaces, path: Path) -> np.ndarray:
    """The id column as text, after refusing an empty or repeated id."""
    import pandas as pd

    empty = np.flatnonzero(pd.isna(ids) | (ids == ""))
    if len(empty):
        raise DataFileError(f"{path}: column {id_column!r} (the id column), row {empty[0] + 1} (line "
                            f"{places.lines[empty[0]]}) is empty; every row needs an id")
    ids = ids.astype(str)
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = str(unique[counts > 1][0])
        rows = np.flatnonzero(ids == repeated)[:3] + 1
        raise DataFileError(f"{path}: id {repeated!r} in column {id_column!r} is repeated (rows "
                            f"{', '.join(map(str, rows))}); ids must be unique")
    return ids


def _raise_first_non_numeric(path: Path, columns: list[str]) -> None:
    """Raise NonNumericCellError for the first cell of `columns` that is neither a number nor missing."""
    import pandas as pd

    try:
        text = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=columns)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return  # the caller reports the file as not well-formed
    for column in columns:
        cells = text[column]
        converted = pd.to_numeric(cells.where(~cells.isin(MISSING), "nan"), errors="coerce")
        bad = np.flatnonzero(converted.isna() & ~cells.isin(MISSING))
        if len(bad):
            row = int(bad[0])
            line = _row_places(path, len(text)).lines[row]
            raise NonNumericCellError(path, column, row + 1, int(line), str(cells.iloc[row]))


UCI_ENVIRONMENT_VARIABLE = "UCI_DATA_DIR"


def uci_root(option: str | os.PathLike | None = None) -> Path | None:
    """The folder of UCI datasets: the option if given, else $UCI_DATA_DIR, else the repository's
    data/uci (shipped with the checkout), else None."""
    value = option or os.environ.get(UCI_ENVIRONMENT_VARIABLE)
    if value:
        return Path(value)
    return SHIPPED_UCI_ROOT if SHIPPED_UCI_ROOT.is_dir() else None


def uci_dataset_names(root: str | os.PathLike | None = None) -> list[str]:
    """Every folder under the UCI root that holds data.txt."""
    folder = uci_root(root)
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "data.txt").is_file())


def _read_numeric_rows(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    rows, width = [], None
    with open(path) as stream:
        for line_number, line in enumerate(stream, start=1):
            cells = line.split()
            if not cells:
                continue
            if width is None:
                width = len(cells)
            elif len(cells) != width:
                raise DataFileError(f"{path}, line {line_number}: ragged rows: {len(cells)} values where earlier "
                                    f"rows have {width}")
            try:
                rows.append([float(cell) for cell in cells])
            except ValueError:
                bad = next(c for c in cells if not _is_number(c))
                raise DataFileError(f"{path}, line {line_number}: non-numeric cell {bad!r}") from None
    if not rows:
        raise DataFileError(f"{path}: no data rows")
    return np.asarray(rows, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_indices(path: Path, width: int) -> np.ndarray:
    values = _read_numeric_rows(path).ravel()
    if np.any(values != np.round(values)) or np.any(values < 0) or np.any(values >= width):
        raise DataFileError(f"{path}: column indices must be integers in [0, {width}), got {values.tolist()}")
    return values.astype(int)


def _check_arrays(features: np.ndarray, target: np.ndarray, source: str) -> None:
    if not np.all(np.isfinite(features)):
        row, column = np.argwhere(~np.isfinite(features))[0]
        raise DataFileError(f"{source}: NaN or inf in the features (row {row}, feature column {column})")
    if not np.all(np.isfinite(target)):
        raise DataFileError(f"{source}: NaN or inf in the target (row {int(np.argmin(np.isfinite(target)))})")
    if len(target) < 2:
        raise DataFileError(f"{source}: {'no data rows' if len(target) == 0 else 'only one data row'}; a dataset "
                            "needs at least two")
    if np.ptp(target) == 0:
        raise DataFileError(f"{source}: the target is constant; there is nothing to regress")


def read_uci_folder(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Features and target from <folder>/data.txt, index_features.txt and index_target.txt."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(f"{folder}: dataset folder not found")
    table = _read_numeric_rows(folder / "data.txt")
    features = table[:, _read_indices(folder / "index_features.txt", table.shape[1])]
    target_columns = _read_indices(folder / "index_target.txt", table.shape[1])
    if len(target_columns) != 1:
        raise DataFileError(f"{folder / 'index_target.txt'}: expected one target column, got {target_columns.tolist()}")
    target = table[:, target_columns[0]]
    _check_arrays(features, target, str(folder / "data.txt"))
    return features, target


def read_table(path: str | os.PathLike, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features and target from a CSV (target = column name or index; the rest are features) or an
    NPZ file (arrays `x` and `y`)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    if path.suffix.lower() == ".npz":
        features, values = _read_npz(path)
    elif path.suffix.lower() == ".csv":
        features, values = _read_csv_columns(path, target)
    else:
        raise DataFileError(f"{path}: unsupported data file type {path.suffix!r}; use .csv or .npz")
    _check_arrays(features, values, str(path))
    return features, values


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays `x` (n, d) and `y` (n,) of an NPZ file, never unpickled."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise DataFileError(f"{path}: an NPZ data file needs arrays 'x' (n, d) and 'y' (n,); found "
                                    f"{sorted(arrays.files)}")
            features, values = np.asarray(arrays["x"], float), np.asarray(arrays["y"], float).ravel()
    except DataFileError:
        raise
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataFileError(f"{path}: holds object (pickled) arrays, which are not read because loading "
                                "them can run code; save 'x' and 'y' as numeric arrays") from None
        raise DataFileError(f"{path}: 'x' and 'y' must be numeric arrays ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataFileError(f"{path}: not a readable NPZ file ({type(error).__name__}: {error})") from None
    if features.ndim != 2 or len(features) != len(values):
        raise DataFileError(f"{path}: 'x' must be (n, d) and 'y' (n,), got {features.shape} and {values.shape}")
    return features, values


def _read_csv_columns(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The features and the target column of a CSV data file, read by the one CSV reader
    (read_csv_table: empty, NaN and inf cells are left to _check_arrays, which names them)."""
    columns = check_csv_file(path, "data")
    if target is None:
        raise DataFileError(f"{path}: name the target column (--target COLUMN); columns are {columns}")
    column = target if target in columns else (
        columns[int(target)] if str(target).lstrip("-").isdigit() and -len(columns) <= int(target)
        < len(columns) else None)
    if column is None:
        raise DataFileError(f"{path}: no target column {target!r}; columns are {columns}")
    frame = read_csv_table(path, "data", optional=None, allow_empty=True).frame
    values = frame.pop(column).to_numpy(float)
    return frame.to_numpy(float), values


def split_by_seed(features: np.ndarray, target: np.ndarray, name: str, seed: int, test_fraction: float = 0.2,
                  size_pool: int = 0, size_test: int = 0, validation_fraction: float = 0.0) -> RegressionData:
    """Pool/test split keyed by the seed (then, with validation_fraction, a validation share of the
    pool in the test set's place: hold_out), then scaling fitted on the pool."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = numpy_generator(seed, f"split/{name}").permutation(len(target))
    test_count = max(1, int(round(test_fraction * len(target))))
    test, pool = order[:test_count], np.sort(order[test_count:])
    arrays = hold_out(features[pool], target[pool], features[np.sort(test)], target[np.sort(test)], name, seed,
                      validation_fraction)
    return _scaled(*arrays, size_pool, size_test, seed, name)


def load_dataset(name: str, size_pool: int = 0, size_test: int = 0, seed: int = 0, *,
                 uci_root_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                 target: str | None = None, test_fraction: float = 0.2,
                 validation_fraction: float = 0.0) -> RegressionData:
    """A named dataset: `housing` (fixed published split), a folder under the UCI root (split by
    seed), or `file` with `path` (CSV/NPZ, split by seed). With validation_fraction > 0 the test
    set is replaced by a held-out share of the pool (hold_out)."""
    if name == "housing":
        return load_housing(size_pool=size_pool, size_test=size_test, seed=seed,
                            validation_fraction=validation_fraction)
    if name == "file":
        if path is None:
            raise ConfigError("dataset 'file' needs a path to a .csv or .npz file (data.path / --data)")
        features, values = read_table(path, target)
        return split_by_seed(features, values, Path(path).stem, seed, test_fraction, size_pool, size_test,
                             validation_fraction)
    root = uci_root(uci_root_dir)
    if root is None or not (root / name).is_dir():
        raise DataFileError(_missing_dataset_message(name, root, uci_root_dir))
    features, values = read_uci_folder(root / name)
    return split_by_seed(features, values, name, seed, test_fraction, size_pool, size_test, validation_fraction)


def _missing_dataset_message(name: str, root: Path | None, option) -> str:
    """Why a named dataset cannot be found, and how to get it."""
    fix = (f"the repository ships the UCI sets in {SHIPPED_UCI_ROOT}; a checkout without that folder can point "
           f"data.uci_root, --uci-root or ${UCI_ENVIRONMENT_VARIABLE} at any folder of <name>/data.txt, "
           "index_features.txt, index_target.txt")
    if root is None:
        return (f"unknown dataset {name!r}: no UCI root is set and {SHIPPED_UCI_ROOT} does not exist; {fix}. "
                "Other datasets: housing (scikit-learn's California housing) or file (a CSV/NPZ path)")
    source = ("data.uci_root / --uci-root" if option else f"${UCI_ENVIRONMENT_VARIABLE}"
              if os.environ.get(UCI_ENVIRONMENT_VARIABLE) else "the shipped default")
    if not root.is_dir():
        return f"unknown dataset {name!r}: the UCI root {root} (from {source}) is not a folder; {fix}"
    known = ["housing", "file", *uci_dataset_names(root)]
    return (f"unknown dataset {name!r}: there is no folder {root / name} (UCI root from {source}); known: "
            f"{', '.join(known)}. To add a dataset, put {name}/data.txt, index_features.txt and "
            f"index_target.txt under {root}")


def data_key(name: str, size_pool: int, size_test: int, seed: int, *extra, validation_fraction: float = 0.0) -> tuple:
    """Identifies the arrays load_dataset returns: housing ignores the seed unless subsampling or
    holding out a validation share."""
    seeded = name != "housing" or size_pool or size_test or validation_fraction
    return (name, size_pool, size_test, seed if seeded else None, *extra, validation_fraction)
