"""Data: plain arrays (pool X/y, test X/y) and the fitted scalers. Knows nothing of models."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from randomness import numpy_generator


class DataUnavailableError(RuntimeError):
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
            "`export SCIKIT_LEARN_DATA=$(cd ../shared/data/scikit_learn_data && pwd)`, or allow network "
            "access once so scikit-learn can download it.") from error


def housing_arrays() -> tuple[np.ndarray, np.ndarray]:
    """California housing preprocessed as in the published experiments: 5 features, target in 100k$."""
    frame = _fetch_housing_frame().frame
    frame = frame.copy()
    frame["AveRooms"] = frame["AveRooms"] + frame["AveBedrms"]
    target = frame.pop("MedHouseVal").to_numpy(dtype=np.float64)
    features = frame.drop(columns=["Latitude", "Longitude", "AveBedrms"]).to_numpy(dtype=np.float64)
    return features, target


def load_housing(size_pool: int = 0, size_test: int = 0, seed: int = 0) -> RegressionData:
    """Pool 14448 x 5 and test 6192 x 5 (70/30 split, random_state=0), standardised on the pool.

    size_pool / size_test > 0 subsample the pool / test set (reproducibly, by seed); 0 keeps all.
    """
    features, target = housing_arrays()
    pool_x, test_x, pool_y, test_y = train_test_split(features, target, test_size=0.3, random_state=0)
    pool_x, pool_y = _subsample(pool_x, pool_y, size_pool, seed, "pool_subsample", "size_pool")
    test_x, test_y = _subsample(test_x, test_y, size_test, seed, "test_subsample", "size_test")
    x_scaler = StandardScaler().fit(pool_x)
    y_scaler = StandardScaler().fit(pool_y[:, None])
    return RegressionData(
        pool_x=x_scaler.transform(pool_x).astype(np.float32),
        pool_y=y_scaler.transform(pool_y[:, None])[:, 0].astype(np.float32),
        test_x=x_scaler.transform(test_x).astype(np.float32),
        test_y=y_scaler.transform(test_y[:, None])[:, 0].astype(np.float32),
        x_scaler=x_scaler, y_scaler=y_scaler, name="housing")


def _subsample(x: np.ndarray, y: np.ndarray, size: int, seed: int, purpose: str, key: str):
    if size <= 0:
        return x, y
    if size > len(x):
        raise ValueError(f"{key}={size} is larger than the {len(x)} points available; use at most "
                         f"{len(x)} or 0 for all.")
    keep = np.sort(numpy_generator(seed, purpose).choice(len(x), size=size, replace=False))
    return x[keep], y[keep]


DATASETS = {"housing": load_housing}


def data_key(name: str, size_pool: int, size_test: int, seed: int) -> tuple:
    """Identifies the arrays load_dataset returns: the seed matters only when subsampling."""
    return (name, size_pool, size_test, seed if (size_pool or size_test) else None)


def load_dataset(name: str, size_pool: int = 0, size_test: int = 0, seed: int = 0) -> RegressionData:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[name](size_pool=size_pool, size_test=size_test, seed=seed)
