"""California housing: shapes, preprocessing, subsampling and the offline error."""

import numpy as np
import pytest

import al_bnn.data as regression_data
from al_bnn.data import DataUnavailableError, housing_arrays, load_housing


@pytest.mark.usefixtures("needs_housing")
def test_full_split_has_the_published_shapes_and_is_standardised_on_the_pool():
    data = load_housing()
    assert data.pool_x.shape == (14448, 5) and data.test_x.shape == (6192, 5)
    assert data.pool_y.shape == (14448,) and data.test_y.shape == (6192,)
    np.testing.assert_allclose(data.pool_x.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(data.pool_x.std(0), 1, atol=1e-4)
    assert abs(data.pool_y.mean()) < 1e-4 and abs(data.pool_y.std() - 1) < 1e-4
    assert abs(data.test_y.mean()) > 1e-4  # the test set is scaled with the pool's statistics
    assert 1.0 < data.target_scale < 1.3  # house values in 100k$


@pytest.mark.usefixtures("needs_housing")
def test_preprocessing_matches_the_published_experiments():
    features, target = housing_arrays()
    assert features.shape == (20640, 5)
    from sklearn.datasets import fetch_california_housing
    raw = fetch_california_housing(as_frame=True).frame
    np.testing.assert_allclose(features[:, 2], raw["AveRooms"] + raw["AveBedrms"])  # AveRooms += AveBedrms
    np.testing.assert_allclose(features[:, [0, 1, 3, 4]], raw[["MedInc", "HouseAge", "Population", "AveOccup"]])
    np.testing.assert_allclose(target, raw["MedHouseVal"])


@pytest.mark.usefixtures("needs_housing")
def test_subsampling_is_reproducible_by_seed():
    first, again, other = load_housing(300, 100, seed=1), load_housing(300, 100, seed=1), load_housing(300, 100, seed=2)
    assert first.pool_x.shape == (300, 5) and first.test_x.shape == (100, 5)
    np.testing.assert_array_equal(first.pool_x, again.pool_x)
    assert not np.array_equal(first.pool_x, other.pool_x)
    with pytest.raises(ValueError, match="size_pool=20000 is larger than the 14448"):
        load_housing(size_pool=20000)


def test_missing_data_without_network_names_scikit_learn_data(monkeypatch, tmp_path):
    def offline_fetch(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    monkeypatch.setattr("sklearn.datasets.fetch_california_housing", offline_fetch)
    with pytest.raises(DataUnavailableError, match="SCIKIT_LEARN_DATA") as error:
        regression_data.load_housing()
    assert str(tmp_path) in str(error.value)
