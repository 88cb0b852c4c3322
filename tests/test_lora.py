"""LoRA and QLoRA: the presets, the checks before a launch, the dry run's estimate, and real LoRA runs of the
tiny Gemma 3 through accelerate (interrupted, resumed, merged, served, evaluated; and kept unmerged)."""

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import Hardware
from sqlsft.common.paths import runs_dir
from sqlsft.runs import registry as runs
from sqlsft.runs.checkpoints import checkpoint_state, missing_checkpoint_files
from sqlsft.train.adapter import adapter_dir, peft_and_quantization
from sqlsft.train.config import resolve_config
from sqlsft.train.options import TrainOptions
from tests.cli_runner import invoke, one_error_line, run_process
from tests.test_train import finish, leftover_processes, start_cli

NO_GPU = Hardware(gpus=[], cpu_cores=2)
REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = Path(os.environ.get("SQLSFT_VLLM_CPU_VENV", REPO / ".venv-vllm-cpu")) / "bin" / "python"
# The lora preset on the tiny model, made quick for the CPU: builtin rows (~800 tokens with its byte-level
# tokenizer), one row per step, fp32, no gradient checkpointing.
TINY_LORA = ["--dataset", "builtin", "--set", "num_rows=120", "--set", "max_length=1024", "--set", "bf16=false",
             "--set", "dtype=float32", "--set", "per_device_train_batch_size=1", "--set", "dataset_num_proc=1",
             "--set", "gradient_checkpointing=false", "--set", "attn_implementation=sdpa"]  # fmt: skip


def wait_for_log(log: Path, text: str, process, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"sqlsft exited before '{text}' was logged:\n" + process.stdout.read())
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"'{text}' never logged within {timeout} s")


# ---------------------------------------------------------------- presets and checks


def test_lora_and_qlora_presets_are_trl_peft_and_bitsandbytes_configs(tmp_path):
    from peft import LoraConfig
    from trl import ModelConfig, SFTConfig

    lora = resolve_config(preset="lora")
    assert lora.uses_peft and not lora.quantized
    assert {k: lora.model[k] for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")} == {
        "lora_r": 32, "lora_alpha": 16, "lora_dropout": 0.1, "lora_target_modules": ["all-linear"],
    }  # fmt: skip
    assert lora.training["learning_rate"] == 2e-4 and lora.model["dtype"] == "bfloat16"
    peft_config, quantization = peft_and_quantization(lora)
    assert isinstance(peft_config, LoraConfig) and quantization is None
    assert (peft_config.r, peft_config.lora_alpha, peft_config.target_modules) == (32, 16, "all-linear")

    qlora = resolve_config(preset="qlora")
    assert qlora.uses_peft and qlora.quantized
    peft_config, quantization = peft_and_quantization(qlora)
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert str(quantization.bnb_4bit_compute_dtype).endswith("bfloat16")  # computes in the training dtype
    for config in (lora, qlora):
        SFTConfig(output_dir=str(tmp_path), use_cpu=True, **config.training)
        ModelConfig(**config.model)
    # TRL's own spelling of one target works on the command line too
    one = resolve_config(preset="lora", overrides=["lora_target_modules=q_proj"])
    assert one.model["lora_target_modules"] == ["q_proj"]


