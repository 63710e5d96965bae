"""DP-SGD (tfft/privacy.py): per-example clipping, noise once per batch, accounting, run output."""

from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pytest
from helpers import REVIEW_LABELS, REVIEWS, printed_json, run_python

import tfft
from tfft.config import TrainConfig
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.privacy import (
    PrivacyPlan,
    clipping_statistics,
    epsilons,
    install_privacy,
    noise_for_epsilon,
    per_example_losses,
    report,
)

TEXTS, LABELS = REVIEWS, REVIEW_LABELS


def classifier(model_dir):
    keras.utils.set_random_seed(3)
    return tfft.build_model(hf_model=str(model_dir), label_names=["neg", "pos"], dropout=0.0)


def one_batch(model, batch_size=8, weights=None):
    """The first training batch of TEXTS (``weights`` replaces the sample weights)."""
    data = tfft.make_dataset(model, TEXTS, LABELS, batch_size=batch_size, max_length=16, training=False)
    x, y = next(iter(data))[:2]
    w = np.ones(len(y), np.float32) if weights is None else np.asarray(weights, np.float32)
    return x, y, w


def sgd_step(model, batch, privacy):
    """The change of every trainable variable after one step of SGD (learning rate 1)."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=tfft.loss_for(model))
    install_privacy(model, privacy)
    before = [v.numpy() for v in model.trainable_variables]
    model.train_on_batch(*batch)
    return [v.numpy() - b for v, b in zip(model.trainable_variables, before)]


def reference_clipped_mean(model, batch, clip, batch_size):
    """sum_i clip(grad of loss_i) / B, one example at a time in a Python loop, and the norms of
    the real rows' gradients before clipping. loss_i is ``w_i * loss`` for a per-example loss,
    the ``w``-weighted mean over the row's tokens for a per-token loss."""
    import tensorflow as tf

    x, y, w = batch
    loss = tfft.loss_for(model)
    variables = model.trainable_variables
    total = [np.zeros(v.shape, np.float32) for v in variables]
    norms = []
    for i in range(len(y)):
        xi = {key: value[i : i + 1] for key, value in x.items()}
        wi = tf.constant(np.asarray(w[i], np.float32))
        with tf.GradientTape() as tape:
            values = tf.cast(loss.per_example(y[i : i + 1], model(xi, training=True))[0], tf.float32)
            if values.shape.rank == 0:
                li = wi * values
            else:
                li = tf.math.divide_no_nan(tf.reduce_sum(wi * values), tf.reduce_sum(wi))
        grads = tape.gradient(li, variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)]
        clipped, norm = tf.clip_by_global_norm(grads, clip)
        total = [t + c.numpy() for t, c in zip(total, clipped)]
        if np.sum(w[i]) > 0:
            norms.append(float(norm))
    return [t / batch_size for t in total], norms


def plan(clip=1.0, sigma=0.0, batch_size=8, rows=64):
    return PrivacyPlan(
        clip=clip, noise_multiplier=sigma, batch_size=batch_size, train_rows=rows, delta=1e-3, planned_steps=8
    )


def test_clipping_equals_a_per_example_loop_and_filler_rows_count_nothing(no_dropout_bert):
    model = classifier(no_dropout_bert)
    weights = [1, 1, 1, 1, 1, 1, 0, 0]  # two filler rows
    batch = one_batch(model, weights=weights)
    clip = 0.05  # below every example's gradient norm: all are clipped
    expected, norms = reference_clipped_mean(model, batch, clip, batch_size=8)
    assert len(norms) == 6 and min(norms) > clip
    changes = sgd_step(model, batch, plan(clip=clip, sigma=0.0, batch_size=8))
    for change, gradient in zip(changes, expected):
        np.testing.assert_allclose(change, -gradient, atol=2e-6)
    assert sum(np.sum(g.astype(np.float64) ** 2) for g in expected) > 0
    # six real rows, each clipped to norm 0.05, aligned or not: the sum's norm is at most 6 x 0.05
    norm = np.sqrt(sum(np.sum(c.astype(np.float64) ** 2) for c in changes))
    assert 0 < norm <= 6 * clip / 8 + 1e-6


