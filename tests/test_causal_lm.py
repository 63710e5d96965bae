"""Decoder-only language modelling (``--task causal-lm``) on a tiny random GPT-2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import LM_CORPUS, write_tiny_gpt2_lm

import tfft
from tfft.config import load_config
from tfft.errors import ConfigError, DataError
from tfft.keras import keras
from tfft.pipeline import ExportedModel, predict_rows, run_evaluate
from tfft.tasks import get_task
from tfft.tasks.causal_lm.batches import pack_documents, prompt_response_rows
from tfft.tasks.causal_lm.data import LMExamples
from tfft.tasks.causal_lm.metrics import TokenScores, cut_at_stop, stop_strings

PROMPTS = ["the cat", "a bird sang", "the sun is"]
STOPS = "on|and"


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return write_tiny_gpt2_lm(tmp_path_factory.mktemp("gpt2") / "lm")


@pytest.fixture(scope="module")
def trained(gpt2_dir):
    """The tiny GPT-2 fitted on the repetitive corpus (plain text, blocks of 16)."""
    keras.utils.set_random_seed(0)
    model = tfft.build_model(hf_model=str(gpt2_dir), task="causal-lm", block_size=16, max_new_tokens=6)
    task = model.tfft_spec.task_object
    corpus = LMExamples(LM_CORPUS, None, "corpus", [1, 2, 3, 4])
    data = tfft.make_dataset(model, LM_CORPUS * 8, batch_size=8, max_length=32, training=True, seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(5e-3),
        loss=tfft.loss_for(model),
        weighted_metrics=tfft.metrics_for(model),
        jit_compile=False,
    )
    before = task.score(model, corpus, 8, 32)
    history = model.fit(data, epochs=20, verbose=0)
    model.scores = (before, task.score(model, corpus, 8, 32), history.history)
    return model


def tokenizer_of(model):
    return model.tfft_spec.backbone.tokenizer


# --- data -----------------------------------------------------------------------------------


def test_packing_joins_documents_with_eos_and_loses_nothing(trained):
    tokenizer = tokenizer_of(trained)
    eos = tokenizer.eos_token_id
    inputs, labels = pack_documents(tokenizer, LM_CORPUS, eos, 8)
    stream = []
    for text in LM_CORPUS:
        stream += tokenizer(text)["input_ids"] + [eos]
    assert all(len(row) == 8 for row in inputs[:-1]) and 0 < len(inputs[-1]) <= 8
    np.testing.assert_array_equal(np.concatenate(inputs), stream[:-1])  # every input once, in order
    np.testing.assert_array_equal(np.concatenate(labels), stream[1:])  # every token but the first is a label
    for row_inputs, row_labels in zip(inputs, labels):
        np.testing.assert_array_equal(row_inputs[1:], row_labels[:-1])  # shifted by one
    assert [int(t) for t in stream].count(eos) == len(LM_CORPUS)
    # Batches: blocks of 8, the last partial block padded with weight 0.
    examples = LMExamples(LM_CORPUS, None, "corpus", [1, 2, 3, 4])
    task = trained.tfft_spec.task_object
    spec = trained.tfft_spec
    trained.tfft_spec = type(spec)(
        spec.task, (), False, "none", spec.backbone, dict(spec.settings, block_size=8)
    )
    try:
        batches = list(task.dataset(trained, examples, batch_size=4, max_length=32, training=True, seed=0))
    finally:
        trained.tfft_spec = spec
    assert all(f["input_ids"].shape == (4, 8) for f, _, _ in batches)
    assert sum(float(w.numpy().sum()) for _, _, w in batches) == len(stream) - 1
    for features, _, weights in batches:
        np.testing.assert_array_equal(
            features["attention_mask"].numpy(), (weights.numpy() > 0).astype(np.int32)
        )


def test_prompt_tokens_weigh_zero(trained):
    tokenizer = tokenizer_of(trained)
    eos = tokenizer.eos_token_id
    inputs, labels, weights = prompt_response_rows(
        tokenizer,
        ["the cat", "a bird"],
        [" sat on the mat", " sang"],
        eos_id=eos,
        template="Q: {prompt}\\nA:",
        max_length=32,
    )
    for row, prompt, response in zip(range(2), ["the cat", "a bird"], [" sat on the mat", " sang"]):
        prompt_ids = tokenizer(f"Q: {prompt}\nA:")["input_ids"]
        response_ids = tokenizer(response)["input_ids"] + [eos]
        np.testing.assert_array_equal(inputs[row], (prompt_ids + response_ids)[:-1])
        assert weights[row][: len(prompt_ids) - 1].sum() == 0  # labels inside the prompt
        np.testing.assert_array_equal(labels[row][weights[row] > 0], response_ids)  # response + end token
    # Too long: the prompt loses its start (down to half of max_length), then the response its end.
    long_prompt, long_response = "the cat sat on the mat " * 4, " the dog sat on the log" * 4
    (row,), (label,), (weight,) = prompt_response_rows(
        tokenizer, [long_prompt], [long_response], eos_id=eos, template=None, max_length=16
    )
    assert len(row) == 16 and weight[:7].sum() == 0 and weight[7:].all()
    with pytest.raises(DataError, match=r"data\.tsv:3: the response is empty"):
        prompt_response_rows(
            tokenizer, ["x"], [""], eos_id=eos, template=None, max_length=16, source="data.tsv", rows=[3]
        )


def test_prompt_response_loss_ignores_prompts(trained):
    """Changing a prompt's *labels* (its own tokens) changes nothing: only response tokens are scored."""
    task = trained.tfft_spec.task_object
    data = tfft.make_dataset(
        trained, ["the cat", "a bird"], [" sat on the mat", " sang"], batch_size=2, max_length=32
    )
    ((features, labels, weights),) = list(data)
    weights = weights.numpy()
    assert 0 < weights.sum() < (features["attention_mask"].numpy()).sum()
    loss = tfft.loss_for(trained)
    logits = trained(features)
    scrambled = np.where(weights > 0, labels.numpy(), 0)  # prompt labels replaced: same loss
    assert float(loss(labels, logits, weights)) == pytest.approx(float(loss(scrambled, logits, weights)))
    scores = task.score(trained, LMExamples(["the cat"], [" sat on the mat"], "t", [1], prompts=True), 4, 32)
    assert scores["tokens"] == len(tokenizer_of(trained)(" sat on the mat")["input_ids"]) + 1


