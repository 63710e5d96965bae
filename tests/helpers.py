"""Test helpers: tiny random models written on the spot (no network), paths, run configs.

Tests import what they need from here (``from helpers import write_tiny_bert``);
``conftest.py`` turns the common ones into session fixtures.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: eight short labelled sentences: DP and other small classification tests
REVIEWS = [
    "the movie was good",
    "awful plot",
    "i love this film very much",
    "boring",
    "great actors and fun",
    "bad movie",
    "it was not good",
    "hate it",
]
REVIEW_LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "neg", "neg"]

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


def write_tiny_bert(
    folder: Path, *, model_type: str = "bert", hidden: int = 16, layers: int = 2, seed: int = 0
) -> Path:
    """A tiny random BERT-family TF checkpoint with a WordPiece tokenizer, saved like a real one.

    Its random weights are seeded (``seed``): the tests that train it see the same start in
    every run, and two checkpoints written with the same arguments are the same.
    """
    import transformers

    from tfft.keras import keras

    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow: unseeded initializers draw from all

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


def cli_dry_run(model_dir: Path, data: dict, run_dir: Path, *extra):
    """``tfft fit --dry-run`` through the CLI on the tiny model and the sentiment training file
    (text column ``sentence``, max length 32, no XLA); ``extra`` adds options. Returns the
    click result of a run that exited 0."""
    from click.testing import CliRunner

    from tfft_cli.main import cli

    args = ["fit", "--hf-model", model_dir, "--train", data["train"], "--text-column", "sentence"]
    args += ["--max-length", "32", "--no-xla", "--run-dir", run_dir, "--dry-run", *extra]
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def write_tiny_text_embedding(folder: Path, dim: int = 8) -> Path:
    """A TF Hub-style text-embedding SavedModel (strings in, vectors out), like nnlm."""
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


# --- tiny encoder-decoders (summarize / translate) -------------------------------------------

#: a toy English -> German parallel corpus; the tiny T5 and BART vocabularies are trained on it
ENGLISH = ["the movie was good", "the film was bad", "fun night", "the plot is great", "bad day", "good fun"]
GERMAN = [
    "der Film war gut",
    "der Film war schlecht",
    "Spaß Nacht",
    "die Handlung ist toll",
    "schlecht Tag",
    "gut Spaß",
]
GERMAN_WORDS = [
    "der",
    "die",
    "Film",
    "war",
    "gut",
    "schlecht",
    "Spaß",
    "Nacht",
    "Handlung",
    "ist",
    "toll",
    "Tag",
]

#: the sizes of the tiny BART-family models (BART, Marian)
TINY_BART_DIMS = dict(
    d_model=16,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_ffn_dim=32,
    max_position_embeddings=64,
)


def save_random_model(model_class, config, folder: Path) -> Path:
    """Build a randomly initialized Hugging Face TF model of ``config`` and save it in ``folder``."""
    model = model_class(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(folder))
    return folder


def write_german_bert(folder: Path) -> Path:
    """A tiny cased BERT with its own (German) WordPiece vocabulary: the decoder checkpoint."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    letters = list(string.ascii_letters) + ["ß", "ä", "ö", "ü"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"]
    vocab += letters + [f"##{c}" for c in letters] + GERMAN_WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(
        str(folder / "vocab.txt"), do_lower_case=False, strip_accents=False
    )
    tokenizer.save_pretrained(str(folder))
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return save_random_model(transformers.TFBertModel, config, folder)


def write_tiny_t5(folder: Path) -> Path:
    """A tiny random T5 with a SentencePiece vocabulary trained on the spot (T5 id layout)."""
    spm = pytest.importorskip("sentencepiece")
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    corpus = (
        [f"summarize: {e}" for e in ENGLISH] + GERMAN + ["a short summary", "the end", string.ascii_letters]
    )
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 20),
        model_prefix=str(folder / "spiece"),
        vocab_size=60,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    tokenizer = transformers.T5TokenizerFast(vocab_file=str(folder / "spiece.model"), extra_ids=0)
    tokenizer.save_pretrained(str(folder))
    config = transformers.T5Config(
        vocab_size=tokenizer.vocab_size,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
    )
    return save_random_model(transformers.TFT5ForConditionalGeneration, config, folder)


def write_tiny_bart(folder: Path) -> Path:
    """A tiny random BART with a byte-level BPE vocabulary (no in-graph tokenizer)."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        ENGLISH * 10,
        vocab_size=300,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(folder))
    tokenizer = transformers.BartTokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(str(folder))
    config = transformers.BartConfig(vocab_size=len(tokenizer), **TINY_BART_DIMS)
    return save_random_model(transformers.TFBartForConditionalGeneration, config, folder)


def write_tiny_marian(folder: Path) -> Path:
    """A tiny random Marian (scaled embeddings, forced end token) on the tiny T5's vocabulary."""
    import transformers

    write_tiny_t5(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    config = transformers.MarianConfig(
        vocab_size=tokenizer.vocab_size,
        **TINY_BART_DIMS,
        scale_embedding=True,
        pad_token_id=0,
        eos_token_id=1,
        forced_eos_token_id=1,
        decoder_start_token_id=0,
    )
    return save_random_model(transformers.TFMarianMTModel, config, folder)


# --- tiny decoder-only language model (causal-lm) ----------------------------------------------

#: a tiny repetitive corpus the tiny GPT-2's byte-level BPE is trained on (and learns)
LM_CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a bird sang in the tree",
    "the sun is hot and the moon is cold",
]