def test_qlora_without_a_gpu_is_refused_in_one_line_before_anything_runs(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    result = invoke("train", "--preset", "qlora", "--model", str(tiny_model_dir))
    line = one_error_line(result)
    assert "needs a CUDA GPU" in line and "--preset lora" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

    from sqlsft.bench.train import skip_reason

    assert "needs a CUDA GPU" in skip_reason(resolve_config(preset="qlora"), 1, NO_GPU)
    assert skip_reason(resolve_config(preset="lora"), 1, NO_GPU) is None


def test_what_makes_no_sense_for_an_adapter_is_refused():
    with pytest.raises(SqlsftError, match="cannot be trained itself"):
        resolve_config(preset="demo", overrides=["load_in_4bit=true"])
    with pytest.raises(SqlsftError, match="--no-merge keeps a LoRA adapter"):
        resolve_config(preset="demo", merge_adapter=False)
    assert resolve_config(preset="lora", merge_adapter=False).as_dict()["merge_adapter"] is False
    assert "merge_adapter" not in resolve_config(preset="lora").as_dict()
    line = one_error_line(invoke("train", "--resume", "latest", "--no-merge"))
    assert "drop --no-merge" in line


# ---------------------------------------------------------------- the dry run's estimate


def test_dry_run_shows_trainable_parameters_and_memory_per_process(tiny_model_dir):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from sqlsft.train.supervise import train

    plan = train(
        TrainOptions(preset="lora", model=str(tiny_model_dir), dry_run=True, overrides=["bf16=false"])
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    total = sum(p.numel() for p in model.parameters())
    peft_config, _ = peft_and_quantization(resolve_config(preset="lora"))
    trainable, _ = get_peft_model(model, peft_config).get_nb_trainable_parameters()
    notes = "\n".join(plan.notes)
    assert f"trainable parameters: {trainable:,} of {total:,}" in notes, notes
    assert "LoRA r=32 on all-linear" in notes and "memory per process (estimate, 1 process): about" in notes


def test_memory_estimates_for_gemma_3_1b_full_lora_and_qlora():
    """Gemma 3 1B built from its config on the meta device: about 1.0 B parameters; LoRA r=32 trains ~1.3%;
    QLoRA's base takes well under half of LoRA's bf16 base."""
    from transformers import Gemma3TextConfig

    from sqlsft.train.estimate import estimate_memory, model_shape

    gemma_1b = Gemma3TextConfig(
        vocab_size=262_144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, architectures=["Gemma3ForCausalLM"],
    )  # fmt: skip
    figures = {}
    for preset in ("baseline", "lora", "qlora"):
        config = resolve_config(preset=preset)
        shape = model_shape(gemma_1b, config)
        figures[preset] = (shape, estimate_memory(shape, config))
    full, lora, qlora = (figures[p] for p in ("baseline", "lora", "qlora"))
    assert 0.95e9 < full[0].total_params < 1.05e9 and full[0].trainable_params == full[0].total_params
    assert 0.005 < lora[0].trainable_params / lora[0].total_params < 0.03
    assert lora[0].trainable_params == qlora[0].trainable_params
    assert full[1].training_state_gib > 10 * lora[1].training_state_gib
    assert qlora[1].weights_gib < 0.6 * lora[1].weights_gib  # the 262k embedding stays in bf16
    assert full[1].activations_gib == lora[1].activations_gib > 0
    four_gpus = estimate_memory(full[0], resolve_config(preset="baseline"), processes=4, fsdp=True)
    assert four_gpus.weights_gib == pytest.approx(full[1].weights_gib / 4)


# ---------------------------------------------------------------- real LoRA runs through accelerate launch


@pytest.mark.slow
def test_a_lora_run_resumes_then_merges_serves_and_evaluates(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    run_dir = runs_dir() / "tiny-lora"
    process = start_cli("train", "--preset", "lora", "--model", str(tiny_model_dir), "--max-steps", "6",
                        "--run-name", run_dir.name, *TINY_LORA)  # fmt: skip
    # Ctrl-C once the worker is set up: it checkpoints after the step it is in (tiny steps are quick, so
    # waiting for a logged step could let the run end first)
    wait_for_log(run_dir / "train.log", "labels checked", process)
    process.send_signal(signal.SIGINT)
    out = finish(process)
    assert process.returncode == 130, out
    run = runs.resolve_run(run_dir.name)
    assert run.status == "interrupted", out
    checkpoint = run.checkpoints()[-1]
    assert missing_checkpoint_files(checkpoint) == []
    assert (checkpoint / "adapter_model.safetensors").is_file()  # a LoRA checkpoint holds the adapter only
    assert not (checkpoint / "model.safetensors").exists()
    stopped_at = checkpoint_state(checkpoint).global_step
    assert 1 <= stopped_at < 6

    process = start_cli("train", "--resume", run.name)
    out = finish(process)
    assert process.returncode == 0, out
    assert f"Resuming run {run.name} from {checkpoint.name}: step {stopped_at} of 6." in out
    run = runs.resolve_run(run.name)
    assert run.status == "completed" and run.steps == 6
    assert leftover_processes(run_dir) == []
    steps = [row["step"] for row in runs.read_metrics(run_dir) if "loss" in row]
    assert steps[-1] == 6 and min(s for s in steps if s > stopped_at) == stopped_at + 1
    assert "LoRA: 65,536 trainable parameters" in (run_dir / "train.log").read_text()

    # adapter/ and the merged model/: merged logits equal base + adapter on a batch
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (adapter_dir(run_dir) / "adapter_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(run.model_dir)
    batch = tokenizer(
        ["SELECT name FROM customers;", "How many rows are there?"], return_tensors="pt", padding=True
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    merged = AutoModelForCausalLM.from_pretrained(run.model_dir)
    with torch.no_grad():
        base_logits = base(**batch).logits
        adapted_logits = PeftModel.from_pretrained(base, adapter_dir(run_dir))(**batch).logits
        merged_logits = merged(**batch).logits
    assert (adapted_logits - base_logits).abs().max() > 1e-3  # the adapter learned something
    torch.testing.assert_close(merged_logits, adapted_logits, rtol=1e-4, atol=1e-4)
    assert merged.dtype == torch.float32 and not any("lora" in name for name, _ in merged.named_parameters())
    generation = json.loads((run.model_dir / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in generation["eos_token_id"]
    assert (run.model_dir / "chat_template.jinja").is_file()

    # the merged run serves and evaluates like a full one
    result = run_process("eval", run.name, "--engine", "transformers", "--limit", "3", "--max-tokens", "8",
                         "-j", "2")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(next(run_dir.glob("eval/test-*/report.json")).read_text())
    assert report["examples"] == 3 and report["run"] == run.name, report


@pytest.mark.slow
def test_no_merge_keeps_the_adapter_which_serve_passes_to_vllm_and_trackio_logs_locally(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    run_dir = runs_dir() / "tiny-lora-adapter"
    result = run_process("train", "--preset", "lora", "--model", str(tiny_model_dir), "--max-steps", "2",
                         "--run-name", run_dir.name, "--no-merge", "--report-to", "trackio", *TINY_LORA)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert runs.resolve_run(run_dir.name).status == "completed"
    assert "trackio: logging locally (no account)" in result.stdout
    # trackio logged each step locally, under project sqlsft, with no account
    with sqlite3.connect(tmp_path / "trackio" / "sqlsft.db") as db:
        logged = db.execute("SELECT count(*) FROM metrics WHERE run_name = ?", (run_dir.name,)).fetchone()[0]
    assert logged >= 2
    assert (adapter_dir(run_dir) / "adapter_model.safetensors").is_file() and not (run_dir / "model").exists()
    assert (adapter_dir(run_dir) / "chat_template.jinja").is_file()

    line = one_error_line(run_process("serve", run_dir.name, "--engine", "transformers", "--dry-run"))
    assert "kept only its LoRA adapter" in line and "--engine vllm" in line
    if not VLLM_PYTHON.exists():
        pytest.skip(f"no vLLM-CPU environment at {VLLM_PYTHON.parent.parent} (scripts/setup.sh --vllm-cpu)")
    plan = run_process("serve", run_dir.name, "--engine-python", str(VLLM_PYTHON), "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    command = " ".join(plan.stdout.split())
    assert f"--model {tiny_model_dir}" in command and "--served-model-name local-base" in command
    assert f"--enable-lora --lora-modules local={adapter_dir(run_dir)} --max-lora-rank 32" in command
