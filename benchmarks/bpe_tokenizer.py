"""In-graph byte-level BPE (tfft.text.bpe) against the Hugging Face Rust tokenizer, on SST-2 text.

A GPT-2-style byte-level BPE (vocabulary 5,000) is trained on SST-2 training sentences, then
both tokenizers encode the same dev sentences in batches of 256. Phases alternate
(Hugging Face, graph, Hugging Face, ...) and the best of the repeats counts, so the two see
the same machine load. The ids are checked equal first.

    python benchmarks/bpe_tokenizer.py --rows 2048 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import tensorflow as tf

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def sentences(path: Path, limit: int) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row["sentence"] for _, row in zip(range(limit), rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import transformers
    from tokenizers import ByteLevelBPETokenizer as Trainer

    from tfft.text.bpe import ByteLevelBPETokenizer

    folder = Path(tempfile.mkdtemp())
    trainer = Trainer()
    trainer.train_from_iterator(sentences(DATA / "train.tsv", 20000), vocab_size=5000, min_frequency=2)
    trainer.save_model(str(folder))
    hf = transformers.GPT2TokenizerFast(str(folder / "vocab.json"), str(folder / "merges.txt"))
    graph = ByteLevelBPETokenizer.from_hf_tokenizer(hf)
    tokenize = tf.function(graph.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    texts = sentences(DATA / "dev.tsv", args.rows)
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    expected = hf(texts, add_special_tokens=False)["input_ids"]
    assert tokenize(tf.constant(texts)).to_list() == expected, "the graph ids differ from Hugging Face's"
    tokens = sum(len(row) for row in expected)

    def hf_phase():
        for batch in batches:
            hf(batch, add_special_tokens=False)

    def graph_phase():
        for batch in batches:
            tokenize(tf.constant(batch))

    best = {"huggingface_rust": float("inf"), "tfft_graph": float("inf")}
    for _ in range(args.repeats):
        for name, phase in (("huggingface_rust", hf_phase), ("tfft_graph", graph_phase)):
            start = time.perf_counter()
            phase()
            best[name] = min(best[name], time.perf_counter() - start)
    result = {
        "rows": len(texts),
        "tokens": tokens,
        "batch_size": args.batch_size,
        **{f"{name}_sentences_per_s": round(len(texts) / seconds, 1) for name, seconds in best.items()},
        "graph_over_rust": round(best["tfft_graph"] / best["huggingface_rust"], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
