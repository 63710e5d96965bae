"""``README.md`` in every export version folder: a model card that explains the export.

Written from the export's metadata (``assets.extra/tfft.json``): task, base model, data,
labels, evaluation metrics, training settings, versions, and how to call it (TF Serving
REST and gRPC, Python, ``saved_model_cli``). No TensorFlow here.
"""

from __future__ import annotations

import json

#: ``saved_model_cli`` with the tensorflow-text ops loaded (the plain command cannot load
#: the in-graph tokenizer: ``Op type not registered 'NormalizeUTF8'``)
SAVED_MODEL_CLI = (
    'python -c "import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli; '
    "sys.argv[0] = 'saved_model_cli'; saved_model_cli.main()\" run"
)


def _example_inputs(metadata: dict) -> dict:
    """One instance for the serving signature: the export's own ``example`` (e.g. mlm's text
    with its mask token), else a text (and text_pair for pair models)."""
    if metadata.get("example"):
        return dict(metadata["example"])
    example = {"text": "a gripping film"}
    if metadata.get("pair"):
        example["text_pair"] = "its second text"
    return example


def _section(title: str, lines: list[str]) -> list[str]:
    return [f"## {title}", "", *lines, ""]


def _items(values: dict) -> list[str]:
    return [f"- {key}: `{value}`" for key, value in values.items() if value is not None]


def model_card(metadata: dict, version_dir: str = "saved_models/NAME/1") -> str:
    """The model card of an export, as Markdown.

    Args:
        metadata: the export's ``tfft.json`` contents (with the optional ``data``,
            ``training``, ``eval_metrics`` and ``versions`` that ``tfft fit`` adds).
        version_dir: the version folder, for the example commands.
    """
    backbone = metadata.get("backbone") or {}
    base = backbone.get("source") or backbone.get("name") or backbone.get("kind") or "unknown"
    lines = [f"# {metadata.get('task', 'tfft')} model fine-tuned from {base}", ""]
    lines += [
        f"Exported by tfft ({metadata.get('format', 'tfft-export')}); metadata in `assets.extra/tfft.json`.",
        "",
    ]
    about = {"task": metadata.get("task"), "base model": base, "max_length": metadata.get("max_length")}
    about["sentence pairs"] = bool(metadata.get("pair"))
    about["in-graph tokenizer"] = metadata.get("in_graph_tokenizer")
    about["signatures"] = ", ".join(metadata.get("signatures") or [])
    lines += _section("Model", _items(about))
    if metadata.get("labels"):
        names = metadata.get("label_names") or {}
        labels = [
            f"- {i}: `{label}`" + (f" ({names[label]})" if label in names else "")
            for i, label in enumerate(metadata["labels"])
        ]
        lines += _section("Labels (label_id: label)", labels)
    if metadata.get("data"):
        lines += _section("Data", _items(metadata["data"]))
    if metadata.get("eval_metrics"):
        lines += _section("Evaluation", _items(metadata["eval_metrics"]))
    if metadata.get("training"):
        lines += _section("Training settings", _items(metadata["training"]))
    if metadata.get("versions"):
        lines += _section("Versions", _items(metadata["versions"]))
    lines += _section("How to call it", _usage(metadata, version_dir))
    return "\n".join(lines)


def _usage(metadata: dict, version_dir: str) -> list[str]:
    """The calling examples: REST, gRPC, Python, saved_model_cli."""
    example = _example_inputs(metadata)
    instances = json.dumps({"signature_name": "serving_default", "instances": [example]})
    if "serving_default" not in (metadata.get("signatures") or []) or not metadata.get("in_graph_tokenizer"):
        return [
            "This export takes token ids (`predict_ids`): tokenize with the tokenizer in "
            "`assets.extra/tokenizer/`, or use `tfft predict`.",
            "",
            "```bash",
            f'tfft predict {version_dir} --text "{example["text"]}"',
            "```",
        ]
    text_args = f'--text "{example["text"]}"' + (
        ' --text-pair "its second text"' if metadata.get("pair") else ""
    )
    grpc_inputs = "".join(
        f'request.inputs["{key}"].CopyFrom(tf.make_tensor_proto([{value!r}]))\n'
        for key, value in example.items()
    )
    python_call = ", ".join(f"{key}=tf.constant([{value!r}])" for key, value in example.items())
    exprs = ";".join(f"{key}=[{json.dumps(value)}]" for key, value in example.items())
    return [
        "Raw text in; the tokenizer runs in the graph and needs the tensorflow-text ops "
        "(TF Serving 2.2 and newer has them; elsewhere `import tensorflow_text` first).",
        "",
        "TF Serving, REST, with the model folder that holds this version served as `m`",
        '(`docker run -p 8501:8501 -v "$PWD/MODEL_FOLDER:/models/m" -e MODEL_NAME=m tensorflow/serving`):',
        "",
        "```bash",
        f"curl -s -X POST localhost:8501/v1/models/m:predict -d '{instances}'",
        "```",
        "",
        "TF Serving, gRPC (port 8500; `pip install tensorflow-serving-api`):",
        "",
        "```python",
        "import grpc, tensorflow as tf",
        "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc",
        'stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel("localhost:8500"))',
        "request = predict_pb2.PredictRequest()",
        'request.model_spec.name, request.model_spec.signature_name = "m", "serving_default"',
        grpc_inputs.rstrip("\n"),
        "print(stub.Predict(request, 10.0).outputs)",
        "```",
        "",
        "Python:",
        "",
        "```python",
        "import tensorflow as tf",
        "import tensorflow_text  # noqa: F401 - registers the tokenizer ops",
        f'model = tf.saved_model.load("{version_dir}")',
        f'print(model.signatures["serving_default"]({python_call}))',
        "```",
        "",
        "saved_model_cli (the plain command cannot load the tokenizer ops; this loads them first):",
        "",
        "```bash",
        f"{SAVED_MODEL_CLI} --dir {version_dir} --tag_set serve --signature_def serving_default \\",
        f"    --input_exprs '{exprs}'",
        "```",
        "",
        "tfft:",
        "",
        "```bash",
        f"tfft predict {version_dir} {text_args}",
        "```",
    ]