def test_per_token_clipping_equals_a_per_example_loop(no_dropout_bert):
    """ner: each row's loss is the mean over its labelled tokens; the batch has a filler row."""
    keras.utils.set_random_seed(3)
    model = tfft.build_model(
        hf_model=str(no_dropout_bert), task="ner", label_names=["O", "B-LOC"], dropout=0.0
    )
    words = [["paris", "is", "nice"], ["the", "movie", "was", "good"], ["london"]]
    tags = [["B-LOC", "O", "O"], ["O", "O", "O", "O"], ["B-LOC"]]
    x, y, w = next(iter(tfft.make_dataset(model, words, tags, batch_size=4, max_length=16)))
    x = {key: np.concatenate([value, value[:1]]) for key, value in x.items()}  # a fourth, filler row
    y = np.concatenate([y, y[:1]])
    w = np.concatenate([w, np.zeros_like(w[:1])])
    clip = 0.02
    expected, norms = reference_clipped_mean(model, (x, y, w), clip, batch_size=4)
    assert len(norms) == 3 and min(norms) > clip
    changes = sgd_step(model, (x, y, w), plan(clip=clip, sigma=0.0, batch_size=4))
    for change, gradient in zip(changes, expected):
        np.testing.assert_allclose(change, -gradient, atol=2e-6)


def test_huge_clip_without_noise_is_the_plain_update(no_dropout_bert):
    plain_model = classifier(no_dropout_bert)
    batch = one_batch(plain_model)
    plain = sgd_step(plain_model, batch, None)
    private = sgd_step(classifier(no_dropout_bert), batch, plan(clip=1e6, sigma=0.0, batch_size=8))
    for a, b in zip(private, plain):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_per_token_losses_are_the_weighted_mean_of_each_rows_tokens():
    import tensorflow as tf

    from tfft.losses import WeightedMeanLoss

    loss = WeightedMeanLoss(lambda y, p: tf.cast(y, tf.float32) * p, name="toy")
    y = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    weights = tf.constant([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])  # last row: filler
    values = per_example_losses(loss, y, tf.ones_like(y), weights).numpy()
    np.testing.assert_allclose(values, [1.5, 6.0, 0.0])
    per_example = per_example_losses(loss, y[:, 0], tf.ones(3), tf.constant([1.0, 2.0, 0.0])).numpy()
    np.testing.assert_allclose(per_example, [1.0, 8.0, 0.0])


def zero_signal_update_std(model_dir, sigma, clip, batch_size):
    """The standard deviation of one update when every row has weight 0: the noise / B alone."""
    model = classifier(model_dir)
    batch = one_batch(model, batch_size=batch_size, weights=[0.0] * batch_size)
    changes = sgd_step(model, batch, plan(clip=clip, sigma=sigma, batch_size=batch_size))
    values = np.concatenate([c.ravel() for c in changes if np.any(c)])
    return float(np.std(values)), values.size


def test_noise_std_is_sigma_clip_over_batch_size(no_dropout_bert):
    std, count = zero_signal_update_std(no_dropout_bert, sigma=1.5, clip=0.4, batch_size=8)
    assert count > 5_000  # the relative standard error of the std is about 1 %
    assert std == pytest.approx(1.5 * 0.4 / 8, rel=0.03)


MIRRORED_NOISE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfft
    from tfft.keras import keras
    from tfft.privacy import PrivacyPlan, install_privacy

    model_dir = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = tfft.build_model(hf_model=model_dir, label_names=["neg", "pos"], dropout=0.0)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=tfft.loss_for(model))
    install_privacy(model, PrivacyPlan(clip=0.4, noise_multiplier=1.5, batch_size=8, train_rows=64,
                                       delta=1e-3, planned_steps=1))
    texts = ["the movie was good", "awful plot"] * 4
    data = tfft.make_dataset(model, texts, ["pos", "neg"] * 4, batch_size=8, max_length=16)
    x, y = next(iter(data))[:2]
    batches = tf.data.Dataset.from_tensors((x, y, tf.zeros([8]))).repeat(1)
    before = [v.numpy() for v in model.trainable_variables]
    model.fit(batches, epochs=1, verbose=0)
    changes = [v.numpy() - b for v, b in zip(model.trainable_variables, before)]
    values = np.concatenate([c.ravel() for c in changes if np.any(c)])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "std": float(np.std(values)),
                      "count": int(values.size)}))
