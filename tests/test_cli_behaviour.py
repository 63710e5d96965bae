"""The command line as a well-behaved tool: quiet stderr, results alone on stdout, safe run
folders, checks before TensorFlow loads, ``tfft doctor`` and ``tfft tasks``.

Real processes (``python -m tfft_cli.main``) where the streams matter: click's test runner
does not see what native code writes to file descriptor 2.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml
from click.testing import CliRunner
from helpers import printed_json, run_python, run_tfft

from tfft.config import RunConfig
from tfft.errors import ConfigError
from tfft.folders import FAILED, FINISHED, NEW, UNFINISHED, RunFolder, plan_run_dir, run_state
from tfft.tasks import task_names
from tfft_cli.doctor import problems
from tfft_cli.main import cli
from tfft_cli.output import is_noise

#: the stderr lines tfft may show that it did not write itself: Keras' epoch header and
#: progress bar (split at carriage returns, backspaces removed)
ALLOWED = (
    re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) tfft[\w.]*: "),  # tfft's own log lines
    re.compile(r"^Error: "),  # tfft's one-line errors
    re.compile(r"^Epoch \d+/\d+$"),
    re.compile(r"^\d+/\d+ \[[=>.]*\]"),
)


def foreign_lines(stderr: str) -> list[str]:
    """The stderr lines that are not on the allow-list."""
    parts = [part for line in stderr.replace("\b", "").split("\n") for part in line.split("\r")]
    return [part for part in parts if part.strip() and not any(p.match(part) for p in ALLOWED)]


def fit_args(tiny_bert_dir, data, run_dir, *extra):
    return [
        "fit",
        "--hf-model",
        tiny_bert_dir,
        "--train",
        data["train"],
        "--eval",
        data["dev"],
        "--text-column",
        "sentence",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--learning-rate",
        "1e-3",
        "--no-xla",
        "--run-dir",
        run_dir,
        *extra,
    ]


@pytest.fixture(scope="module")
def fitted(tiny_bert_dir, tiny_sentiment, tmp_path_factory):
    """A real tiny ``tfft fit --json`` in its own process, default verbosity."""
    tmp_path = tmp_path_factory.mktemp("behaviour")
    export = tmp_path / "saved_models" / "sent"
    args = fit_args(tiny_bert_dir, tiny_sentiment, tmp_path / "run", "--export-dir", export, "--json")
    process = run_tfft(*args)
    assert process.returncode == 0, process.stderr[-3000:]
    return tmp_path, process


# --- 1. quiet by default --------------------------------------------------------------------


def test_native_noise_is_recognised_and_real_errors_are_not():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796054390.619572    2046 cudart_stub.cc:31] Could not find cuda drivers.",
        "I0000 00:00:1796054390.619230    2046 port.cc:153] oneDNN custom operations are on.",
        "E0000 00:00:1796054393.454164    2046 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
        "W0000 00:00:1796054393.454164    2046 local_rendezvous.cc:404] Local rendezvous is aborting",
    ]
    kept = [
        "E0000 00:00:1796054393.454164    2046 op_kernel.cc:1857] OP_REQUIRES failed: out of memory",
        "F0000 00:00:1796054393.454164    2046 cuda_driver.cc:1] Check failed: cuda",
        "INFO tfft.pipeline: Run folder: run",
        "Error: train.tsv: no column `text`",
    ]
    assert all(is_noise(line) for line in noise)
    assert not any(is_noise(line) for line in kept)


def test_fit_stderr_holds_only_tfft_lines_and_stdout_one_json_document(fitted):
    tmp_path, process = fitted
    assert foreign_lines(process.stderr) == []
    assert "INFO tfft.pipeline: Run folder:" in process.stderr  # progress is on stderr
    result = json.loads(process.stdout)  # the whole of stdout: `| python -m json.tool` works
    assert result["run_dir"] == str(tmp_path / "run")
    assert result["export_path"] == str(tmp_path / "saved_models" / "sent" / "1")
    assert result["eval"]["examples"] == 32 and "accuracy" in result["eval"]
    assert result["status"] == FINISHED and result["best_epoch"] in (1, 2) and result["epochs"] == 2
    assert result["next"][0].startswith("tfft predict ")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == FINISHED


def test_predict_stderr_is_quiet_and_stdout_holds_the_rows(fitted):
    tmp_path, _ = fitted
    process = run_tfft(
        "predict", tmp_path / "saved_models" / "sent", "--text", "the movie was fun", "--text", "dull"
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert foreign_lines(process.stderr) == []
    rows = [json.loads(line) for line in process.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["the movie was fun", "dull"]


@pytest.mark.parametrize("position", ["before", "after"])
def test_verbose_brings_tensorflow_messages_back_before_or_after_the_command(position):
    args = ["-v", "doctor"] if position == "before" else ["doctor", "-v"]
    verbose = run_tfft(*args)
    assert verbose.returncode in (0, 1), verbose.stderr[-3000:]
    assert "versions:" in verbose.stdout
    assert any(is_noise(line) for line in verbose.stderr.splitlines()), verbose.stderr
    quiet = run_tfft("doctor", "-q") if position == "after" else run_tfft("-q", "doctor")
    assert foreign_lines(quiet.stderr) == []


def test_quiet_and_verbose_are_accepted_everywhere():
    for args in (["-q", "tasks"], ["tasks", "-q"], ["-v", "tasks", "-v"], ["tasks", "--verbose"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)


# --- 2. results on stdout, 3. safe run folders ---------------------------------------------


def test_finished_run_is_refused_then_replaced_with_overwrite(fitted, tiny_bert_dir, tiny_sentiment):
    tmp_path, _ = fitted
    run_dir = tmp_path / "run"
    started = time.perf_counter()
    refused = run_tfft(*fit_args(tiny_bert_dir, tiny_sentiment, run_dir))
    assert refused.returncode == 1 and time.perf_counter() - started < 15
    assert refused.stderr.strip().splitlines() == [
        f"Error: --run-dir {run_dir} holds a finished run (summary.json). "
        "Give --overwrite to replace it, or another --run-dir."
    ]
    replaced = run_tfft(*fit_args(tiny_bert_dir, tiny_sentiment, run_dir, "--overwrite", "-q"))
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert replaced.stderr.strip() == ""  # -q: no logs, no progress bar
    table = dict(line.split("  ", 1) for line in replaced.stdout.splitlines() if not line.startswith(" "))
    assert table["status"].strip() == FINISHED
    assert table["run folder"].strip() == str(run_dir)
    assert re.fullmatch(r"\s*\d of 2 \(val_accuracy \d\.\d{4}\)", table["best epoch"])
    assert "accuracy" in table["eval"] and table["export"].strip().startswith("none")
    assert table["next"].strip().startswith(f"tfft export {run_dir}")


EARLY = """
import json, sys, time
started = time.perf_counter()
from tfft_cli.main import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
    error = None