def test_reads_text_files_and_tables(tmp_path):
    task = get_task("causal-lm")
    (tmp_path / "docs.txt").write_text("first doc\n\nsecond doc\nstill second\n")
    config = load_config(None, {"model.task": "causal-lm"})
    lines = task.read(str(tmp_path / "docs.txt"), config)
    assert lines.texts == ["first doc", "second doc", "still second"] and lines.rows == [1, 3, 4]
    blank = load_config(None, {"model.task": "causal-lm", "task.blank_line_documents": True})
    docs = task.read(str(tmp_path / "docs.txt"), blank)
    assert docs.texts == ["first doc", "second doc\nstill second"] and docs.rows == [1, 3]
    (tmp_path / "pairs.jsonl").write_text('{"q": "the cat", "a": " sat"}\n{"q": "a bird", "a": " sang"}\n')
    pairs = load_config(
        None, {"model.task": "causal-lm", "task.prompt_column": "q", "task.response_column": "a"}
    )
    read = task.read(str(tmp_path / "pairs.jsonl"), pairs)
    assert (
        read.texts == ["the cat", "a bird"] and read.responses == ["sat", "sang"] and read.prompts
    )  # cells are stripped
    prompts = task.read(str(tmp_path / "pairs.jsonl"), pairs, labelled=False, option="--input")
    assert prompts.responses is None and prompts.prompts
    with pytest.raises(DataError, match="plain-text file holds documents"):
        task.read(str(tmp_path / "docs.txt"), pairs)
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataError, match=r"bad\.txt:2: not valid UTF-8"):
        task.read(str(tmp_path / "bad.txt"), config)
    with pytest.raises(ConfigError, match="--response-column needs --prompt-column"):
        load_config(None, {"model.task": "causal-lm", "task.response_column": "a"})
    with pytest.raises(ConfigError, match="not both"):
        get_task("causal-lm").settings_from_args(None, None, {"do_sample": True, "num_beams": 2})
    with pytest.raises(ConfigError, match="top_p"):
        get_task("causal-lm").settings_from_args(None, None, {"top_p": 0.0})


# --- training and metrics -------------------------------------------------------------------


def test_tiny_model_learns_the_corpus(trained):
    before, after, history = trained.scores
    assert after["loss"] < before["loss"] * 0.6
    assert after["perplexity"] < before["perplexity"] / 10
    assert after["token_accuracy"] > before["token_accuracy"] + 0.3
    assert history["perplexity"][-1] < history["perplexity"][0] / 10
    assert after["perplexity"] == pytest.approx(math.exp(after["loss"]))


