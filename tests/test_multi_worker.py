"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train one model in lockstep."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

#: Largest allowed weight difference between two workers and one process (see the test below).
TOLERANCE = 1e-5

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tfft
    from tfft.keras import keras

    model_dir, train, run_dir, export_dir, out = sys.argv[1:6]
    extra = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}

    class FinalWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            weights = [w.numpy().astype("float64") for w in self.model.trainable_weights]
            np.savez(out + ".initial.npz", *weights)

        def on_train_end(self, logs=None):
            weights = [w.numpy().astype("float64") for w in self.model.trainable_weights]
            np.savez(out + ".npz", *weights)
            json.dump({"checksum": float(sum(np.abs(w).sum() for w in weights)),
                       "first": weights[0].ravel()[:5].tolist(),
                       "steps": int(self.model.optimizer.iterations.numpy())}, open(out, "w"))

    config = tfft.load_config(None, {
        "model.hf_model": model_dir, "data.train": train, "data.text_column": "sentence",
        "train.epochs": 1, "train.batch_size": 8, "train.learning_rate": 1e-3,
        "runtime.strategy": "multi-worker", "export.run_dir": run_dir, "export.export_dir": export_dir,
        **extra,
    })
    result = tfft.run_fit(config, verbose=0, callbacks=[FinalWeights()])
    print(json.dumps({"export": None if result.export_path is None else str(result.export_path)}))
""")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(model_dir, train, tmp_path, workers: int, extra: dict | None = None) -> list[dict]:
    """Train in ``workers`` processes (a MultiWorkerMirroredStrategy cluster on 127.0.0.1 when
    more than one; plain ``--strategy default`` for one); each writes weights-<index>.json/.npz."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(workers)]}
    processes = []
    for index in range(workers):
        env = dict(os.environ)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        else:
            env.pop("TF_CONFIG", None)
        args = [
            sys.executable,
            "-c",
            WORKER,
            model_dir,
            train,
            tmp_path / "run",
            tmp_path / "saved_models" / "m",
            tmp_path / f"weights-{index}.json",
            json.dumps({**(extra or {}), **({} if workers > 1 else {"runtime.strategy": "default"})}),
        ]
        processes.append(
            subprocess.Popen(
                [str(a) for a in args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    results = []
    for process in processes:
        try:
            results.append(process.communicate(timeout=400))
        finally:
            process.kill()
    for index, (process, (_, stderr)) in enumerate(zip(processes, results)):
        assert process.returncode == 0, f"worker {index}:\n{stderr[-3000:]}"
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in results]


@pytest.mark.long  # two worker processes
def test_two_workers_end_with_identical_weights(tiny_bert_dir, tiny_sentiment, tmp_path):
    outputs = run_workers(tiny_bert_dir, tiny_sentiment["train"], tmp_path, workers=2)

    chief, worker = (json.loads((tmp_path / f"weights-{i}.json").read_text()) for i in range(2))
    assert chief["steps"] == worker["steps"] == 8  # 64 examples in global batches of 8 (4 per worker)
    assert chief["checksum"] == worker["checksum"]
    assert chief["first"] == worker["first"]
    # Only the chief exports and keeps the run folder; the other worker writes below it.
    assert outputs[0]["export"] == str(tmp_path / "saved_models" / "m" / "1") and outputs[1]["export"] is None
    assert (tmp_path / "run" / "summary.json").is_file()
    assert (tmp_path / "run" / "workers" / "worker-1" / "summary.json").is_file()


@pytest.mark.long  # two worker processes, then one
def test_two_workers_end_where_one_worker_ends_at_the_same_global_batch(
    no_dropout_bert, tiny_sentiment, tmp_path
):
    """Two workers x 4 rows train like one process with batches of 8 (same seed, same rows).

    No dropout, in the backbone or before the head (the replicas' dropout draws differ from one
    process's), and float32 (bfloat16
    rounding would hide a real difference), so what is left is the order of float32 sums: the
    all-reduce adds two half-batch gradients where one process sums the whole batch. After 8
    Adam steps at lr 1e-3 every weight has moved by up to ~8e-3 (Adam steps are about lr
    each); a worker that trained on other rows, in another order or with a wrongly scaled loss
    ends far more than TOLERANCE away, summation-order noise far less. Measured (2026-12-01):
    largest gap 6.0e-8, largest training move 4.7e-3; with the head's dropout left on, the gap
    was 5.6e-3, larger than the move itself.
    """
    extra = {"runtime.precision": "float32", "runtime.xla": False, "model.dropout": 0.0}
    run_workers(no_dropout_bert, tiny_sentiment["train"], tmp_path / "two", workers=2, extra=extra)
    run_workers(no_dropout_bert, tiny_sentiment["train"], tmp_path / "one", workers=1, extra=extra)
    chief = json.loads((tmp_path / "two" / "weights-0.json").read_text())
    single = json.loads((tmp_path / "one" / "weights-0.json").read_text())
    assert chief["steps"] == single["steps"] == 8

    def largest_gap(a: str, b: str) -> float:
        first, second = np.load(tmp_path / a), np.load(tmp_path / b)
        assert len(first.files) == len(second.files)
        return max(float(np.abs(first[k] - second[k]).max()) for k in first.files)

    assert largest_gap("two/weights-0.json.initial.npz", "one/weights-0.json.initial.npz") == 0.0
    moved = largest_gap("one/weights-0.json.npz", "one/weights-0.json.initial.npz")
    gap = largest_gap("two/weights-0.json.npz", "one/weights-0.json.npz")
    print(f"largest weight change in training {moved:.3g}; largest gap two workers vs one {gap:.3g}")
    assert moved > 100 * TOLERANCE
    assert gap <= TOLERANCE, (gap, moved)