except Exception as exc:
    error = exc.format_message() if hasattr(exc, "format_message") else str(exc)
print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "error": error,
                  "seconds": time.perf_counter() - started}))
"""


def early(*args):
    return printed_json(run_python(EARLY, *args, timeout=120))


def test_checks_without_a_model_answer_before_tensorflow_loads(tmp_path, tiny_bert_dir, tiny_sentiment):
    train = tmp_path / "t.tsv"
    train.write_text("sentence\tlabel\nfun\tpos\nbad\tneg\n")
    unseen = tmp_path / "e.tsv"
    unseen.write_text("sentence\tlabel\nok\tmeh\n")
    base = ["fit", "--hf-model", tiny_bert_dir, "--run-dir", tmp_path / "run"]
    cases = [
        (["--train", train, "--text-column", "text"], "no column `text`"),
        (["--train", train, "--text-column", "sentence", "--eval", unseen], "e.tsv:2: label 'meh'"),
        (["--train", tmp_path / "nope.tsv"], "No such file"),
        (["--train", train, "--task", "clasify"], "Did you mean 'classify'?"),
        (["--train", train, "--epochs", "0"], "epochs"),
        (["--train", train, "--hf-model", tmp_path], "config.json"),
    ]
    for extra, message in cases:
        found = early(*base, *extra)
        assert message in found["error"], (extra, found)
        assert found["tensorflow"] is False, extra
        assert found["seconds"] < 10, found  # about 0.5 s measured
    assert not (tmp_path / "run").exists()


def test_failure_before_training_leaves_no_run_folder(tmp_path, tiny_bert_dir, tiny_sentiment):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (no_weights / name).write_bytes((tiny_bert_dir / name).read_bytes())
    args = fit_args(no_weights, tiny_sentiment, tmp_path / "runs" / "new")
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 1 and "weights" in result.output, result.output
    assert not (tmp_path / "runs" / "new").exists()


def test_failure_during_training_is_recorded(tmp_path, tiny_bert_dir, tiny_sentiment):
    run_dir = tmp_path / "run"
    extra = ["--learning-rate", "1e30", "--epochs", "1", "--precision", "float32"]
    result = CliRunner().invoke(
        cli, [str(a) for a in fit_args(tiny_bert_dir, tiny_sentiment, run_dir)] + extra
    )
    assert result.exit_code == 1, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == FAILED and summary["error"].startswith("NonFiniteLoss: ")
    # the same command may run again there; other settings are refused with the resume command
    with pytest.raises(ConfigError, match=r"Resume it with: tfft fit --config .*config.yaml --run-dir"):
        plan_run_dir(RunConfig.from_dict({"export": {"run_dir": str(run_dir)}, "train": {"epochs": 5}}))


def test_run_folder_states(tmp_path):
    def config(**train):
        return RunConfig.from_dict({"export": {"run_dir": str(tmp_path / "run")}, "train": train})

    run_dir = tmp_path / "run"
    assert run_state(run_dir) == NEW and plan_run_dir(config()).path == run_dir
    run_dir.mkdir()
    config(epochs=3).save(run_dir / "config.yaml")
    assert run_state(run_dir) == UNFINISHED
    assert plan_run_dir(config(epochs=3, resume=True)).replace is False  # same settings: continue
    with pytest.raises(ConfigError, match=r"unfinished run with other settings \(train.epochs: 3 -> 2\)"):
        plan_run_dir(config(epochs=2))
    assert plan_run_dir(config(epochs=2), overwrite=True).replace is True
    (run_dir / "summary.json").write_text(json.dumps({"run_dir": str(run_dir)}))  # before "status"
    assert run_state(run_dir) == FINISHED
    with pytest.raises(ConfigError, match="finished run"):
        plan_run_dir(config(epochs=3))
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="--overwrite removes tfft run folders only"):
        plan_run_dir(RunConfig.from_dict({"export": {"run_dir": str(foreign)}}), overwrite=True)


def test_guard_removes_only_a_folder_it_created(tmp_path):
    folder = RunFolder(tmp_path / "made")
    with pytest.raises(RuntimeError), folder.guard():
        folder.create()
        raise RuntimeError("bad model")
    assert not folder.path.exists()
    kept = RunFolder(tmp_path / "kept")
    kept.path.mkdir()
    (kept.path / "config.yaml").write_text(yaml.safe_dump({}))
    with pytest.raises(RuntimeError), kept.guard():
        kept.create()
        raise RuntimeError("bad model")
    assert kept.path.is_dir()


# --- 8. doctor and tasks ----------------------------------------------------------------


def test_doctor_flags_known_bad_combinations():
    good = {
        "tensorflow": "2.21.0",
        "tf_keras": "2.21.0",
        "tensorflow-text": "2.21.1",
        "transformers": "4.57.6",
    }
    assert problems({**good, "keras": "3.15.1"}, environ={}) == []
    assert any("transformers<5" in p for p in problems({**good, "transformers": "5.0.0"}, environ={}))
    assert any("tf_keras 2.20.0" in p for p in problems({**good, "tf_keras": "2.20.0"}, environ={}))
    keras3 = problems({**good, "keras": "3.15.1"}, environ={"TF_USE_LEGACY_KERAS": "0"})
    assert any("TF_USE_LEGACY_KERAS" in p for p in keras3)


def test_doctor_reports_versions_cpu_and_runtime():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["versions"]["tensorflow"] and report["versions"]["python"]
    assert "avx512_bf16" in report["cpu"] and "amx_bf16" in report["cpu"]
    assert report["runtime"]["precision"] in ("float32", "mixed_float16", "mixed_bfloat16")
    assert isinstance(report["runtime"]["xla"], bool) and report["runtime"]["strategy"]
    assert (result.exit_code == 1) == bool(report["problems"])


def test_tasks_lists_every_registered_task():
    result = CliRunner().invoke(cli, ["tasks"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(task_names())
    assert lines[0].split(None, 1)[1].startswith("one label per text")
    assert "classify" in CliRunner().invoke(cli, ["fit", "--help"]).output.split("Tasks (--task):")[1]