""")


@pytest.mark.long  # MirroredStrategy on 2 logical CPUs; one replica's noise is tested by default
def test_mirrored_strategy_adds_the_noise_once(no_dropout_bert):
    result = printed_json(run_python(MIRRORED_NOISE, no_dropout_bert))
    assert result["replicas"] == 2
    assert result["count"] > 5_000
    assert result["std"] == pytest.approx(1.5 * 0.4 / 8, rel=0.03)  # twice the noise would be x 1.41


def test_epsilon_is_dp_accountings():
    import dp_accounting
    from dp_accounting import pld, rdp

    privacy = PrivacyPlan(
        clip=1.0, noise_multiplier=1.1, batch_size=16, train_rows=640, delta=1e-5, planned_steps=120
    )
    block = report(privacy, steps=100)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(16 / 640, dp_accounting.GaussianDpEvent(1.1)), 100
    )
    for key, accountant in (("epsilon_rdp", rdp.RdpAccountant()), ("epsilon_pld", pld.PLDAccountant())):
        accountant.compose(event)
        assert block[key] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    assert block["sampling_rate"] == 16 / 640 and block["steps"] == 100 and block["delta"] == 1e-5
    assert block["epsilon_pld"] <= block["epsilon_rdp"]


def test_noise_for_a_target_epsilon_reaches_it_tightly():
    sigma = noise_for_epsilon(3.0, 0.05, 200, 1e-5)
    found = epsilons(sigma, 0.05, 200, 1e-5)
    assert found["rdp"] <= 3.0 and found["pld"] <= 3.0
    assert epsilons(sigma * 0.99, 0.05, 200, 1e-5)["rdp"] > 3.0  # not much more noise than needed


def test_no_noise_means_no_finite_epsilon():
    block = report(plan(sigma=0.0), steps=5)
    assert block["epsilon_rdp"] is None and block["epsilon_pld"] is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dp_noise_multiplier": 1.0}, "need --dp-l2-clip"),
        ({"dp_delta": 1e-5}, "Received: dp_delta=1e-05"),
        ({"dp_l2_clip": 1.0}, "exactly one of --dp-noise-multiplier and --dp-target-epsilon"),
        ({"dp_l2_clip": 1.0, "dp_noise_multiplier": 1.0, "dp_target_epsilon": 3.0}, "dp_target_epsilon=3.0"),
        ({"dp_l2_clip": 0.0, "dp_noise_multiplier": 1.0}, "`dp_l2_clip` must be > 0"),
        ({"dp_l2_clip": 1.0, "dp_noise_multiplier": -1.0}, "`dp_noise_multiplier` must be >= 0"),
        ({"dp_l2_clip": 1.0, "dp_target_epsilon": 0.0}, "`dp_target_epsilon` must be > 0"),
        (
            {"dp_l2_clip": 1.0, "dp_target_epsilon": 1.0, "dp_delta": 1.0},
            "`dp_delta` must be between 0 and 1",
        ),
        ({"dp_l2_clip": 1.0, "dp_target_epsilon": 1.0, "grad_accum_steps": 2}, "grad_accum_steps=2"),
    ],
)
def test_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        TrainConfig(**settings)


def test_unreachable_epsilon_is_an_error():
    with pytest.raises(ConfigError, match="dp_target_epsilon=1e-06"):
        noise_for_epsilon(1e-6, 1.0, 10_000, 1e-5)


def test_a_model_without_per_example_losses_is_an_error(no_dropout_bert):
    model = classifier(no_dropout_bert)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="per-example or per-token loss"):
        install_privacy(model, plan())


@pytest.mark.long  # a whole DP fit and export; DP steps and the accountants are tested in-process by default
def test_run_fit_with_a_target_epsilon_writes_the_privacy_block(tiny_bert_dir, tiny_sentiment, tmp_path):
    config = tfft.load_config(
        None,
        {
            "model.hf_model": str(tiny_bert_dir),
            "data.train": str(tiny_sentiment["train"]),
            "data.eval": str(tiny_sentiment["dev"]),
            "data.text_column": "sentence",
            "train.epochs": 2,
            "train.batch_size": 16,
            "train.dp_l2_clip": 1.0,
            "train.dp_target_epsilon": 8.0,
            "runtime.precision": "float32",
            "export.run_dir": str(tmp_path / "run"),
            "export.export_dir": str(tmp_path / "export"),
        },
    )
    result = tfft.run_fit(config, verbose=0)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    privacy = summary["privacy"]
    assert privacy["steps"] == summary["optimizer_steps"] == 8  # 64 rows / 16, two epochs
    assert privacy["sampling_rate"] == 16 / 64 and privacy["delta"] == pytest.approx(1 / 640)
    assert privacy["clip"] == 1.0 and privacy["noise_multiplier"] > 0
    assert summary["runtime"]["xla"] is False  # float32 on a CPU: no XLA by default
    assert privacy["epsilon_pld"] <= privacy["epsilon_rdp"] <= 8.0
    assert "Poisson" in privacy["assumption"]
    # the default: Poisson batches of `capacity` rows, with the rate accounted the one sampled at
    assert privacy["sampling"] == "poisson" and privacy["capacity"] > 16 and privacy["overflow"] <= 1e-12
    direct = epsilons(privacy["noise_multiplier"], 16 / 64, 8, privacy["delta"])
    assert privacy["epsilon_rdp"] == direct["rdp"] and privacy["epsilon_pld"] == direct["pld"]
    metadata = json.loads((result.export_path / "assets.extra" / "tfft.json").read_text())
    assert metadata["privacy"] == privacy
    # how the clip bit is logged per step and kept for the last batch
    assert 0.0 <= privacy["clipped_share_last_batch"] <= 1.0 and privacy["mean_grad_norm_last_batch"] > 0
    last_step = json.loads((result.run_dir / "history.jsonl").read_text().splitlines()[-1])
    assert last_step["dp_clipped"] == pytest.approx(privacy["clipped_share_last_batch"])
    assert last_step["dp_grad_norm"] == pytest.approx(privacy["mean_grad_norm_last_batch"])


def test_clipping_statistics_count_real_rows_only():
    import tensorflow as tf

    norms = tf.constant([0.5, 3.0, 0.0, 2.0, 7.0])
    weights = tf.constant([1.0, 1.0, 0.0, 2.0, 0.0])  # rows 2 and 4 are filler
    stats = clipping_statistics(norms, weights, clip=1.0)
    real = np.array([0.5, 3.0, 2.0])
    assert float(stats["dp_clipped"]) == pytest.approx(np.mean(real > 1.0))
    assert float(stats["dp_grad_norm"]) == pytest.approx(real.mean())
    token_weights = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert float(clipping_statistics(norms, token_weights, 1.0)["dp_clipped"]) == pytest.approx(2 / 3)


def test_a_clip_that_bites_every_row_is_warned_about(caplog):
    from tfft.privacy import report

    with caplog.at_level(logging.WARNING, logger="tfft.privacy"):
        block = report(plan(clip=0.1, sigma=1.0, batch_size=8), 4, {"dp_clipped": 1.0, "dp_grad_norm": 3.5})
    assert block["clipped_share_last_batch"] == 1.0 and block["mean_grad_norm_last_batch"] == 3.5
    assert "clipped every row" in caplog.text and "3.5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tfft.privacy"):
        block = report(plan(clip=0.1, sigma=1.0, batch_size=8), 4, {"dp_clipped": 0.6, "dp_grad_norm": 0.5})
    assert "clipped every row" not in caplog.text and block["clipped_share_last_batch"] == 0.6
    assert "clipped_share_last_batch" not in report(plan(clip=0.1, sigma=1.0, batch_size=8), 4)


def test_mixed_float16_unscales_and_clips_in_float32(no_dropout_bert):
    """Under mixed_float16 the loss-scale optimizer's scale is taken out before clipping."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        plain_model = classifier(no_dropout_bert)
        batch = one_batch(plain_model)
        plain = sgd_step(plain_model, batch, None)
        private_model = classifier(no_dropout_bert)
        private = sgd_step(private_model, batch, plan(clip=1e6, sigma=0.0, batch_size=8))
        assert isinstance(private_model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    scale = max(float(np.max(np.abs(p))) for p in plain)
    assert scale > 0
    for a, b in zip(private, plain):
        np.testing.assert_allclose(a, b, atol=2e-3 * scale)
