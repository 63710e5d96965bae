"""DP-SGD's per-example pass is vectorized throughout: pfor never falls back to a while loop.

pfor has no converter for ``ResourceGather`` (``tf.gather`` on a variable: every embedding
lookup), so without :func:`tfft.privacy.dense_gathers` each lookup would run one row at a
time in a ``tf.while_loop``. These tests read tensorflow's own log of such fallbacks.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.ops.resource_variable_ops import BaseResourceVariable

import tfft
from tfft.keras import keras
from tfft.privacy import PrivacyPlan, dense_gathers, install_privacy

PREFIX = "Using a while_loop for converting "


@pytest.fixture
def fallbacks():
    """The op types pfor runs in a while loop, from the ``tensorflow`` logger (any level)."""
    found: list[str] = []

    class Record(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith(PREFIX):
                found.append(message[len(PREFIX) :].split(" ")[0])

    logger = logging.getLogger("tensorflow")
    handler, level = Record(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield found
    logger.removeHandler(handler)
    logger.setLevel(level)


def per_row(table, ids, dense: bool):
    """Each row's lookup in ``table`` and the gradient of its squared sum, vectorized."""

    def one(row):
        with tf.GradientTape() as tape:
            with dense_gathers() if dense else contextlib.nullcontext():
                looked_up = tf.gather(table, row)
            loss = tf.reduce_sum(looked_up**2)
        return looked_up, tf.convert_to_tensor(tape.gradient(loss, table))

    return tf.function(lambda: tf.vectorized_map(one, ids))()


def test_dense_gathers_vectorize_with_the_same_values_and_gradients(fallbacks):
    table = tf.Variable(np.arange(12, dtype=np.float32).reshape(6, 2))
    ids = tf.constant([[1, 2], [5, 0], [3, 3]])
    plain_values, plain_gradients = per_row(table, ids, dense=False)
    assert fallbacks == ["ResourceGather"]  # the log shows pfor's fallback when there is one
    fallbacks.clear()
    values, gradients = per_row(table, ids, dense=True)
    assert fallbacks == []
    np.testing.assert_array_equal(values.numpy(), plain_values.numpy())
    np.testing.assert_array_equal(gradients.numpy(), plain_gradients.numpy())
    assert gradients.shape == (3, 6, 2) and np.count_nonzero(gradients.numpy()[2]) == 2  # row 3: id 3 twice


def test_dense_gathers_put_the_variable_class_back():
    original = BaseResourceVariable.sparse_read
    with pytest.raises(RuntimeError), dense_gathers():
        assert BaseResourceVariable.sparse_read is not original
        raise RuntimeError("leave the block")
    assert BaseResourceVariable.sparse_read is original


def test_a_dp_step_has_no_while_loop_fallback(tiny_bert_dir, fallbacks):
    """A whole DP-SGD step of the tiny BERT: word, position and token-type embeddings are
    looked up (and, all weights trainable here, differentiated) per row."""
    keras.utils.set_random_seed(0)
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss=tfft.loss_for(model))
    install_privacy(
        model,
        PrivacyPlan(clip=1.0, noise_multiplier=0.0, batch_size=4, train_rows=64, delta=1e-3, planned_steps=1),
    )
    texts = ["the movie was good", "awful plot", "boring", "i love this film", "bad", "great fun"]
    x, y, w = next(
        iter(tfft.make_dataset(model, texts, ["pos", "neg", "neg", "pos", "neg", "pos"], batch_size=6))
    )
    w = np.array([1, 1, 0, 1, 1, 0], np.float32)
    before = [v.numpy() for v in model.trainable_variables]
    model.train_on_batch(x, y, w)
    assert any(not np.array_equal(v.numpy(), b) for v, b in zip(model.trainable_variables, before))
    assert fallbacks == []
