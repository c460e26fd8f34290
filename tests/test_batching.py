"""train_schedule.batching: how an epoch's rows fill its minibatches."""

import numpy as np
import pytest
import tensorflow as tf

from al_bnn.config import ConfigError
from al_bnn.models.estimators import BNNRegressor, load_estimator
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


@pytest.mark.slow  # trains (and compiles) TensorFlow models
def test_balanced_changes_training_only_where_the_batches_differ():
    # 64 rows in batches of 32: both layouts are two full batches, so the numbers are the same
    assert np.array_equal(_fit(64, "padded"), _fit(64, "balanced"))
    # 66 rows: 32 + 32 + 2 against 22 + 22 + 22
    assert not np.allclose(_fit(66, "padded"), _fit(66, "balanced"))


def test_a_bad_batching_is_one_message_naming_it():
    with pytest.raises(ConfigError, match="batching"):
        BNNRegressor(batching="even", layer_sizes=[4], n_epochs=1).fit(np.zeros((30, 1)), np.arange(30.0))


def test_padded_kl_divisor_and_mask_are_the_earlier_codes_in_the_networks_float32():
    # before batching existed the trainer computed tf.cast(n, net.dtype) / batch_size and the mask in
    # net.dtype directly; epoch_layout divides in float64 and the trainer casts: the same numbers
    n = tf.range(1, 20001)
    for batch_size in (16, 32, 100, 128, 256, 1000):
        layout = tf.cast(tf.cast(n, tf.float64) / batch_size, tf.float32)
        earlier = tf.cast(n, tf.float32) / batch_size
        assert np.array_equal(layout.numpy(), earlier.numpy())
    for count in (1, 255, 256, 257, 784):
        layout = epoch_layout(count, 256, "padded")
        padded = -(-count // 256) * 256
        earlier = tf.cast(tf.reshape(tf.range(padded) < count, [-1, 256]), tf.float32)
        assert np.array_equal(tf.cast(layout.mask, tf.float32).numpy(), earlier.numpy())
        order = tf.random.shuffle(tf.range(count))
        placed = layout.place(order, padded)
        assert placed.dtype == tf.int32
        assert np.array_equal(placed.numpy(), tf.concat([order, tf.zeros([padded - count], tf.int32)], 0).numpy())


@pytest.mark.slow  # trains (and compiles) TensorFlow models
def test_a_model_fitted_with_balanced_batches_saves_loads_and_trains_on_with_them(tmp_path):
    generator = np.random.default_rng(1)
    x = generator.normal(size=(66, 2))
    y = x[:, 0] + 0.1 * generator.normal(size=66)
    parameters = dict(layer_sizes=[8], n_epochs=2, min_steps=0, batch_size=32, batching="balanced",
                      calibration="none", random_state=0, warm_start=True)
    model = BNNRegressor(**parameters).fit(x, y)
    loaded = load_estimator(model.save(tmp_path / "balanced.npz"))
    assert loaded.get_params() == model.get_params() and loaded.trainer_.batching == "balanced"
    np.testing.assert_array_equal(loaded.predict(x, return_std=True)[1], model.predict(x, return_std=True)[1])
    # training on (66 rows: 22 + 22 + 22, where padded would be 32 + 32 + 2) continues exactly as the original
    np.testing.assert_array_equal(loaded.fit(x, y).predict(x, return_std=True)[1],
                                  model.fit(x, y).predict(x, return_std=True)[1])
