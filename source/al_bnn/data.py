"""Data: plain arrays (pool X/y, test X/y) and the fitted scalers. Knows nothing of models."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

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


# Refactoring debt (issue 33): cyclomatic complexity 15, over the C901 limit (pyproject.toml).
def read_table(path: str | os.PathLike, target: str | None) -> tuple[np.ndarray, np.ndarray]:  # noqa: C901
    """Features and target from a CSV (target = column name or index; the rest are features) or an
    NPZ file (arrays `x` and `y`)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    if path.suffix.lower() == ".npz":
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
    elif path.suffix.lower() == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
            raise DataFileError(f"{path}: not a readable CSV file ({error})") from None
        if target is None:
            raise DataFileError(f"{path}: name the target column (--target COLUMN); columns are {list(frame.columns)}")
        column = target if target in frame.columns else (
            frame.columns[int(target)] if str(target).lstrip("-").isdigit() and -len(frame.columns) <= int(target)
            < len(frame.columns) else None)
        if column is None:
            raise DataFileError(f"{path}: no target column {target!r}; columns are {list(frame.columns)}")
        for name in frame.columns:
            converted = pd.to_numeric(frame[name], errors="coerce")
            bad = converted.isna() & frame[name].notna()
            if bad.any():
                raise DataFileError(f"{path}: non-numeric cell {frame[name][bad].iloc[0]!r} in column {name!r} "
                                    f"(row {int(np.flatnonzero(bad)[0]) + 1})")
        values = frame.pop(column).to_numpy(float)
        features = frame.to_numpy(float)
    else:
        raise DataFileError(f"{path}: unsupported data file type {path.suffix!r}; use .csv or .npz")
    _check_arrays(features, values, str(path))
    return features, values


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
