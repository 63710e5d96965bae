"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train one model in lockstep."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tfft
    from tfft.keras import keras

    model_dir, train, run_dir, export_dir, out = sys.argv[1:]

    class FinalWeights(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            weights = [w.numpy().astype("float64") for w in self.model.trainable_weights]
            json.dump({"checksum": float(sum(np.abs(w).sum() for w in weights)),
                       "first": weights[0].ravel()[:5].tolist(),
                       "steps": int(self.model.optimizer.iterations.numpy())}, open(out, "w"))

    config = tfft.load_config(None, {
        "model.hf_model": model_dir, "data.train": train, "data.text_column": "sentence",
        "train.epochs": 1, "train.batch_size": 8, "train.learning_rate": 1e-3,
        "runtime.strategy": "multi-worker", "export.run_dir": run_dir, "export.export_dir": export_dir,
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


@pytest.mark.slow  # two worker processes
def test_two_workers_end_with_identical_weights(tiny_bert_dir, tiny_sentiment, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        args = [
            sys.executable,
            "-c",
            WORKER,
            tiny_bert_dir,
            tiny_sentiment["train"],
            tmp_path / "run",
            tmp_path / "saved_models" / "m",
            tmp_path / f"weights-{index}.json",
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
    outputs = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in results]

    chief, worker = (json.loads((tmp_path / f"weights-{i}.json").read_text()) for i in range(2))
    assert chief["steps"] == worker["steps"] == 8  # 64 examples in global batches of 8 (4 per worker)
    assert chief["checksum"] == worker["checksum"]
    assert chief["first"] == worker["first"]
    # Only the chief exports and keeps the run folder; the other worker writes below it.
    assert outputs[0]["export"] == str(tmp_path / "saved_models" / "m" / "1") and outputs[1]["export"] is None
    assert (tmp_path / "run" / "summary.json").is_file()
    assert (tmp_path / "run" / "workers" / "worker-1" / "summary.json").is_file()