def test_metrics_are_weighted_token_means():
    scores = TokenScores()
    scores.add(np.array([[1.0, 2.0, 9.0]]), np.array([[1, 0, 1]]), np.array([[1.0, 1.0, 0.0]]))
    scores.add(np.array([[3.0]]), np.array([[1]]), np.array([[1.0]]))
    result = scores.result()
    assert result["tokens"] == 3 and result["loss"] == pytest.approx(2.0)
    assert result["perplexity"] == pytest.approx(math.exp(2.0)) and result["token_accuracy"] == pytest.approx(
        2 / 3
    )
    assert math.isnan(TokenScores().result()["perplexity"])


# --- generation -----------------------------------------------------------------------------


def test_greedy_generation_ignores_padding_and_batching(trained):
    task = trained.tfft_spec.task_object
    batched = task.generate(trained, PROMPTS, batch_size=4, max_length=32, xla=False)
    tokenizer = tokenizer_of(trained)
    for prompt, text in zip(PROMPTS, batched):
        ids = tf.constant([tokenizer(prompt)["input_ids"]])
        alone = trained.hf.generate(input_ids=ids, max_new_tokens=6, do_sample=False)
        assert tokenizer.decode(alone[0, ids.shape[1] :], skip_special_tokens=True) == text
    assert batched[0].startswith(" sat on the")  # it learnt the corpus


def test_sampling_and_beam_search(trained):
    task = trained.tfft_spec.task_object
    greedy = task.generate(trained, PROMPTS, batch_size=4, max_length=32)
    # top_k=1 sampling is greedy; the same seed gives the same samples.
    assert task.generate(trained, PROMPTS, batch_size=4, max_length=32, do_sample=True, top_k=1) == greedy
    hot = dict(do_sample=True, temperature=2.0, sample_seed=7)
    first = task.generate(trained, PROMPTS * 3, batch_size=4, max_length=32, **hot)
    assert first == task.generate(trained, PROMPTS * 3, batch_size=4, max_length=32, **hot)
    assert first != greedy * 3
    beams = task.generate(trained, PROMPTS, batch_size=4, max_length=32, num_beams=3, xla=False)
    tokenizer = tokenizer_of(trained)
    ids = tf.constant([tokenizer(PROMPTS[0])["input_ids"]])
    alone = trained.hf.generate(input_ids=ids, max_new_tokens=6, num_beams=3, do_sample=False)
    assert beams[0] == tokenizer.decode(alone[0, ids.shape[1] :], skip_special_tokens=True)


def test_stop_strings_cut_the_text(trained):
    assert stop_strings("\\n|###||") == ["\n", "###"]
    assert cut_at_stop("a b\nc ### d", ["###", "\n"]) == "a b"
    assert cut_at_stop("no stop here", ["###"]) == "no stop here"
    task = trained.tfft_spec.task_object
    (full,) = task.generate(trained, ["the cat"], batch_size=1, max_length=32)
    word = full.split()[1]
    (cut,) = task.generate(trained, ["the cat"], batch_size=1, max_length=32, stop=f" {word}|zzz")
    assert cut == full[: full.index(f" {word}")]


def test_xla_falls_back_to_graph_mode(trained, monkeypatch, caplog):
    from tfft.backbones import causal_lm

    task = trained.tfft_spec.task_object
    expected = task.generate(trained, PROMPTS[:2], batch_size=2, max_length=32, xla=False)
    original = causal_lm.CausalLMModel.generator

    def no_xla(self, settings, xla):
        if not xla:
            return original(self, settings, xla=False)

        def fails(*args):
            raise tf.errors.InvalidArgumentError(None, None, "XLA compilation failed (test)")

        return fails

    monkeypatch.setattr(causal_lm.CausalLMModel, "generator", no_xla)
    with caplog.at_level("WARNING"):
        assert task.generate(trained, PROMPTS[:2], batch_size=2, max_length=32) == expected
    assert "without XLA" in caplog.text


# --- export and command line ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_export(trained, tmp_path_factory):
    """The trained model's export (byte-level BPE in the graph), max length 32."""
    return tfft.export_saved_model(trained, tmp_path_factory.mktemp("lm") / "lm", max_length=32)


