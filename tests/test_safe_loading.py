"""Pickle weights load only with an explicit --allow-pickle (issue: safe loading)."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tfft.backbones.hf_weights import load_hf_tf_model
from tfft.errors import BackboneError

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _pickle_checkpoint(tiny_bert_dir, folder):
    """The tiny BERT's config and tokenizer with PyTorch pickle weights only."""
    import transformers

    folder.mkdir()
    for entry in tiny_bert_dir.iterdir():
        if entry.name not in ("tf_model.h5", "model.safetensors"):
            shutil.copy(entry, folder / entry.name)
    config = transformers.BertConfig.from_pretrained(str(tiny_bert_dir))
    torch_model = transformers.BertModel(config)
    torch_model.save_pretrained(str(folder), safe_serialization=False)
    assert (folder / "pytorch_model.bin").is_file()
    return torch_model


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (the bench extra)")
def test_allow_pickle_loads_trusted_pickle_weights(tiny_bert_dir, tmp_path):
    import torch

    folder = tmp_path / "pickled"
    torch_model = _pickle_checkpoint(tiny_bert_dir, folder)
    with pytest.raises(BackboneError, match="--allow-pickle"):
        load_hf_tf_model(folder)
    model, tokenizer = load_hf_tf_model(folder, allow_pickle=True)
    ids = tokenizer(["the movie was good"])["input_ids"]
    ours = model(np.asarray(ids)).last_hidden_state.numpy()
    torch_model.eval()
    with torch.no_grad():
        theirs = torch_model(torch.tensor(ids)).last_hidden_state.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_allow_pickle_without_torch_says_what_is_missing(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a)
    )
    monkeypatch.setattr("tfft.backbones.hf_weights.load_tokenizer", lambda folder, found: None)
    with pytest.raises(BackboneError, match="needs PyTorch"):
        load_hf_tf_model(tmp_path, allow_pickle=True)


def test_cli_refuses_pickle_and_hub_with_allow_pickle(tmp_path, tiny_sentiment):
    from tfft_cli.main import cli

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"not really a pickle")
    base = [
        "fit",
        "--train",
        tiny_sentiment["train"],
        "--text-column",
        "sentence",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    result = CliRunner().invoke(cli, [*base, "--hf-model", str(tmp_path / "m")])
    assert result.exit_code == 1 and "--allow-pickle" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, [*base, "--hub-url", str(tmp_path), "--allow-pickle"])
    assert result.exit_code == 1 and "--allow-pickle is for --hf-model" in result.output


@pytest.mark.parametrize("weights", ["tf_model.h5", "model.safetensors"])
def test_config_that_does_not_match_the_weights_is_an_error(tiny_bert_dir, tmp_path, weights):
    import json

    folder = tmp_path / "mismatch"
    folder.mkdir()
    for entry in tiny_bert_dir.iterdir():
        if entry.name not in ("tf_model.h5", "model.safetensors"):
            shutil.copy(entry, folder / entry.name)
    if weights == "tf_model.h5":
        shutil.copy(tiny_bert_dir / "tf_model.h5", folder / "tf_model.h5")
    else:  # PyTorch-format safetensors, as on the Hub: written from the TF weights without torch
        from safetensors.numpy import save_file

        model, _ = load_hf_tf_model(tiny_bert_dir)
        tensors = {}
        for variable in model.weights:
            name = variable.name.split("/", 1)[1].split(":")[0]  # drop "tf_bert_model/"
            name = (
                name.replace("/", ".").replace("kernel", "weight").replace("embeddings.weight", "embeddings")
            )
            value = variable.numpy()
            if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name:
                value = value.T
            tensors[name] = np.ascontiguousarray(value)
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] += 7
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackboneError) as caught:
        load_hf_tf_model(folder)
    message = str(caught.value)
    assert str(folder) in message and ("mismatch" in message or "shape" in message), message
