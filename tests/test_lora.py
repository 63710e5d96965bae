"""LoRA on Hugging Face TF backbones: frozen base, adapters + head trained, merged at export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    ENGLISH,
    tiny_run_config,
    write_tiny_bart,
    write_tiny_bert,
    write_tiny_marian,
    write_tiny_roberta,
    write_tiny_t5,
)

import tfft
from tfft.backbones.lora import (
    ADAPTER_FILE,
    LoraAdapter,
    find_targets,
    load_adapter_file,
    merged_lora,
    write_adapter_file,
)
from tfft.config import ModelConfig, load_config
from tfft.errors import ConfigError
from tfft.keras import keras
from tfft.lora_options import LoraConfig

TEXTS = ["the movie was good", "The FILM was awful!", "great fun, love it", "boring plot...", "café night"]


def features(model, texts=TEXTS, max_length=32):
    return next(iter(tfft.make_dataset(model, texts, batch_size=len(texts), max_length=max_length)))


def adapters(model) -> list[LoraAdapter]:
    return [layer for layer in model._flatten_layers() if isinstance(layer, LoraAdapter)]


def randomize_adapters(model, seed=0) -> None:
    """B starts at zero (the base model); give it values so that merging has something to merge."""
    rng = np.random.default_rng(seed)
    for adapter in adapters(model):
        adapter.lora_b.assign(rng.normal(0, 0.5, adapter.lora_b.shape).astype("float32"))


def write_tiny_gpt2(folder):
    import transformers

    folder.mkdir(parents=True)
    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz.,!Ġ")}}
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


def check_merged_export(model, tmp_path, atol=1e-5):
    """Merged (in the block and in the SavedModel) == unmerged, and the export has no adapters."""
    x = features(model)
    unmerged = model(x).numpy()
    with merged_lora(model):
        assert not adapters(model)
        merged = model(x).numpy()
    np.testing.assert_allclose(merged, unmerged, atol=atol)
    np.testing.assert_array_equal(model(x).numpy(), unmerged)  # put back exactly

    path = tfft.export_saved_model(model, tmp_path / "serving", max_length=32)
    saved = [name for name, _ in tf.train.list_variables(str(path / "variables" / "variables"))]
    assert saved and not [name for name in saved if "lora" in name]
    loaded = tf.saved_model.load(str(path))
    outputs = loaded.signatures["predict_ids"](**{k: tf.cast(v, tf.int32) for k, v in x.items()})
    np.testing.assert_allclose(outputs["probabilities"].numpy(), tf.nn.softmax(unmerged).numpy(), atol=atol)
    meta = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert meta["lora"]["merged"] is True
    return path


def test_lora_bert_starts_equal_trains_only_adapters_and_head(tiny_bert_dir):
    base = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"])
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], lora=dict(rank=4))
    backbone = model.tfft_spec.backbone
    assert [path.rsplit("/", 1)[-1] for path, _ in backbone.lora_layers] == ["query", "value"] * 2

    # Starts equal to the base: B is zero.
    x = features(model)
    inputs = {k: x[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    np.testing.assert_array_equal(
        backbone.model(inputs).last_hidden_state.numpy(),
        base.tfft_spec.backbone.model(inputs).last_hidden_state.numpy(),
    )

    # Trainable: the 2 x 2 adapters (A and B each) and the head; no base weight.
    names = [w.name for w in model.trainable_weights]
    assert sum("lora" in name for name in names) == 8
    assert all("lora" in name or name.startswith("classifier") for name in names), names
    base_ids = {id(w) for w in backbone.model.weights if "lora" not in w.name}
    assert not base_ids & {id(w) for w in model.trainable_weights}
    assert len(backbone.model.weights) == len(base.tfft_spec.backbone.model.weights) + 8
    assert "encoder/layer_._0/attention/self/query/lora/lora_a:0" in names[0]

    # One training step moves adapters and head only.
    before = {w.name: w.numpy() for w in backbone.model.weights}
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=tfft.loss_for(model))
    data = tfft.make_dataset(model, TEXTS, ["pos", "neg", "pos", "neg", "pos"], batch_size=5, training=True)
    model.fit(data, epochs=1, verbose=0)
    changed = {w.name for w in backbone.model.weights if not np.array_equal(w.numpy(), before[w.name])}
    assert changed and all("lora" in name for name in changed)


def test_lora_bert_merged_equals_unmerged_and_export(tiny_bert_dir, tmp_path):
    model = tfft.build_model(
        hf_model=str(tiny_bert_dir),
        label_names=["neg", "pos"],
        lora=LoraConfig(rank=2, targets="query,key,value,attention_output,intermediate,output"),
    )
    assert len(model.tfft_spec.backbone.lora_layers) == 12
    randomize_adapters(model)
    check_merged_export(model, tmp_path)


# ELECTRA's layers are named like BERT's (covered above): long suite only.
@pytest.mark.parametrize(
    "family", ["roberta", "distilbert", pytest.param("electra", marks=pytest.mark.long), "gpt2"]
)
def test_lora_other_families(tmp_path, family):
    if family == "roberta":
        folder = write_tiny_roberta(tmp_path / family)
    elif family == "gpt2":
        folder = write_tiny_gpt2(tmp_path / family)
    else:
        folder = write_tiny_bert(tmp_path / family, model_type=family, layers=1)
    model = tfft.build_model(hf_model=str(folder), label_names=["neg", "pos"], lora={"rank": 2, "alpha": 4})
    backbone = model.tfft_spec.backbone
    layers = [path.rsplit("/", 1)[-1] for path, _ in backbone.lora_layers]
    # GPT-2: query and value are one merged projection, c_attn: one adapter per block.
    expected = {"gpt2": ["c_attn"] * 2, "distilbert": ["q_lin", "v_lin"]}.get(family, ["query", "value"])
    assert layers == expected
    assert all(w.name.startswith("classifier") or "lora" in w.name for w in model.trainable_weights)
    randomize_adapters(model)
    check_merged_export(model, tmp_path)


def test_lora_all_roles_on_gpt2(tmp_path):
    folder = write_tiny_gpt2(tmp_path / "gpt2")
    lora = LoraConfig(rank=2, targets="query,attention_output,intermediate,output")
    model = tfft.build_model(hf_model=str(folder), label_names=["neg", "pos"], lora=lora)
    layers = [path.split("/", 2)[-1] for path, _ in model.tfft_spec.backbone.lora_layers]
    assert layers == ["attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"] * 2


def test_lora_adapter_file_round_trip(tiny_bert_dir, tmp_path):
    model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], lora=dict(rank=4))
    randomize_adapters(model)
    path = write_adapter_file(model, tmp_path)
    assert path.name == ADAPTER_FILE
    info = json.loads((tmp_path / "adapters.json").read_text())
    assert info["lora"] == {"rank": 4, "alpha": 16.0, "dropout": 0.0, "targets": "query,value"}
    assert len(info["weights"]) == len(model.trainable_weights)

    fresh = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], lora=dict(rank=4))
    x = features(model)
    assert not np.allclose(fresh(x).numpy(), model(x).numpy())
    load_adapter_file(fresh, path)
    np.testing.assert_allclose(fresh(x).numpy(), model(x).numpy(), atol=1e-6)
    other = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], lora=dict(rank=2))
    with pytest.raises(ConfigError, match="do not fit"):
        load_adapter_file(other, path)


def test_lora_mixed_precision_and_mirrored_strategy(tiny_bert_dir, tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], lora=dict(rank=2))
        adapter = adapters(model)[0]
        assert adapter.compute_dtype == "bfloat16" and adapter.lora_a.dtype == tf.float32
        randomize_adapters(model)
        assert model(features(model)).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = tfft.build_model(hf_model=str(tiny_bert_dir), label_names=["neg", "pos"], lora=dict(rank=2))
    assert all(isinstance(w, tf.distribute.DistributedValues) for w in model.trainable_weights)
    randomize_adapters(model)
    check_merged_export(model, tmp_path)


def test_lora_errors(tiny_bert_dir, tiny_text_embedding_dir):
    with pytest.raises(ConfigError, match=r"`lora_rank` must be > 0. Received: lora_rank=0"):
        load_config(None, {"model.hf_model": "x", "model.lora_rank": 0})
    with pytest.raises(ConfigError, match=r"`rank` must be > 0. Received: rank=-1"):
        LoraConfig.of({"rank": -1})
    with pytest.raises(
        ConfigError, match=r"among query, key, value, attention_output.*lora_targets='query,ffn'"
    ):
        ModelConfig(hf_model="x", lora_rank=4, lora_targets="query,ffn")
    with pytest.raises(ConfigError, match="takes no key.*ranks"):
        LoraConfig.of({"ranks": 4})
    with pytest.raises(ConfigError, match="--lora-rank"):
        ModelConfig(hf_model="x", lora_rank=4, freeze_backbone=True)
    with pytest.raises(ConfigError, match="TF Hub SavedModels .*not supported"):
        ModelConfig(hub_url="x", lora_rank=4)
    with pytest.raises(ConfigError, match="hub-text backbone .*not supported"):
        tfft.build_model(hub_url=str(tiny_text_embedding_dir), label_names=["a", "b"], lora=dict(rank=2))
    backbone = tfft.load_backbone(hf_model=str(tiny_bert_dir))
    with pytest.raises(ConfigError, match="role 'query' matches no layer of this gpt2 backbone"):
        find_targets(backbone.model, "gpt2", ("query",))
    with pytest.raises(ConfigError, match="LoRA is not supported for albert backbones yet"):
        find_targets(backbone.model, "albert", ("query",))


@pytest.mark.long  # about a minute; test_adapters.py covers a LoRA run_fit and export by default
def test_lora_run_fit_resume_adapter_file_and_run_export(tiny_bert_dir, tiny_sentiment, tmp_path):
    class StopAt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) >= 11:
                raise KeyboardInterrupt  # killed in the middle of the second epoch

    class AdaptersAtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.norm = sum(float(tf.norm(a.lora_b)) for a in adapters(self.model))

    settings = {
        "data.eval": tiny_sentiment["dev"],
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.learning_rate": 1e-2,
        "train.backup_every_steps": 3,
        "runtime.precision": "float32",  # run_export rebuilds in float32: compare like with like
        "model.lora_rank": 4,
        "model.lora_targets": "query,value,intermediate",
        "export.run_dir": tmp_path / "run",
        "export.export_dir": tmp_path / "serving",
    }
    config = tiny_run_config(tiny_bert_dir, tiny_sentiment, settings)
    with pytest.raises(KeyboardInterrupt):
        tfft.run_fit(config, verbose=0, callbacks=[StopAt()])
    backup = next((tmp_path / "run" / "backup").rglob("*.index"))
    assert any("lora" in name for name, _ in tf.train.list_variables(str(backup)[: -len(".index")]))

    start = AdaptersAtStart()
    result = tfft.run_fit(config, verbose=0, callbacks=[start])
    assert start.norm > 0  # the adapters came back from the backup
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["optimizer_steps"] == 2 * summary["steps_per_epoch"]

    adapter_file = result.run_dir / ADAPTER_FILE
    checkpoint = sum(p.stat().st_size for p in (result.run_dir / "checkpoints").glob("best*"))
    print(f"adapter file {adapter_file.stat().st_size} bytes, checkpoint {checkpoint} bytes")
    assert adapter_file.stat().st_size < checkpoint / 3
    assert json.loads((result.run_dir / "adapters.json").read_text())["lora"]["rank"] == 4

    # The export is merged; `tfft export` of the run folder rebuilds with LoRA and matches it.
    again = tfft.pipeline.run_export(result.run_dir, tmp_path / "again")
    first, second = (
        tfft.ExportedClassifier(p).predict(TEXTS)["probabilities"] for p in (result.export_path, again)
    )
    np.testing.assert_allclose(first, second, atol=1e-5)


# About a minute per family; LoRA on encoders and GPT-2 stays in the default suite.
@pytest.mark.long
@pytest.mark.parametrize("family", ["bart", "t5", "marian"])
def test_lora_seq2seq_families(tmp_path, family):
    from tfft.pipeline import ExportedModel, predict_rows

    writer = {"t5": write_tiny_t5, "bart": write_tiny_bart, "marian": write_tiny_marian}[family]
    folder = writer(tmp_path / family)
    lora = LoraConfig(rank=2, targets="query,value,intermediate")
    base = tfft.build_model(hf_model=str(folder), task="translate", max_new_tokens=6)
    model = tfft.build_model(hf_model=str(folder), task="translate", max_new_tokens=6, lora=lora)
    layers = [path.rsplit("/", 2)[-2:] for path, _ in model.tfft_spec.backbone.lora_layers]
    # Encoder self-attention and decoder self- and cross-attention: 3 x (query, value) + 2 FFN.
    assert len(layers) == 8, layers
    assert model.trainable_weights and all("lora" in w.name for w in model.trainable_weights)
    batch = next(iter(tfft.make_dataset(model, ENGLISH, ENGLISH, batch_size=6, max_length=16)))[0]
    np.testing.assert_array_equal(model(batch).numpy(), base(batch).numpy())  # starts equal to the base

    randomize_adapters(model)
    task = model.tfft_spec.task_object
    expected = task.generate(model, ENGLISH[:3], batch_size=3, max_length=16)  # caches a generator
    unmerged = model(batch).numpy()
    with merged_lora(model):
        # Logits over the vocabulary, up to about 2 here: float32 round-off of the folded kernels
        # reached 1.9e-5 on T5 (Intel Xeon, oneDNN), and 1.08e-5 on a logit of 3.6e-4 (so no
        # relative allowance covers it): 3e-5 absolute beside 1e-4 relative.
        np.testing.assert_allclose(model(batch).numpy(), unmerged, atol=3e-5, rtol=1e-4)
    path = tfft.export_saved_model(model, tmp_path / "export", max_length=16)
    saved = [name for name, _ in tf.train.list_variables(str(path / "variables" / "variables"))]
    assert saved and not [name for name in saved if "lora" in name]
    exported = ExportedModel(path)
    assert [row["generated_text"] for row in predict_rows(exported, ENGLISH[:3])] == expected
    np.testing.assert_array_equal(model(batch).numpy(), unmerged)