def write_tiny_gpt2_lm(folder: Path, *, n_positions: int = 64) -> Path:
    """A tiny random GPT-2 language model (``TFGPT2LMHeadModel``) with a byte-level BPE
    tokenizer trained on :data:`LM_CORPUS` (end of text: ``<|endoftext|>``, no pad token)."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer

    from tfft.keras import keras  # noqa: F401  (tf_keras before transformers' TF classes)

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(LM_CORPUS * 10, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    tokenizer = transformers.GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(str(folder))
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=n_positions,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return save_random_model(transformers.TFGPT2LMHeadModel, config, folder)


# --- byte-level BPE tokenizers trained on the spot (in-graph BPE tests) -------------------------

#: a small multilingual text the byte-level BPE tokenizers are trained on (merges across bytes)
BPE_CORPUS = [
    "The cat sat on the mat, and it's 2024! We'll see; they're here, I'm sure you've won.",
    "Héllo wörld: café, naïve, Ελληνικά, русский текст, עברית",
    "你好世界，今天天气很好。東京は晴れです。한국어 문장",
    "emoji 🙂🙂 🎉🚀 👍🏽 family 👨‍👩‍👧 flags 🇩🇪",
    "numbers 12345 3.14159 1,000,000 42nd\ttabs\t\tand\nnew lines\n\n  double  spaces   end   ",
]

BPE_FAMILIES = {"gpt2": "GPT2TokenizerFast", "roberta": "RobertaTokenizerFast", "bart": "BartTokenizerFast"}


def write_bpe_tokenizer(folder: Path, family: str = "gpt2", *, add_prefix_space: bool = False) -> Path:
    """A byte-level BPE tokenizer trained on :data:`BPE_CORPUS`, saved as a Hugging Face
    ``gpt2`` / ``roberta`` / ``bart`` tokenizer folder (``vocab.json``, ``merges.txt``, ...)."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>"] if family == "gpt2" else ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(BPE_CORPUS * 5, vocab_size=600, min_frequency=2, special_tokens=specials)
    bpe.save_model(str(folder))
    tokenizer_class = getattr(transformers, BPE_FAMILIES[family])
    tokenizer = tokenizer_class(
        str(folder / "vocab.json"), str(folder / "merges.txt"), add_prefix_space=add_prefix_space
    )
    tokenizer.save_pretrained(str(folder))
    return folder


def write_tiny_bpe_model(folder: Path, family: str = "roberta") -> Path:
    """A tiny random ``TFRobertaModel`` or ``TFGPT2Model`` on :func:`write_bpe_tokenizer`'s vocabulary."""
    import transformers

    from tfft.keras import keras  # noqa: F401  (tf_keras before transformers' TF classes)

    write_bpe_tokenizer(folder, family)
    size = len(transformers.AutoTokenizer.from_pretrained(str(folder)))
    if family == "gpt2":
        config = transformers.GPT2Config(vocab_size=size, n_embd=16, n_layer=1, n_head=2, n_positions=64)
        return save_random_model(transformers.TFGPT2Model, config, folder)
    config = transformers.RobertaConfig(
        vocab_size=size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
    )
    return save_random_model(transformers.TFRobertaModel, config, folder)


def run_python(
    code: str, *args, timeout: float = 600, exit_code: int | None = 0
) -> subprocess.CompletedProcess:
    """Run ``python -c CODE ARGS`` in a fresh process: for strategies that must be set up before
    TensorFlow starts, runs that get killed, and checks of what an import pulls in. Fails with
    the tail of its stderr unless it exits with ``exit_code`` (``-signal.SIGKILL`` for a killed
    run; None accepts any)."""
    process = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if exit_code is not None:
        assert process.returncode == exit_code, process.stderr[-3000:]
    return process


def printed_json(process: subprocess.CompletedProcess):
    """What a script printed as JSON on its last line of stdout."""
    return json.loads(process.stdout.strip().splitlines()[-1])


def run_tfft(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``tfft ARGS`` in a new process (no test runner around the streams); the caller
    checks the exit code, since failing commands are tested too."""
    return subprocess.run(
        [sys.executable, "-m", "tfft_cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_example(script: str, run_dir: Path, export_dir: Path | None, report: str, *options: str) -> dict:
    """Run ``examples/SCRIPT`` with its defaults, ``--run-dir``, ``--export-dir`` (unless None)
    and ``options``, as a user would (a fresh process from the repository), and return its
    ``run_dir/REPORT`` JSON."""
    command = [
        sys.executable,
        str(REPO / "examples" / script),
        "--run-dir",
        str(run_dir),
        *([] if export_dir is None else ["--export-dir", str(export_dir)]),
        *options,
    ]
    subprocess.run(command, check=True, cwd=REPO)
    return json.loads((run_dir / report).read_text())


def auto_report(run_dir: Path, metrics: dict, names: tuple[str, ...]) -> dict:
    """Print and return what a ``--learning-rate auto`` run chose and scored: the metrics
    ``names``, the rate (``summary.json``), the range test's seconds and share of the run.
    Fails when the range test gave no rate (the fixed default ran: that tests nothing)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    record = summary["lr_range"]
    report = {name: metrics[name] for name in names}
    report.update(
        rate=summary["learning_rate"],
        picked_by=record.get("picked_by"),
        range_seconds=record["seconds"],
        share_of_run=record["share_of_run"],
        train_seconds=summary["train_seconds"],
    )
    print("learning-rate auto", run_dir, json.dumps(report))
    assert report["picked_by"] == "range test", report
    return report
