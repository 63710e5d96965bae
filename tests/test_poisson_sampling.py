"""Poisson sampling of DP-SGD batches (tfft.preprocess.PoissonSampler) and its accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tfft.config import RunConfig, TrainConfig
from tfft.errors import ConfigError
from tfft.pipeline import poisson_sampler, privacy_plan
from tfft.preprocess import Batching, PoissonSampler, poisson_capacity, text_dataset, token_dataset
from tfft.privacy import epsilons, plan, report
from tfft.tokenization import Encoded

ROWS, BATCH = 200, 20


def encoded_rows(rows: int, seed: int = 0) -> Encoded:
    generator = np.random.default_rng(seed)
    lengths = generator.integers(3, 40, size=rows)
    ids = [generator.integers(5, 90, size=n).astype(np.int32) for n in lengths]
    return Encoded(ids, [np.zeros_like(row) for row in ids])


def sampled_batches(epochs: int, seed: int = 7):
    """Row ids (the labels) of the real rows of each batch, and the batches' shapes."""
    sampler = PoissonSampler(batch_size=BATCH, epochs=epochs, seed=seed)
    dataset = token_dataset(
        encoded_rows(ROWS),
        np.arange(ROWS),
        batch_size=BATCH,
        max_length=64,
        training=True,
        batching=Batching(sampler=sampler),
    )
    steps, shapes = [], set()
    for _ in range(epochs):  # Keras iterates the dataset once per epoch
        for features, labels, weights in dataset:
            shapes.add(tuple(features["input_ids"].shape))
            steps.append(labels.numpy()[weights.numpy() > 0])
    return sampler, steps, shapes


def binomial_tail(trials: int, rate: float, above: int) -> float:
    """P(Binomial(trials, rate) > above), summed directly in log space."""

    def log_pmf(k: int) -> float:
        choose = math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
        return choose + k * math.log(rate) + (trials - k) * math.log1p(-rate)

    return math.fsum(math.exp(log_pmf(k)) for k in range(above + 1, trials + 1))


def test_each_row_is_included_independently_at_rate_q():
    epochs = 30
    sampler, steps, shapes = sampled_batches(epochs)
    rate = BATCH / ROWS
    assert sampler.rows == ROWS and sampler.sampling_rate == rate
    assert sampler.steps_per_epoch == ROWS // BATCH and len(steps) == epochs * sampler.steps_per_epoch
    # bounded shapes: always `capacity` rows, a bucket length
    assert {shape[0] for shape in shapes} == {sampler.capacity} and sampler.capacity > BATCH
    assert {shape[1] for shape in shapes} <= {16, 32, 64}
    sizes = np.array([len(rows) for rows in steps])
    assert all(len(set(rows.tolist())) == len(rows) for rows in steps)  # no row twice in a step
    # inclusion rate: 200 rows x 300 steps, standard error 0.0012
    inclusion = np.zeros([len(steps), ROWS])
    for step, rows in enumerate(steps):
        inclusion[step, rows] = 1
    assert inclusion.mean() == pytest.approx(rate, abs=0.006)
    # batch sizes vary as a binomial's (variance N q (1 - q) = 18), not fixed at B
    assert 11 < sizes.var() < 27 and sizes.min() < BATCH < sizes.max()
    # every row, not only on average: each count ~ Binomial(300, 0.1), sd 5.2
    counts = inclusion.sum(axis=0)
    assert np.abs(counts - len(steps) * rate).max() < 6 * math.sqrt(len(steps) * rate * (1 - rate))
    # independence between rows: the inclusion of row pairs is uncorrelated
    correlation = np.corrcoef(inclusion.T)[np.triu_indices(ROWS, 1)]
    assert abs(correlation.mean()) < 0.01


def test_epochs_differ_and_the_seed_fixes_them():
    _, first, _ = sampled_batches(2, seed=3)
    _, again, _ = sampled_batches(2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    steps = len(first) // 2
    assert any(not np.array_equal(a, b) for a, b in zip(first[:steps], first[steps:]))


def test_text_batches_are_poisson_samples_too():
    sampler = PoissonSampler(batch_size=4, epochs=1, seed=1)
    texts = [f"text {i}" for i in range(40)]
    dataset = text_dataset(
        texts, labels=np.arange(40), batch_size=4, training=True, batching=Batching(sampler=sampler)
    )
    batches = list(dataset)
    assert len(batches) == 10 and sampler.rows == 40
    for features, labels, weights in batches:
        assert features["text"].shape[0] == sampler.capacity
        real = labels.numpy()[weights.numpy() > 0]
        texts_in = [t.decode() for t in features["text"].numpy()[weights.numpy() > 0]]
        assert texts_in == [f"text {i}" for i in real]


def test_capacity_is_the_smallest_multiple_of_8_within_the_overflow_bound():
    for rows, batch, steps in [(200, 20, 300), (3000, 64, 141), (64, 16, 8)]:
        capacity, overflow = poisson_capacity(rows, batch, steps)
        rate = batch / rows
        assert capacity % 8 == 0
        assert overflow == pytest.approx(
            steps * binomial_tail(rows + 1, rate, capacity), rel=1e-6, abs=1e-300
        )
        assert overflow <= 1e-12
        assert steps * binomial_tail(rows + 1, rate, capacity - 8) > 1e-12


def test_the_accountant_uses_the_rate_the_sampler_used():
    sampler = PoissonSampler(batch_size=32, epochs=2, seed=0)
    token_dataset(
        encoded_rows(500),
        np.zeros(500),
        batch_size=32,
        max_length=64,
        training=True,
        batching=Batching(sampler=sampler),
    )
    config = TrainConfig(batch_size=32, epochs=2, dp_l2_clip=1.0, dp_noise_multiplier=1.1)
    privacy = plan(config, sampler.rows, sampler.steps_per_epoch * 2, sampler)
    assert privacy.sampling_rate == 32 / 500 and privacy.capacity == sampler.capacity
    block = report(privacy, 32)
    direct = epsilons(1.1, 32 / 500, 32, privacy.delta)
    assert (block["epsilon_rdp"], block["epsilon_pld"]) == (direct["rdp"], direct["pld"])
    assert block["sampling"] == "poisson" and block["overflow"] == sampler.overflow <= 1e-12
    assert (
        block["delta"]
        < block["delta_with_overflow"]
        <= block["delta"] + (1 + math.exp(direct["rdp"])) * 1e-12
    )


def test_shuffle_sampling_counts_rows_and_says_it_approximates():
    config = RunConfig(
        train=TrainConfig(batch_size=8, dp_l2_clip=1.0, dp_noise_multiplier=1.0, dp_sampling="shuffle")
    )
    assert poisson_sampler(config) is None
    data = token_dataset(encoded_rows(30), np.zeros(30), batch_size=8, max_length=64, training=True)
    steps = int(data.cardinality().numpy())
    privacy = privacy_plan(config, data, steps)
    assert privacy.train_rows == 30 and privacy.sampling == "shuffle" and privacy.capacity is None
    assert "approximation" in report(privacy, steps)["assumption"]


def test_a_task_without_poisson_batches_is_an_error():
    config = RunConfig(train=TrainConfig(batch_size=8, dp_l2_clip=1.0, dp_noise_multiplier=1.0))
    sampler = poisson_sampler(config)
    assert sampler is not None  # poisson is the default
    data = tf.data.Dataset.from_tensors(
        ({"input_ids": tf.zeros([8, 4], tf.int32)}, tf.zeros([8]), tf.ones([8]))
    )
    with pytest.raises(ConfigError, match="--dp-sampling shuffle"):
        privacy_plan(config, data, 1, sampler)
