"""Shared fixtures: tiny random Hugging Face models built on the spot; no network."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = [
    "the",
    "movie",
    "film",
    "good",
    "great",
    "bad",
    "awful",
    "fun",
    "boring",
    "is",
    "was",
    "not",
    "very",
    "and",
    "plot",
    "actors",
    "love",
    "hate",
    "it",
    "this",
    "cafe",
    "day",
    "night",
]


def tiny_vocab() -> list[str]:
    """Special tokens, punctuation, letters and ##letters (so any ASCII word tokenizes), a few words."""
    letters = list(string.ascii_lowercase) + list(string.digits)
    punctuation = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    return (
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + punctuation
        + letters
        + [f"##{c}" for c in letters]
        + WORDS
    )


def write_tiny_bert(folder: Path, *, model_type: str = "bert", hidden: int = 16, layers: int = 2) -> Path:
    """A tiny random BERT-family TF checkpoint with a WordPiece tokenizer, saved like a real one."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    common = dict(vocab_size=len(vocab), max_position_embeddings=128)
    if model_type == "bert":
        tokenizer = transformers.BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
        config = transformers.BertConfig(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            **common,
        )
        model = transformers.TFBertModel(config)
    elif model_type == "distilbert":
        tokenizer = transformers.DistilBertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
        config = transformers.DistilBertConfig(
            dim=hidden, n_layers=layers, n_heads=2, hidden_dim=32, **common
        )
        model = transformers.TFDistilBertModel(config)
    elif model_type == "electra":
        tokenizer = transformers.ElectraTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)
        config = transformers.ElectraConfig(
            embedding_size=hidden,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            **common,
        )
        model = transformers.TFElectraModel(config)
    elif model_type == "albert":
        tokenizer = transformers.AlbertTokenizerFast(vocab_file=str(write_tiny_spiece(folder)))
        config = transformers.AlbertConfig(
            vocab_size=tokenizer.vocab_size,
            embedding_size=hidden,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=128,
        )
        model = transformers.TFAlbertModel(config)
    else:
        raise ValueError(model_type)
    tokenizer.save_pretrained(str(folder))
    model(model.dummy_inputs)
    model.save_pretrained(str(folder))
    return folder


def write_tiny_roberta(folder: Path) -> Path:
    """A tiny random RoBERTa with a byte-level BPE vocabulary of single characters (no merges)."""
    import json

    import transformers

    from tfft.keras import keras  # noqa: F401  (tf_keras before transformers' TF classes)

    vocab = {
        "<s>": 0,
        "<pad>": 1,
        "</s>": 2,
        "<unk>": 3,
        "<mask>": 4,
        **{c: i + 5 for i, c in enumerate("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!Ġ")},
    }
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    transformers.RobertaTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(
        str(folder)
    )
    config = transformers.RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
    )
    model = transformers.TFRobertaModel(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(folder))
    return folder


def write_tiny_spiece(folder: Path) -> Path:
    """A tiny ALBERT-style SentencePiece model trained on the spot (needs `sentencepiece`)."""
    spm = pytest.importorskip("sentencepiece", reason="sentencepiece is needed to build a tiny ALBERT")
    corpus = [
        "the movie was good",
        "the film was awful",
        "great fun, love it",
        "boring plot",
        "hello world",
        "Café déjà vu naïve façade",
        "it's a quoted thing",
        "UPPER lower MiXeD",
        "numbers 3.14 and $5",
    ] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_prefix=str(folder / "spiece"),
        vocab_size=60,
        model_type="unigram",
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        character_coverage=1.0,
        minloglevel=2,
    )
    return folder / "spiece.model"


def tiny_run_config(model_dir: Path, data: dict, settings: dict | None = None):
    """A run configuration on the tiny model and sentiment data; ``settings`` override it."""
    from tfft.config import load_config

    base = {
        "model.hf_model": str(model_dir),
        "data.train": str(data["train"]),
        "data.text_column": "sentence",
    }
    return load_config(
        None, {**base, **{key: str(v) if isinstance(v, Path) else v for key, v in (settings or {}).items()}}
    )


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_sentiment(tmp_path_factory) -> dict:
    """A small learnable sentiment task as TSV files."""
    import random

    rng = random.Random(0)
    good = ["good", "great", "fun", "love"]
    bad = ["bad", "awful", "boring", "hate"]
    rows = []
    for _ in range(96):
        positive = rng.random() < 0.5
        word = rng.choice(good if positive else bad)
        rows.append((f"the {rng.choice(['movie', 'film', 'plot'])} was {word}", "pos" if positive else "neg"))
    folder = tmp_path_factory.mktemp("sentiment")
    for name, part in (("train.tsv", rows[:64]), ("dev.tsv", rows[64:])):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in part]
        (folder / name).write_text("\n".join(lines) + "\n")
    return {"train": folder / "train.tsv", "dev": folder / "dev.tsv", "rows": rows}


class _TinyTextEmbedding:
    """Builds a TF Hub-style text-embedding SavedModel (strings in, vectors out), like nnlm."""

    @staticmethod
    def write(folder: Path, dim: int = 8) -> Path:
        import tensorflow as tf

        words = sorted(set(WORDS))

        class TextEmbedding(tf.Module):
            def __init__(self):
                super().__init__()
                init = tf.lookup.KeyValueTensorInitializer(
                    tf.constant(words), tf.range(len(words), dtype=tf.int64)
                )
                self.table = tf.lookup.StaticVocabularyTable(init, num_oov_buckets=1)
                self.embeddings = tf.Variable(tf.random.stateless_normal([len(words) + 1, dim], seed=[1, 2]))

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
            def __call__(self, sentences):
                tokens = tf.strings.split(tf.strings.lower(sentences))
                vectors = tf.ragged.map_flat_values(
                    tf.nn.embedding_lookup, self.embeddings, self.table.lookup(tokens)
                )
                return tf.reduce_mean(vectors, axis=1)

        module = TextEmbedding()
        module.trainable_variables_list = [module.embeddings]
        tf.saved_model.save(module, str(folder))
        return folder


@pytest.fixture(scope="session")
def tiny_text_embedding_dir(tmp_path_factory) -> Path:
    return _TinyTextEmbedding.write(tmp_path_factory.mktemp("hub_text") / "embedding")


@pytest.fixture(scope="session")
def tiny_hub_bert(tmp_path_factory, tiny_bert_dir):
    """The tiny BERT converted to TF Hub encoder + preprocessor SavedModels."""
    from tfft.backbones.hub_convert import convert_hf_to_hub

    return convert_hf_to_hub(tiny_bert_dir, tmp_path_factory.mktemp("hub") / "tiny", seq_length=32)
