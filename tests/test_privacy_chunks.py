"""DP-SGD's per-example pass skips filler rows (tfft.privacy.chunked_per_example_pass).

A Poisson batch holds ``capacity`` rows of which about ``B`` are sampled; the rest are filler
rows of weight 0. The chunked pass runs only the chunks that hold rows with a nonzero weight;
these tests check that it gives the one-pass (all rows) result, that filler rows count for
nothing, in float32, mixed_float16 and under MirroredStrategy on two logical CPUs.
"""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import REVIEW_LABELS, REVIEWS, printed_json, run_python

import tfft
from tfft.keras import keras
from tfft.privacy import PrivacyPlan, private_gradients

TEXTS, LABELS = REVIEWS, REVIEW_LABELS
#: six real rows, filler rows between them (Poisson batches put them last; any order works)
WEIGHTS = np.array([1, 0, 1, 1, 1, 0, 1, 1], np.float32)
PLAN = PrivacyPlan(clip=0.05, noise_multiplier=0.0, batch_size=8, train_rows=64, delta=1e-3, planned_steps=8)


def compiled(model_dir):
    keras.utils.set_random_seed(3)
    model = tfft.build_model(hf_model=str(model_dir), label_names=["neg", "pos"], dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=tfft.loss_for(model))
    return model


def batch_of(model, texts):
    data = tfft.make_dataset(model, texts, LABELS, batch_size=8, max_length=16, training=False)
    x, y = next(iter(data))[:2]
    return x, y, WEIGHTS


@pytest.fixture(scope="module")
def model(no_dropout_bert):
    return compiled(no_dropout_bert)


def dp_pass(model, batch, chunk_rows, xla=False):
    """Gradients, norms and predictions of one private_gradients call, traced as a graph (one
    function per model, chunk size and XLA setting, so batches of one shape share a trace)."""
    functions = model.__dict__.setdefault("_test_dp_passes", {})
    if (chunk_rows, xla) not in functions:
        plan = dataclasses.replace(PLAN, chunk_rows=chunk_rows)
        functions[chunk_rows, xla] = tf.function(
            lambda *batch: private_gradients(model, batch, plan), jit_compile=xla
        )
    gradients, _, predictions, norms = functions[chunk_rows, xla](*batch)
    return [g.numpy() for g in gradients], norms.numpy(), predictions.numpy()


def assert_same_gradients(a, b, scale=1.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-7 * scale)


@pytest.mark.parametrize("chunk_rows", [3, 4])  # 3: two chunks, one row of padding; 4: two whole chunks
def test_chunked_pass_equals_the_one_pass_over_all_rows(model, chunk_rows):
    batch = batch_of(model, TEXTS)
    every, every_norms, every_predictions = dp_pass(model, batch, chunk_rows=0)
    chunked, norms, predictions = dp_pass(model, batch, chunk_rows=chunk_rows)
    assert sum(float(np.sum(g**2)) for g in every) > 0
    assert_same_gradients(chunked, every)
    real = WEIGHTS > 0
    assert np.all(every_norms[real] > PLAN.clip)  # every real row is clipped: the sum is not trivial
    np.testing.assert_allclose(norms[real], every_norms[real], rtol=1e-5)
    np.testing.assert_allclose(predictions[real], every_predictions[real], rtol=1e-5, atol=1e-6)
    assert np.all(norms[~real] == 0)  # filler rows did not run: no gradient norm


def test_filler_rows_contribute_nothing_and_do_not_run(model):
    """Six real rows in chunks of 3: the two filler rows are past the last chunk run, so their
    predictions stay zeros, and other filler contents change nothing."""
    first = dp_pass(model, batch_of(model, TEXTS), chunk_rows=3)
    other_texts = list(TEXTS)
    other_texts[1], other_texts[5] = "an entirely different and much longer filler sentence", "x"
    second = dp_pass(model, batch_of(model, other_texts), chunk_rows=3)
    assert_same_gradients(second[0], first[0])
    filler = WEIGHTS == 0
    assert np.all(first[2][filler] == 0) and np.all(first[2][~filler] != 0)


def test_chunked_pass_compiles_with_xla(model):
    """Static shapes: the chunk loop compiles with XLA (a Poisson DP step runs with XLA on)."""
    batch = batch_of(model, TEXTS)
    every = dp_pass(model, batch, chunk_rows=0)[0]
    assert_same_gradients(dp_pass(model, batch, chunk_rows=3, xla=True)[0], every, scale=10.0)


def test_only_filler_rows_give_a_zero_sum(model):
    x, y, _ = batch_of(model, TEXTS)
    gradients, norms, _ = dp_pass(model, (x, y, np.zeros(8, np.float32)), chunk_rows=3)
    assert all(np.all(g == 0) for g in gradients) and np.all(norms == 0)


def test_mixed_float16_chunked_pass_equals_the_one_pass(no_dropout_bert):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = compiled(no_dropout_bert)
        assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
        batch = batch_of(model, TEXTS)
        every = dp_pass(model, batch, chunk_rows=0)[0]
        chunked = dp_pass(model, batch, chunk_rows=3)[0]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    scale = max(float(np.max(np.abs(g))) for g in every)
    assert scale > 0
    assert_same_gradients(chunked, every, scale=1e4 * scale)  # float16 forward passes, float32 sums


MIRRORED_CHUNKS = textwrap.dedent("""
    import dataclasses, json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfft
    from tfft.keras import keras
    from tfft.privacy import PrivacyPlan, install_privacy

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    texts = ["the movie was good", "awful plot", "i love this film", "boring"] * 2
    weights = tf.constant([1, 1, 0, 1, 1, 0, 0, 0], tf.float32)  # replica 0: 3 real rows, replica 1: 1
    changes = {}
    for chunk_rows in (0, 2):
        keras.utils.set_random_seed(3)
        with strategy.scope():
            model = tfft.build_model(hf_model=sys.argv[1], label_names=["neg", "pos"], dropout=0.0)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=tfft.loss_for(model))
        install_privacy(model, PrivacyPlan(clip=0.05, noise_multiplier=0.0, batch_size=8, train_rows=64,
                                           delta=1e-3, planned_steps=1, chunk_rows=chunk_rows))
        data = tfft.make_dataset(model, texts, ["pos", "neg"] * 4, batch_size=8, max_length=16)
        x, y = next(iter(data))[:2]
        before = [v.numpy() for v in model.trainable_variables]
        model.fit(tf.data.Dataset.from_tensors((x, y, weights)), epochs=1, verbose=0)
        changes[chunk_rows] = [v.numpy() - b for v, b in zip(model.trainable_variables, before)]
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(changes[0], changes[2]))
    size = max(float(np.max(np.abs(a))) for a in changes[0])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "gap": gap, "size": size}))
""")


@pytest.mark.long  # two MirroredStrategy fits in a subprocess: about a minute on a loaded machine
def test_mirrored_strategy_chunked_pass_equals_the_one_pass(no_dropout_bert):
    result = printed_json(run_python(MIRRORED_CHUNKS, no_dropout_bert, timeout=900))
    assert result["replicas"] == 2
    assert result["size"] > 0
    assert result["gap"] <= 1e-7