def test_export_generates_and_scores_like_python(trained, lm_export):
    task = trained.tfft_spec.task_object
    python_greedy = task.generate(trained, PROMPTS, batch_size=4, max_length=32)
    path = lm_export
    metadata = json.loads((path / "assets.extra" / "tfft.json").read_text())
    assert metadata["task"] == "causal-lm" and metadata["in_graph_tokenizer"]  # byte-level BPE in the graph
    # the Python tokenizer is still shipped, for id clients and older tfft versions
    assert (path / "assets.extra" / "tokenizer" / "tokenizer.json").is_file()
    exported = ExportedModel(path)
    assert set(exported.loaded.signatures) == {
        "serving_default",
        "generate",
        "generate_ids",
        "score_ids",
        "tokenize",
        "decode",
    }
    tokenized = exported.loaded.signatures["tokenize"](text=tf.constant(LM_CORPUS))
    python_ids = tokenizer_of(trained)(LM_CORPUS)["input_ids"]
    assert tokenized["token_count"].numpy().tolist() == [len(row) for row in python_ids]
    assert [
        row[: len(ids)].tolist() for row, ids in zip(tokenized["token_ids"].numpy(), python_ids)
    ] == python_ids
    served = exported.loaded.signatures["serving_default"](text=tf.constant(PROMPTS))["generated_text"]
    assert [text.decode("utf-8") for text in served.numpy()] == python_greedy  # raw text in, text out
    rows = list(predict_rows(exported, PROMPTS, batch_size=2))  # batches of 2: the graph pads them
    assert [row["generated_text"] for row in rows] == python_greedy
    assert rows[0]["text"] == PROMPTS[0]
    corpus = LMExamples(LM_CORPUS, None, "corpus", [1, 2, 3, 4])
    exported_scores = task.evaluate_export(exported, corpus, batch_size=8)
    python_scores = task.score(trained, corpus, 8, 32)
    assert exported_scores["tokens"] == python_scores["tokens"]
    assert exported_scores["perplexity"] == pytest.approx(python_scores["perplexity"], rel=1e-4)


