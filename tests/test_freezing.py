"""Freezing (tfft/backbones/freezing.py): --freeze-backbone and --train-top-layers N."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import tiny_run_config

import tfft
from tfft.backbones.freezing import parameter_counts
from tfft.config import ModelConfig, TrainConfig
from tfft.errors import BackboneError, ConfigError
from tfft.train import compile_model

TEXTS = ["the movie was good", "the film was awful", "great fun", "boring plot"] * 2
LABELS = ["pos", "neg", "pos", "neg"] * 2


def write_tiny_gpt2(folder):
    """A two-layer random GPT-2 with a one-character BPE vocabulary (as in tests/test_model.py)."""
    import transformers

    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz.,!Ġ")}}
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    transformers.GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(
        str(folder)
    )
    config = transformers.GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=2, n_head=2, n_positions=64)
    gpt2 = transformers.TFGPT2Model(config)
    gpt2(gpt2.dummy_inputs)
    gpt2.save_pretrained(str(folder))
    return folder


def trainable_names(model) -> set[str]:
    return {weight.name for weight in model.trainable_weights}


def one_fit_step(model):
    """Weights before and after one optimizer step, by name."""
    before = {weight.name: weight.numpy().copy() for weight in model.weights}
    compile_model(model, TrainConfig(learning_rate=1e-2, warmup_ratio=0.0), total_steps=1, xla=False)
    data = tfft.make_dataset(model, TEXTS, labels=LABELS, batch_size=8, training=True, seed=0)
    model.fit(data, epochs=1, verbose=0)
    return before, {weight.name: weight.numpy() for weight in model.weights}


def assert_only_trainable_changed(model, before, after):
    trained = trainable_names(model)
    for name, value in after.items():
        changed = not np.array_equal(before[name], value)
        if name in trained:
            assert changed, f"{name} is trainable but did not change"
        else:
            assert not changed, f"{name} is frozen but changed"


def test_freeze_backbone_trains_the_head_only(tiny_bert_dir):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], freeze_backbone=True)
    names = trainable_names(model)
    assert names and not any("bert" in name for name in names)
    counts = parameter_counts(model)
    assert counts["trainable"] == 16 * 2 + 2  # the head: kernel 16 x 2 and bias 2
    assert counts["total"] > counts["trainable"]
    before, after = one_fit_step(model)
    assert_only_trainable_changed(model, before, after)


@pytest.mark.parametrize("pooling", ["mean", "pooler"])
def test_train_top_layers_bert(tiny_bert_dir, pooling):
    model = tfft.build_model(
        hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], train_top_layers=1, pooling=pooling
    )
    backbone = {name for name in trainable_names(model) if "bert" in name}
    assert backbone and all("/encoder/layer_._1/" in name or "/pooler/" in name for name in backbone)
    assert any("/pooler/" in name for name in backbone) == (pooling == "pooler")
    assert len(trainable_names(model) - backbone) == 2  # the head
    before, after = one_fit_step(model)
    assert_only_trainable_changed(model, before, after)


def test_train_top_layers_gpt2_keeps_the_final_layer_norm(tmp_path):
    model = tfft.build_model(
        hf_model=str(write_tiny_gpt2(tmp_path / "gpt2")), label_names=["neg", "pos"], train_top_layers=1
    )
    backbone = {name for name in trainable_names(model) if "transformer" in name}
    assert any("/h_._1/" in name for name in backbone) and any("/ln_f/" in name for name in backbone)
    assert not any("/h_._0/" in name or "/wte/" in name or "/wpe/" in name for name in backbone)
    before, after = one_fit_step(model)
    assert_only_trainable_changed(model, before, after)


def test_hub_encoder_freezing(tiny_hub_bert):
    frozen = tfft.build_model(
        hub_url=str(tiny_hub_bert.encoder_dir), label_names=["neg", "pos"], freeze_backbone=True
    )
    assert parameter_counts(frozen)["trainable"] == 16 * 2 + 2

    model = tfft.build_model(
        hub_url=str(tiny_hub_bert.encoder_dir), label_names=["neg", "pos"], train_top_layers=1
    )
    backbone = {name for name in trainable_names(model) if "bert" in name}
    assert backbone and all("/encoder/layer_._1/" in name for name in backbone)
    assert len(trainable_names(model) - backbone) == 2
    assert parameter_counts(model)["total"] == parameter_counts(frozen)["total"]
    before, after = one_fit_step(model)
    assert_only_trainable_changed(model, before, after)


def test_freezing_errors(tiny_bert_dir, tiny_text_embedding_dir):
    with pytest.raises(ConfigError, match=r"at most 2.*Received: train_top_layers=3"):
        tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=2, train_top_layers=3)
    with pytest.raises(ConfigError, match="Give only one of --freeze-backbone, --train-top-layers"):
        tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=2, train_top_layers=1, freeze_backbone=True)
    with pytest.raises(ConfigError, match=r"Received: train_top_layers=0"):
        tfft.build_model(hf_model=str(tiny_bert_dir), num_labels=2, train_top_layers=0)
    with pytest.raises(BackboneError, match="hub-text backbone has no transformer layers"):
        tfft.build_model(hub_url=str(tiny_text_embedding_dir), num_labels=2, train_top_layers=1)
    with pytest.raises(ConfigError, match=r"Give only one of.*freeze_backbone=True, train_top_layers=2"):
        ModelConfig(freeze_backbone=True, train_top_layers=2)
    with pytest.raises(ConfigError, match=r"`train_top_layers` must be > 0. Received: train_top_layers=0"):
        ModelConfig(train_top_layers=0)


def test_run_fit_reports_parameters(tiny_bert_dir, tiny_sentiment, tmp_path):
    config = tiny_run_config(
        tiny_bert_dir,
        tiny_sentiment,
        {
            "model.freeze_backbone": True,
            "train.epochs": 1,
            "runtime.xla": False,
            "export.run_dir": tmp_path / "r",
        },
    )
    result = tfft.run_fit(config, verbose=0)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["parameters"]["trainable"] == 16 * 2 + 2
    assert summary["parameters"]["total"] > summary["parameters"]["trainable"]
