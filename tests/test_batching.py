"""train_schedule.batching: how an epoch's rows fill its minibatches."""

import numpy as np
import pytest

from al_bnn.config import ConfigError
from al_bnn.models.estimators import BNNRegressor
from al_bnn.models.trainer import epoch_layout


@pytest.mark.parametrize("n, batch_size", [(277, 256), (784, 256), (1000, 256), (256, 256), (5, 16), (33, 16)])
def test_every_row_fills_one_slot_per_epoch(n, batch_size):
    for batching in ("padded", "balanced"):
        layout = epoch_layout(n, batch_size, batching)
        mask = layout.mask.numpy()
        assert mask.shape == (-(-n // batch_size), batch_size)
        placed = layout.place(np.arange(n, dtype=np.int32) + 7, mask.size).numpy()
        assert sorted(placed[mask.reshape(-1)]) == list(range(7, n + 7))


def test_padded_is_the_reference_layout():
    layout = epoch_layout(784, 256, "padded")
    assert layout.mask.numpy().sum(axis=1).tolist() == [256, 256, 256, 16]
    assert float(layout.batches_per_epoch) == 784 / 256
    assert layout.place(np.arange(784, dtype=np.int32), 1024).numpy().tolist() == list(range(784)) + [0] * 240


def test_balanced_batches_differ_by_at_most_one_row_and_divide_the_kl_by_their_number():
    for n in (277, 784, 1000, 33, 5):
        layout = epoch_layout(n, 256 if n > 100 else 16, "balanced")
        sizes = layout.mask.numpy().sum(axis=1)
        assert sizes.sum() == n and sizes.max() - sizes.min() <= 1
        # the bnn's step loss is (KL / batches_per_epoch + sum of the batch's NLL) / its rows: with
        # balanced batches that is KL / n + mean NLL, the per-point ELBO, up to one row
        assert float(layout.batches_per_epoch) == len(sizes)
        assert np.allclose(1 / (float(layout.batches_per_epoch) * sizes), 1 / n, rtol=1 / sizes.min())


def _fit(n: int, batching: str) -> np.ndarray:
    generator = np.random.default_rng(0)
    x = generator.normal(size=(n, 2))
    y = x[:, 0] + 0.1 * generator.normal(size=n)
    model = BNNRegressor(layer_sizes=[8], n_epochs=3, min_steps=0, batch_size=32, batching=batching,
                         calibration="none", random_state=0).fit(x, y)
    return np.column_stack(model.predict(x[:10], return_std=True))


def test_balanced_changes_training_only_where_the_batches_differ():
    # 64 rows in batches of 32: both layouts are two full batches, so the numbers are the same
    assert np.array_equal(_fit(64, "padded"), _fit(64, "balanced"))
    # 66 rows: 32 + 32 + 2 against 22 + 22 + 22
    assert not np.allclose(_fit(66, "padded"), _fit(66, "balanced"))


def test_a_bad_batching_is_one_message_naming_it():
    with pytest.raises(ConfigError, match="batching"):
        BNNRegressor(batching="even", layer_sizes=[4], n_epochs=1).fit(np.zeros((30, 1)), np.arange(30.0))