def test_cli_predict_and_evaluate_load_no_python_tokenizer(trained, lm_export, tmp_path, monkeypatch):
    """With the tokenizer in the graph, ``tfft predict`` generates through ``generate`` (raw
    text) and ``tfft evaluate`` tokenizes through ``tokenize``: no Python tokenizer is loaded,
    and the answers equal the in-memory model's."""
    from transformers import AutoTokenizer

    from tfft_cli.main import cli

    task = trained.tfft_spec.task_object
    python_greedy = task.generate(trained, PROMPTS, batch_size=4, max_length=32)
    corpus = LMExamples(LM_CORPUS, None, "corpus", [1, 2, 3, 4])
    python_scores = task.score(trained, corpus, 8, 32)
    (tmp_path / "val.txt").write_text("\n".join(LM_CORPUS) + "\n")

    def refuse(*args, **kwargs):
        raise AssertionError("the Python tokenizer was loaded")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    runner = CliRunner()
    args = ["predict", str(lm_export), *[item for prompt in PROMPTS for item in ("--text", prompt)]]
    result = runner.invoke(cli, [*args, "--batch-size", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [row["text"] for row in rows] == PROMPTS
    assert [row["generated_text"] for row in rows] == python_greedy
    # fewer tokens and other stop strings than the export's: still the raw-text path (decode)
    shorter = task.generate(trained, PROMPTS, batch_size=4, max_length=32, max_new_tokens=3)
    expected = task.generate(trained, PROMPTS, batch_size=4, max_length=32, max_new_tokens=3, stop=STOPS)
    assert expected != shorter  # the stop strings cut something
    result = runner.invoke(cli, [*args, "--max-new-tokens", "3", "--stop", STOPS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["generated_text"] for line in result.stdout.strip().splitlines()] == expected
    result = runner.invoke(cli, [*args, "--max-new-tokens", "7"])
    assert result.exit_code != 0 and "generates at most 6 tokens" in result.output
    args = ["evaluate", str(lm_export), "--data", str(tmp_path / "val.txt"), "--json", "--batch-size", "3"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{") :])
    assert metrics["tokens"] == python_scores["tokens"]
    assert metrics["perplexity"] == pytest.approx(python_scores["perplexity"], rel=1e-4)
    assert metrics["token_accuracy"] == pytest.approx(python_scores["token_accuracy"])
    with pytest.raises(DataError, match="--text:2: the prompt is empty"):
        list(predict_rows(lm_export, ["the cat", ""]))


def test_ids_only_export_still_predicts_and_evaluates(trained, tmp_path, monkeypatch):
    """An export without the in-graph tokenizer (older tfft, or a tokenizer no graph twin
    exists for) keeps working through the Python tokenizer and the id signatures."""
    from tfft.tasks.causal_lm import serving

    task = trained.tfft_spec.task_object
    python_greedy = task.generate(trained, PROMPTS, batch_size=4, max_length=32)
    with monkeypatch.context() as patch:
        patch.setattr(serving.ByteLevelBPETokenizer, "from_hf_tokenizer", classmethod(lambda cls, t: None))
        path = tfft.export_saved_model(trained, tmp_path / "ids", max_length=32)
    exported = ExportedModel(path)
    assert not exported.metadata["in_graph_tokenizer"]
    assert set(exported.loaded.signatures) == {"serving_default", "generate_ids", "score_ids"}
    assert [row["generated_text"] for row in predict_rows(exported, PROMPTS, batch_size=2)] == python_greedy
    expected = task.generate(trained, PROMPTS, batch_size=4, max_length=32, max_new_tokens=3, stop=STOPS)
    shorter = exported.with_settings(max_new_tokens=3, stop=STOPS)
    assert [row["generated_text"] for row in predict_rows(shorter, PROMPTS)] == expected
    corpus = LMExamples(LM_CORPUS, None, "corpus", [1, 2, 3, 4])
    scores = task.evaluate_export(exported, corpus, batch_size=8)
    assert scores["perplexity"] == pytest.approx(task.score(trained, corpus, 8, 32)["perplexity"], rel=1e-4)


@pytest.mark.long  # about 60 s; predict and evaluate through the CLI stay in the default suite
def test_cli_fit_predict_evaluate(gpt2_dir, tmp_path):
    from tfft_cli.main import cli

    (tmp_path / "train.txt").write_text("\n".join(LM_CORPUS * 4) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(LM_CORPUS) + "\n")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "fit",
            "--hf-model",
            str(gpt2_dir),
            "--task",
            "causal-lm",
            "--train",
            str(tmp_path / "train.txt"),
            "--eval",
            str(tmp_path / "val.txt"),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "16",
            "--max-new-tokens",
            "4",
            "--stop",
            "\\n",
            "--learning-rate",
            "3e-3",
            "--run-dir",
            str(tmp_path / "run"),
            "--export-dir",
            str(tmp_path / "export"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "run" / "task.json").read_text())["settings"]
    assert settings["max_new_tokens"] == 4 and settings["stop"] == "\\n"
    result = runner.invoke(cli, ["predict", str(tmp_path / "export"), "--text", "the cat"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[-1])
    assert row["text"] == "the cat" and isinstance(row["generated_text"], str)
    metrics = run_evaluate(tmp_path / "export", str(tmp_path / "val.txt"))
    assert metrics["task"] == "causal-lm" and metrics["tokens"] > 0 and metrics["perplexity"] > 1


@pytest.mark.long  # LoRA on encoders stays in the default suite
def test_lora_on_a_causal_lm(gpt2_dir, tmp_path):
    model = tfft.build_model(hf_model=str(gpt2_dir), task="causal-lm", lora=dict(rank=2), max_new_tokens=3)
    backbone = model.tfft_spec.backbone
    assert [path.rsplit("/", 1)[-1] for path, _ in backbone.lora_layers] == ["c_attn", "c_attn"]
    trainable = {w.name for w in model.trainable_weights}
    assert trainable and all("lora" in name for name in trainable)
    data = tfft.make_dataset(model, LM_CORPUS, batch_size=4, max_length=16, training=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=tfft.loss_for(model), jit_compile=False)
    model.fit(data, epochs=1, verbose=0)
    task = model.tfft_spec.task_object
    expected = task.generate(model, PROMPTS[:2], batch_size=2, max_length=16)
    path = tfft.export_saved_model(model, tmp_path / "lora", max_length=16)
    assert [row["generated_text"] for row in predict_rows(path, PROMPTS[:2])] == expected


def test_trains_and_generates_in_mixed_bfloat16(gpt2_dir):
    # The LM head computes in bfloat16; sampling's logits processors need float32 scores.
    from tfft.config import RuntimeConfig

    with tfft.runtime(RuntimeConfig(precision="mixed_bfloat16")):
        model = tfft.build_model(hf_model=str(gpt2_dir), task="causal-lm", max_new_tokens=3)
        assert model.hf.transformer.h[0].mlp.c_fc.compute_dtype == "bfloat16"
        data = tfft.make_dataset(model, LM_CORPUS, batch_size=4, max_length=16, training=True)
        features, _, _ = next(iter(data))
        assert model(features).dtype == tf.float32
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=tfft.loss_for(model), jit_compile=False)
        assert np.isfinite(model.fit(data, epochs=1, verbose=0).history["loss"]).all()
        task = model.tfft_spec.task_object
        for options in ({}, {"do_sample": True, "top_k": 5, "top_p": 0.9}, {"num_beams": 2}):
            generated = task.generate(model, PROMPTS[:2], batch_size=2, max_length=16, xla=False, **options)
            assert len(generated) == 2 and all(isinstance(text, str) for text in generated)
