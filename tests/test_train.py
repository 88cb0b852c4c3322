"""`sqlsft train`: checks before launching, dry runs, and real runs of a tiny Gemma 3 through accelerate."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import write_json
from sqlsft.common.hardware import Gpu, Hardware
from sqlsft.common.paths import runs_dir
from sqlsft.runs import registry as runs
from sqlsft.runs.checkpoints import checkpoint_state, missing_checkpoint_files
from sqlsft.runs.metrics import MetricsEvent, MetricsFollower, metrics_file
from sqlsft.train.checks import (
    disk_problem,
    estimate_disk_gib,
    preflight,
    resolve_report_to,
    slow_bf16_warning,
)
from sqlsft.train.config import resolve_config
from sqlsft.train.launch import plan_launch
from sqlsft.train.options import TrainOptions
from sqlsft.train.resume import prepare_resume
from tests.cli_runner import invoke, one_error_line

NO_GPU = Hardware(gpus=[], cpu_cores=2)
SQLSFT = [sys.executable, "-m", "sqlsft"]
# Small, fast runs of the tiny model: its byte-level tokenizer makes builtin rows ~800 tokens long.
TINY_RUN = ["--set", "num_rows=120", "--set", "max_length=1024", "--set", "bf16=false",
            "--set", "per_device_train_batch_size=2", "--set", "dataset_num_proc=1"]  # fmt: skip
RUN_TIMEOUT_S = 900


# ---------------------------------------------------------------- checks before anything heavy


def test_liger_without_a_gpu_and_bf16_on_a_gpu_without_it():
    liger = resolve_config(preset="liger")
    plan, _ = plan_launch(NO_GPU)
    assert "liger-kernel, whose Triton kernels need a GPU" in preflight(liger, plan, NO_GPU)[0]

    old_gpu = Hardware(gpus=[Gpu(0, "Tesla V100", 32.0, bf16=False)], cpu_cores=8)
    baseline = resolve_config(preset="baseline")
    plan, _ = plan_launch(old_gpu)
    problems = preflight(baseline, plan, old_gpu)
    assert len(problems) == 1 and "bf16 needs a GPU with bf16 support" in problems[0]
    assert "Tesla V100" in problems[0] and "--set bf16=false" in problems[0]
    fp32 = resolve_config(preset="baseline", overrides=["bf16=false", "dtype=float32"])
    assert preflight(fp32, plan, old_gpu) == []
    # on the CPU, bf16 is autocast (use_cpu=True): it runs, but where the CPU has no native bf16 it is emulated
    cpu_plan = plan_launch(NO_GPU)[0]
    assert preflight(baseline, cpu_plan, NO_GPU) == []
    assert slow_bf16_warning(baseline, cpu_plan, cpu_bf16=True) is None
    assert "no native bf16 (AVX512-BF16 or AMX)" in slow_bf16_warning(baseline, cpu_plan, cpu_bf16=False)
    assert slow_bf16_warning(resolve_config(preset="demo"), cpu_plan, cpu_bf16=False) is None


def test_the_memory_estimate_counts_a_token_budget_as_one_packed_sequence():
    """The dry run used to count per_device_train_batch_size x max_length even where rows are packed into
    micro-batches of tokens_per_micro_batch (the demo: 1,024 tokens, not 8 x 320)."""
    from dataclasses import replace

    from transformers import Gemma3TextConfig

    from sqlsft.train.estimate import estimate_memory, model_shape

    config = resolve_config(preset="demo")
    gemma_270m = Gemma3TextConfig(
        vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, architectures=["Gemma3ForCausalLM"],
    )  # fmt: skip
    shape = model_shape(gemma_270m, config)
    packed = estimate_memory(shape, config)
    assert packed.tokens_per_step == config.training["tokens_per_micro_batch"] == 1024
    four_times = estimate_memory(
        shape, replace(config, training={**config.training, "tokens_per_micro_batch": 4096})
    )
    assert four_times.activations_gib == pytest.approx(4 * packed.activations_gib)
    unpacked = {k: v for k, v in config.training.items() if k != "tokens_per_micro_batch"}
    rows = estimate_memory(shape, replace(config, training={**unpacked, "per_device_train_batch_size": 8}))
    assert rows.tokens_per_step == 8 * config.training["max_length"]


def test_disk_estimate_and_the_no_free_disk_error(tmp_path):
    demo = resolve_config(preset="demo")
    needed = estimate_disk_gib(demo, 536_223_056, "bfloat16")  # the embedded 270M, trained in fp32
    assert 3 < needed < 8
    assert disk_problem(needed, 100.0, tmp_path) is None
    problem = disk_problem(needed, 0.2, tmp_path)
    assert problem.startswith("Not enough free disk for checkpoints: 0.2 GiB free under")
    assert "SQLSFT_RUNS_DIR" in problem


def test_report_to(monkeypatch, tmp_path):
    config = resolve_config(preset="demo")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    value, note = resolve_report_to(None, config)
    assert value == "none" and "wandb login" in note
    with pytest.raises(SqlsftError, match="wandb is not set up here"):
        resolve_report_to("wandb", config)
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    assert resolve_report_to(None, config) == ("wandb", "wandb: logging to project mine")
    assert resolve_report_to("none", config) == ("none", None)
    with pytest.raises(SqlsftError, match="--report-to comet: unknown"):
        resolve_report_to("comet", config)
    with pytest.raises(SqlsftError, match="needs the tensorboard package"):
        resolve_report_to("tensorboard", config)
    config.training["report_to"] = "trackio"
    assert resolve_report_to(None, config) == ("trackio", None)


def test_one_wandb_check_for_env_and_train(monkeypatch, tmp_path):
    """`sqlsft env` and train's report_to ask the same function: a netrc named by $NETRC counts for both,
    WANDB_MODE=disabled turns wandb off even when logged in, offline logs without a login."""
    from sqlsft.common.environment import wandb_status

    config = resolve_config(preset="demo")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_status() == f"logged in ({netrc})"
    assert resolve_report_to(None, config)[0] == "wandb"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_status() == f"logged in ({netrc}); off (WANDB_MODE=disabled)"
    assert resolve_report_to(None, config)[0] == "none"
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert "logging offline" in wandb_status() and resolve_report_to(None, config)[0] == "wandb"


class FakeHub(BaseHTTPRequestHandler):
    """Answers auth-check like the Hugging Face hub does (status and X-Error-Code headers)."""

    def do_GET(self):
        if "slow" in self.path:
            time.sleep(5)  # a hub that accepts the connection and never answers in time
            self.send_response(200)
        elif "gated" in self.path:
            self.send_response(403 if "Bearer" in (self.headers.get("Authorization") or "") else 401)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to model org/gated is restricted.")
        elif "missing" in self.path:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("X-Error-Message", "Repository not found")
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", "/nonexistent/token")
    yield server
    server.shutdown()


def test_gated_missing_and_unreachable_models(fake_hub, monkeypatch):
    from sqlsft.models.resolve import resolve_model

    with pytest.raises(SqlsftError, match="org/gated is a gated model and no Hugging Face token") as info:
        resolve_model("org/gated")
    assert "https://huggingface.co/org/gated" in info.value.hint and "hf auth login" in info.value.hint
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    with pytest.raises(SqlsftError, match="token has no access to the gated model org/gated") as info:
        resolve_model("org/gated")
    assert "Request access at https://huggingface.co/org/gated" in info.value.hint
    with pytest.raises(SqlsftError, match="org/missing was not found"):
        resolve_model("org/missing")
    assert resolve_model("org/open").source == "hub"

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(SqlsftError, match="hub is unreachable") as info:
        resolve_model("org/open")
    assert "--model embedded" in info.value.hint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SqlsftError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        resolve_model("org/open")


def test_the_hub_access_check_has_a_timeout(fake_hub, monkeypatch):
    from sqlsft.models import resolve

    monkeypatch.setattr(resolve, "HUB_CHECK_TIMEOUT_S", 0.5)
    started = time.monotonic()
    with pytest.raises(SqlsftError, match="hub is unreachable"):
        resolve.resolve_model("org/slow")
    assert time.monotonic() - started < 3


def test_local_model_paths(tmp_path, tiny_model_dir):
    from sqlsft.models.resolve import resolve_model

    assert resolve_model(str(tiny_model_dir)).source == "local"
    with pytest.raises(SqlsftError, match="not a transformers model folder"):
        resolve_model(str(tmp_path))
    with pytest.raises(SqlsftError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(SqlsftError, match="neither a local folder nor a hub id"):
        resolve_model("a/b/c")


# ---------------------------------------------------------------- the command line, before launching


def test_cli_errors_are_one_line_without_traceback(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))  # other tests leave runs in the session's
    line = one_error_line(invoke("train", "--preset", "fastest"))
    assert "Unknown preset 'fastest'" in line and "Available presets: baseline, demo, fast" in line
    assert "uses liger-kernel, whose Triton kernels need a GPU" in one_error_line(
        invoke("train", "-p", "liger")
    )
    line = one_error_line(invoke("train", "--preset", "demo", "--gpus", "2"))
    assert "Asked for 2 GPUs but this machine has none" in line
    line = one_error_line(invoke("train", "--preset", "demo", "--set", "learning_rat=1"))
    assert "Did you mean `learning_rate`?" in line
    assert "only with --resume RUN" in one_error_line(invoke("train", "some-run"))
    assert not runs.list_runs()


def test_max_steps_below_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    for value in ("-3", "0", "-1"):  # TRL would silently train full epochs instead
        line = one_error_line(invoke("train", "--preset", "demo", "--max-steps", value, "--dry-run"))
        assert f"--max-steps {value}: give a number of optimizer steps, at least 1" in line
    line = one_error_line(invoke("train", "--preset", "demo", "--set", "max_steps=-3", "--dry-run"))
    assert "training.max_steps = -3" in line
    assert (
        invoke("train", "--preset", "demo", "--set", "max_steps=-1", "--dry-run").exit_code == 0
    )  # TRL's own
    assert not runs.list_runs()


def test_config_that_is_a_folder_or_a_binary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    line = one_error_line(invoke("train", "--config", str(tmp_path), "--dry-run"))
    assert f"Config file {tmp_path} is a folder" in line
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    line = one_error_line(invoke("train", "-c", str(binary), "--dry-run"))
    assert "is not a text file (not UTF-8)" in line
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"a: 1\x00\x01\n")
    assert "is not valid YAML: unacceptable character" in one_error_line(invoke("train", "-c", str(nul)))
    assert not runs.list_runs()


def test_short_flags_for_config_and_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    config = tmp_path / "mine.yaml"
    config.write_text("preset: demo\ntraining:\n  learning_rate: 0.000123\n")
    result = invoke("train", "-c", str(config), "-d", "my/data", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "learning_rate: 0.000123" in result.stdout and "dataset: my/data" in result.stdout


def test_dry_run_prints_config_accelerate_config_and_command(monkeypatch, tmp_path):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))  # other tests leave runs in the session's
    result = invoke("train", "--preset", "liger", "--gpus", "4", "--set", "max_steps=5", "--dry-run")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert (
        "use_liger_kernel: true" in out
        and "per_device_train_batch_size: 192" in out
        and "max_steps: 5" in out
    )
    assert (
        "distributed_type: MULTI_GPU" in out and "num_processes: 4" in out and "mixed_precision: bf16" in out
    )
    assert "accelerate launch --config_file" in out and "-m sqlsft.train.worker --run-dir" in out
    assert "the job needs 4" in out and "GPUs need not be present" in out
    assert not runs.list_runs()  # nothing written

    result = invoke("train", "--preset", "fast", "--gpus", "8", "--nodes", "2", "--node-rank", "1",
                    "--main-ip", "10.1.2.3", "--strategy", "fsdp", "--dry-run")  # fmt: skip
    out = result.stdout
    assert "distributed_type: FSDP" in out and "num_processes: 16" in out and "machine_rank: 1" in out
    assert "main_process_ip: 10.1.2.3" in out and "packing: true" in out


# ---------------------------------------------------------------- resume refusals


def fake_run(root: Path, name: str, status: str, step: int | None = None, max_steps: int = 10, files=None):
    folder = root / name
    folder.mkdir(parents=True)
    write_json(folder / "status.json", {"status": status, "started_epoch": time.time()})
    (folder / "config.yaml").write_text("preset: demo\n")
    if step is not None:
        checkpoint = folder / "checkpoints" / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        for name_ in files if files is not None else ("optimizer.pt", "scheduler.pt", "model.safetensors"):
            (checkpoint / name_).write_text("x")
        write_json(checkpoint / "trainer_state.json", {"global_step": step, "max_steps": max_steps})
    return folder


def test_resume_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    with pytest.raises(SqlsftError, match="No interrupted or failed run with a checkpoint"):
        prepare_resume(TrainOptions(resume=""))
    fake_run(tmp_path, "done", "completed", step=4)
    with pytest.raises(SqlsftError, match="Run done completed: nothing left to train"):
        prepare_resume(TrainOptions(resume="latest"))
    fake_run(tmp_path, "at-end", "interrupted", step=10, max_steps=10)
    with pytest.raises(SqlsftError, match="nothing left to train: checkpoint-10 is step 10 of 10"):
        prepare_resume(TrainOptions(resume="at-end"))
    fake_run(tmp_path, "no-checkpoint", "failed")
    with pytest.raises(SqlsftError, match="has no checkpoint to resume from"):
        prepare_resume(TrainOptions(resume="no-checkpoint"))
    fake_run(tmp_path, "torn", "interrupted", step=3, files=("model.safetensors",))
    with pytest.raises(
        SqlsftError, match=r"checkpoint-3 is incomplete \(missing optimizer.pt, scheduler.pt\)"
    ):
        prepare_resume(TrainOptions(resume="torn"))
    with pytest.raises(SqlsftError, match="drop --preset, --set"):
        prepare_resume(TrainOptions(resume="torn", preset="fast", overrides=["a=1"]))


def accelerate_never_started(run_dir: Path) -> bool:
    """Nothing was launched: no train.log, no resume script, and the status was not touched."""
    return not (run_dir / "train.log").exists() and not (run_dir / "resume.sh").exists()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("{not json", "status.json cannot be read (not valid JSON)"),
        ('["a", "list"]', "status.json is not a JSON object"),
        ('{"status": "paused"}', "status is 'paused'"),
        ('{"status": "interrupted", "final_loss": "low"}', "final_loss is 'low'"),
        ('{"status": "interrupted", "resumes": 3}', "resumes is 3"),
    ],
)
def test_resume_refuses_a_run_whose_status_is_invalid(tmp_path, monkeypatch, damage, expected):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    folder = fake_run(tmp_path, "damaged", "interrupted", step=3)
    (folder / "status.json").write_text(damage)
    line = one_error_line(invoke("train", "--resume", "damaged"))
    assert "Run damaged cannot be resumed: its status.json is not valid" in line and expected in line
    assert accelerate_never_started(folder)
    assert (folder / "status.json").read_text() == damage  # left as it was, for the user to look at


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"global_step": "three", "max_steps": 10}, "global_step is 'three'"),
        ({"global_step": 3, "max_steps": [10]}, "max_steps is [10]"),
        ({"global_step": None, "max_steps": 10}, "no global_step"),
        ({"max_steps": 10}, "no global_step"),
        (["not", "a", "mapping"], "trainer_state.json is not a JSON object"),
    ],
)
def test_resume_refuses_a_checkpoint_whose_trainer_state_has_wrong_types(
    tmp_path, monkeypatch, state, expected
):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    folder = fake_run(tmp_path, "odd", "interrupted", step=2)
    fake = folder / "checkpoints" / "checkpoint-3"
    shutil.copytree(folder / "checkpoints" / "checkpoint-2", fake)
    write_json(fake / "trainer_state.json", state)
    line = one_error_line(invoke("train", "--resume", "odd"))
    assert "checkpoint-3 has a damaged trainer_state.json" in line and expected in line
    assert "Delete" in line and "checkpoint-2" in line
    assert accelerate_never_started(folder)


# ---------------------------------------------------------------- the end of turn


def test_check_end_of_turn_on_plain_and_packed_rows():
    from datasets import Dataset

    from sqlsft.train.end_of_turn import check_end_of_turn

    eot, newline = 106, 107
    good = [-100, -100, 5, 6, eot, newline]
    cut = [-100, -100, 5, 6, 7, 8]  # truncated: the end of turn is gone
    masked = [-100, 5, 6, -100, -100]
    assert check_end_of_turn(Dataset.from_dict({"labels": [good, good]}), eot, {newline}) == (2, [])
    assert check_end_of_turn(Dataset.from_dict({"labels": [good, cut, masked]}), eot, {newline})[1] == [1, 2]
    packed = Dataset.from_dict({"labels": [good + good, good + cut], "seq_lengths": [[6, 6], [6, 6]]})
    assert check_end_of_turn(packed, eot, {newline}) == (4, [1])


def test_an_untrained_end_of_turn_is_re_initialised(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sqlsft.train.end_of_turn import embedding_twins, end_of_turn_id, fix_untrained_end_of_turn

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    end_id = end_of_turn_id(tokenizer)
    weight = model.get_input_embeddings().weight
    before = weight.detach().clone()
    assert fix_untrained_end_of_turn(model, tokenizer, end_id) is None  # random rows have no twins
    assert torch.equal(weight, before)
    never_used = [end_id, *range(weight.shape[0] - 20, weight.shape[0])]
    with torch.no_grad():  # a base model's never-used tokens: one shared initial direction, a little noise
        weight[never_used] = torch.randn(weight.shape[1]) + 0.01 * torch.randn(
            len(never_used), weight.shape[1]
        )
    clustered = weight.detach().clone()
    assert embedding_twins(model, end_id) == 20
    note = fix_untrained_end_of_turn(model, tokenizer, end_id)
    assert note and f"<end_of_turn> (id {end_id}) was untrained" in note and "20 other tokens" in note
    assert embedding_twins(model, end_id) == 0  # a direction of its own now
    others = [i for i in range(weight.shape[0]) if i != end_id]
    assert torch.equal(weight[others], clustered[others])  # nothing else moved
    trained = [i for i in range(weight.shape[0]) if i not in never_used]
    cosine = torch.nn.functional.cosine_similarity(weight[end_id], before[trained].mean(0), dim=0)
    assert cosine > 0.999
    assert torch.isclose(weight[end_id].norm(), before[trained].norm(dim=1).mean(), rtol=1e-4)


# ---------------------------------------------------------------- real runs through accelerate launch


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*SQLSFT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ}
    )


def finish(process: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"sqlsft did not finish in {timeout} s:\n{out}")
    return out


def leftover_processes(run_dir: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(run_dir) in cmdline and proc.pid != os.getpid():
            found.append(cmdline)
    return found


def wait_for_step(metrics: Path, process: subprocess.Popen, timeout: float = RUN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("loss" in row for row in runs.read_metrics(metrics.parent)):
            return
        if process.poll() is not None:
            pytest.fail("sqlsft exited before the first step:\n" + process.stdout.read())
        time.sleep(0.2)
    process.kill()
    pytest.fail("no training step within the timeout")


@pytest.mark.slow
def test_interrupt_resume_and_a_final_model_that_generates(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))  # `latest` below is this test's run
    run_dir = runs_dir() / "tiny-interrupt"
    process = start_cli("train", "--preset", "demo", "--model", str(tiny_model_dir), "--max-steps", "16",
                        "--run-name", run_dir.name, *TINY_RUN)  # fmt: skip
    wait_for_step(metrics_file(run_dir), process)
    process.send_signal(signal.SIGINT)  # what Ctrl-C does to sqlsft
    out = finish(process)
    assert process.returncode == 130, out
    run = runs.resolve_run(run_dir.name)
    assert run.status == "interrupted", out
    checkpoint = run.checkpoints()[-1]
    assert missing_checkpoint_files(checkpoint) == []
    stopped_at = checkpoint_state(checkpoint).global_step
    assert 1 <= stopped_at < 16 and f"Interrupted {run.name} at step {stopped_at}" in out
    assert f"sqlsft train --resume {run.name}" in out
    assert leftover_processes(run_dir) == []
    assert not run.model_dir.exists()

    process = start_cli("train", "--resume", run.name)
    out = finish(process)
    assert process.returncode == 0, out
    assert f"Resuming run {run.name} from {checkpoint.name}: step {stopped_at} of 16." in out
    run = runs.resolve_run("latest")
    assert run.name == run_dir.name and run.status == "completed" and run.steps == 16
    assert leftover_processes(run_dir) == []
    steps = [row["step"] for row in runs.read_metrics(run_dir) if "loss" in row]
    assert steps[-1] == 16 and min(s for s in steps if s > stopped_at) == stopped_at + 1

    # the run folder has everything the other stages need
    for name in ("config.yaml", "accelerate.yaml", "launch.sh", "train.log", "metrics.jsonl", "status.json"):
        assert (run_dir / name).is_file(), name
    log = (run_dir / "train.log").read_text()
    assert "end with an unmasked end of turn" in log
    rows = [row for row in runs.read_metrics(run_dir) if "loss" in row]
    assert all(
        r["tokens_per_s"] and r["learning_rate"] is not None and r["peak_memory_gib"] for r in rows[1:]
    )
    status = json.loads((run_dir / "status.json").read_text())
    assert status["final_loss"] == pytest.approx(rows[-1]["loss"], abs=1e-3) and status["exit_code"] == 0

    # the final model folder loads, generates and stops on the end of turn
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = run.model_dir
    assert (model_dir / "chat_template.jinja").is_file()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert end_of_turn in generation["eos_token_id"]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "How many rows?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )  # fmt: skip
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]

    # and nothing is left to resume
    assert "completed: nothing left to train" in one_error_line(invoke("train", "--resume", "latest"))


@pytest.mark.slow
def test_two_cpu_processes_through_accelerate_launch(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    run_dir = runs_dir() / "tiny-ddp"
    process = start_cli("train", "--preset", "demo", "--model", str(tiny_model_dir), "--max-steps", "3",
                        "--cpu-processes", "2", "--run-name", run_dir.name, *TINY_RUN)  # fmt: skip
    out = finish(process)
    assert process.returncode == 0, out
    assert "2 CPU processes, DDP over gloo" in out
    start = next(row for row in runs.read_metrics(run_dir) if row.event == MetricsEvent.START)
    assert start["world_size"] == 2 and start["backend"] == "gloo"
    # rank 0 alone reports metrics and writes one model
    assert [row["step"] for row in runs.read_metrics(run_dir) if "loss" in row] == [1, 2, 3]
    assert len(list((run_dir / "model").glob("*.safetensors"))) == 1
    assert runs.resolve_run(run_dir.name).status == "completed"
    assert leftover_processes(run_dir) == []


def test_progress_view_rich_on_a_terminal_and_plain_lines_otherwise(tmp_path):
    import io

    from rich.console import Console

    from sqlsft.cli.views.train import ConsoleTrainView

    lines = [
        {"event": "data", "rows": 90, "dropped_overlong": 10, "max_length": 256},
        {"event": "start", "step": 0, "max_steps": 4, "time": 100.0},
        *(
            {
                "step": s,
                "max_steps": 4,
                "loss": 2.0 / s,
                "tokens_per_s": 1234.5,
                "peak_memory_gib": 1.5,
                "memory": "cpu-rss",
                "time": 100.0 + s,
            }
            for s in (1, 2, 3, 4)
        ),
        {"event": "checkpoint", "step": 4},
        {"event": "note", "text": "<end_of_turn> (id 106) was untrained in this model"},
    ]
    for terminal in (False, True):
        run_dir = tmp_path / f"tty-{terminal}"
        run_dir.mkdir()
        out = io.StringIO()
        view = ConsoleTrainView(Console(file=out, force_terminal=terminal, width=120))
        follower = MetricsFollower(run_dir)
        view.progress_started(0)
        with open(metrics_file(run_dir), "w") as handle:
            handle.write(
                "\n".join(json.dumps(line) for line in lines) + "\n" + '{"step": 5, "lo'
            )  # torn line
        view.progress(follower.new_rows())
        assert follower.new_rows() == []  # the torn line waits for its end
        view.progress_stopped()
        text = out.getvalue()
        assert (view.step, view.total, len(view.rows)) == (4, 4, 4)
        assert "10 rows longer than max_length=256 left out" in text and "checkpoint saved at step 4" in text
        assert "<end_of_turn> (id 106) was untrained" in text
        if terminal:
            assert "4/4" in text and "loss 0.5000" in text and "1,234 tok/s" in text and "RSS 1.5 GiB" in text
        else:
            assert (
                "step 1/4 (25%) loss 2.0000 1,234 tok/s RSS 1.5 GiB" in text
            )  # the first line is always shown
            assert "step 4/4 (100%) loss 0.5000" in text and "eta 0:00" in text


def test_summary_survives_metrics_with_wrong_types(tmp_path):
    from sqlsft.runs.metrics import read_metrics
    from sqlsft.train.supervise import summarize

    rows = [
        {"event": "start", "step": 0, "time": "soon"},
        {"step": 1, "loss": "high", "time": 101.0},
        {"step": "two", "loss": 1.0, "time": 102.0},
        {"step": 3, "max_steps": 3, "loss": 0.5, "num_tokens": 300, "peak_memory_gib": [1], "time": 103.0},
    ]
    metrics_file(tmp_path).write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    summary = summarize(read_metrics(tmp_path))
    assert (summary.steps, summary.max_steps, summary.first_loss, summary.final_loss) == (3, 3, 0.5, 0.5)
    assert summary.tokens_per_s is None and summary.peak_memory_gib is None
