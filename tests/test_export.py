"""GGUF export: plans and bad input (quick), then real exports through llama.cpp (slow, need llama-cpp-python).

The slow tests use a tiny Gemma 3 built here with a SentencePiece tokenizer.model trained on the fly (600
pieces, Gemma's special-token layout): the converter takes it by its own hub route in seconds. The
suite's tiny model (a byte-level BPE tokenizer.json) cannot go through the converter's tokenizer detection.
"""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.export import converter as export_converter
from sqlsft.export import gguf as export_gguf
from sqlsft.export.modelfile import ModelCard, model_card, modelfile, write_export_texts
from sqlsft.export.verify import check_parity, require_parity
from tests.cli_runner import invoke, one_error_line
from tests.tiny_gguf_model import build_tiny_spm_gemma, llama_cpp_or_skip

END_OF_TURN = "<end_of_turn>"
CONVERSATIONS = [
    [
        {"role": "system", "content": "You are an expert SQL query generator."},
        {"role": "user", "content": "How many rows are there?\n\nCREATE TABLE t (id INT, name VARCHAR(50));"},
    ],
    [{"role": "user", "content": "SELECT name FROM customers WHERE city = 'Paris';"}],
    [
        {"role": "system", "content": "Answer with SQL only."},
        {"role": "user", "content": "List the names of customers from 'Paris', ordered by name."},
        {"role": "assistant", "content": "SELECT name FROM customers ORDER BY name;"},
        {"role": "user", "content": "Only the first 5."},
    ],
]


# ---------------------------------------------------------------- quick: plans, bad input, texts


def _fake_model(folder: Path, with_weights: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["Gemma3ForCausalLM"], "dtype": "bfloat16"})
    )
    (folder / "chat_template.jinja").write_text("{{ bos_token }}")
    (folder / "tokenizer.json").write_text(
        json.dumps({"added_tokens": [{"id": 106, "content": END_OF_TURN}], "model": {"vocab": {}}})
    )
    if with_weights:
        (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    return folder


def test_plan_q8_0_converts_then_quantizes(tmp_path):
    plan = export_gguf.plan_export(_fake_model(tmp_path / "m"), tmp_path / "out", "q8_0", name="demo")
    assert plan.end_of_turn_id == 106 and plan.vocab_from is None
    assert [p.name for p in (plan.converted, plan.output)] == ["demo-f16.gguf", "demo-q8_0.gguf"]
    convert, quantize = plan.lines()
    assert "sqlsft.export.gguf convert" in convert and "--outtype f16" in convert
    assert "--end-of-turn-id 106" in convert and "chat_template.jinja" in convert
    assert quantize.endswith("q8_0 --threads " + quantize.split()[-1])


def test_plan_bf16_is_one_step(tmp_path):
    plan = export_gguf.plan_export(_fake_model(tmp_path / "m"), tmp_path / "out", "bf16")
    assert len(plan.commands) == 1 and plan.converted == plan.output and "--outtype bf16" in plan.lines()[0]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda m: None, "Unknown quantization"),
        (lambda m: (m / "model.safetensors").unlink(), "has no weights"),
        (lambda m: (m / "config.json").unlink(), "no config.json"),
        (lambda m: (m / "chat_template.jinja").unlink(), "no chat_template.jinja"),
        (
            lambda m: (m / "tokenizer.json").write_text('{"added_tokens": [], "model": {"vocab": {}}}'),
            "no end-of-turn",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path, setup, message):
    model = _fake_model(tmp_path / "m")
    setup(model)
    quant = "q5_k" if message == "Unknown quantization" else "q8_0"
    with pytest.raises(SqlsftError) as error:
        export_gguf.plan_export(model, tmp_path / "out", quant)
    assert message in error.value.message and "\n" not in str(error.value)


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    model = _fake_model(tmp_path / "m")
    (model / "model.safetensors").write_bytes(b"\0" * 10_000_000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    with pytest.raises(SqlsftError, match="Not enough disk"):
        export_gguf.plan_export(model, tmp_path / "out", "q4_k_m")


def test_converter_is_unpacked_from_the_source_package(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / f"llama_cpp_python-{export_converter.LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"
    for name in (
        "convert_hf_to_gguf.py",
        "conversion/__init__.py",
        "gguf-py/gguf/__init__.py",
        "src/llama.cpp",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("# stand-in\n")
    sdist = tmp_path / "llama_cpp_python.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        archive.add(root.parent.parent, arcname=root.parent.parent.name)
    folder = export_converter.fetch_converter(sdist=sdist, log=lambda line: None)
    assert export_converter.converter_ready(folder) and not (folder / "src").exists()
    command = export_converter.download_command(tmp_path)
    assert (
        command[-1] == f"llama-cpp-python=={export_converter.LLAMA_CPP_PYTHON_VERSION}" and ":all:" in command
    )


def test_modelfile_and_card(tmp_path):
    text = modelfile("demo-q4_k_m.gguf")
    assert text.splitlines()[1] == "FROM ./demo-q4_k_m.gguf"
    assert 'PARAMETER stop "<end_of_turn>"' in text and "PARAMETER temperature 0" in text
    assert "<bos>" not in text  # Ollama adds BOS itself
    card = ModelCard(
        name="demo",
        gguf_file="demo-q4_k_m.gguf",
        quant="q4_k_m",
        base_model="embedded",
        dataset="builtin",
        split="test",
        preset="demo",
        steps=20,
        final_loss=0.31,
        original_score=0.82,
        export_score=0.81,
        eval_rows=100,
        prompt_messages=CONVERSATIONS[0],
        prompt_text="<bos><start_of_turn>user\n...",
    )
    readme = model_card(card)
    for needle in (
        "82.0%",
        "81.0%",
        "demo-q4_k_m.gguf",
        "ollama create demo",
        "llama_cpp.server",
        "Preset: demo",
    ):
        assert needle in readme
    written = write_export_texts(tmp_path / "gguf", card)
    assert all(p.is_file() for p in written)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "onnx"], "Unknown export format 'onnx'"),
        (["--quant", "q3"], "Unknown quantization 'q3'"),
        (["--threads", "0"], "--threads 0 must be 1 or more"),
    ],
)
def test_export_cli_bad_options_are_one_line(tmp_path, args, message):
    result = invoke("export", str(_fake_model(tmp_path / "m")), *args)
    assert message in one_error_line(result)


def test_export_cli_bad_models_are_one_line(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert "already a GGUF file" in one_error_line(invoke("export", str(gguf)))
    no_weights = _fake_model(tmp_path / "no-weights", with_weights=False)
    assert "no weights" in one_error_line(invoke("export", str(no_weights), "--dry-run"))
    assert "No model folder, run or hub id named" in one_error_line(invoke("export", "no-such-run"))


def test_export_cli_dry_run_prints_the_commands(tmp_path):
    result = invoke("export", str(_fake_model(tmp_path / "m")), "--quant", "q4_k_m", "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "sqlsft.export.gguf convert" in lines[1] and "--outtype f16" in lines[1]
    assert "sqlsft.export.gguf quantize" in lines[2] and lines[2].split()[-3] == "q4_k_m"
    assert not (tmp_path / "m" / "export").exists()


def test_a_run_trained_from_embedded_takes_the_package_tokenizer(tmp_path, monkeypatch):
    """The converter cannot read the embedded model's tokenizer.json: its run exports with the tokenizer keys of
    the GGUF it came from, the package's (the plan says so)."""
    from sqlsft.export.export_model import plan_model_export
    from sqlsft.runs.status import status_file

    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    run = tmp_path / "runs" / "20260101-000000-demo"
    _fake_model(run / "model")
    status_file(run).write_text(json.dumps({"status": "completed", "preset": "demo", "model": "embedded"}))
    target, plan, vocab_command = plan_model_export(run / "model", "q8_0")
    assert target.folder == run / "export" / "gguf" and plan.output.name == "20260101-000000-demo-q8_0.gguf"
    assert vocab_command is None and plan.vocab_from == export_gguf.embedded_tokenizer_gguf()
    assert f"--vocab-from {plan.vocab_from}" in plan.lines()[0]


# ---------------------------------------------------------------- slow: real exports through llama.cpp


@pytest.fixture(scope="module")
def converter():
    return llama_cpp_or_skip()


@pytest.fixture(scope="module")
def tiny_spm_model(tmp_path_factory):
    return build_tiny_spm_gemma(tmp_path_factory.mktemp("tiny-spm-gemma"))


@pytest.fixture(scope="module")
def stopping_model(tmp_path_factory):
    return build_tiny_spm_gemma(tmp_path_factory.mktemp("tiny-spm-stopper"), stop_at_once=True)


@pytest.mark.slow
def test_tiny_export_passes_parity_and_quantizes(converter, tiny_spm_model, tmp_path):
    plan = export_gguf.plan_export(tiny_spm_model, tmp_path / "gguf", "q8_0", name="tiny", threads=2)
    result = export_gguf.run_export(plan, log=lambda line: None)
    assert [f.name for f in result.files] == ["tiny-f16.gguf", "tiny-q8_0.gguf"]
    report = check_parity(plan.converted, tiny_spm_model, CONVERSATIONS, generation_tokens=8, threads=2)
    require_parity(report)
    assert all(p.matched_tokens == 8 for p in report.prompts), report.to_dict()
    quantized = check_parity(plan.output, tiny_spm_model, CONVERSATIONS, generation_tokens=0, threads=2)
    assert quantized.ok and quantized.gguf_eot_id == quantized.end_of_turn_id


@pytest.mark.slow
def test_a_run_folder_without_tokenizer_model_takes_its_base_tokenizer(converter, tiny_spm_model, tmp_path):
    """transformers 5 saves tokenizer.json only: a run trained from a hub Gemma 3 has no tokenizer.model, and
    the converter refuses it. Its base model's tokenizer, converted vocabulary-only, is the way through."""
    from transformers import AutoTokenizer

    run = tmp_path / "run-model"
    run.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(tiny_spm_model / name, run / name)
    AutoTokenizer.from_pretrained(tiny_spm_model).save_pretrained(run)
    assert not (run / "tokenizer.model").exists()
    out = tmp_path / "gguf"
    with pytest.raises(SqlsftError, match="pre-tokenizer was not recognized") as error:
        export_gguf.run_export(export_gguf.plan_export(run, out, "f16", threads=2), log=lambda line: None)
    assert "vocab_from" in error.value.hint

    vocab = out / "base-tokenizer.gguf"
    subprocess.run(
        export_gguf.tokenizer_gguf_command(tiny_spm_model, vocab), check=True, cwd=out, capture_output=True
    )
    plan = export_gguf.plan_export(run, out, "f16", vocab_from=vocab, threads=2)
    export_gguf.run_export(plan, log=lambda line: None)
    require_parity(check_parity(plan.output, run, CONVERSATIONS, generation_tokens=8, threads=2))


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["template", "stop token"])
def test_parity_fails_on_a_broken_export(converter, tiny_spm_model, tmp_path, broken):
    plan = export_gguf.plan_export(tiny_spm_model, tmp_path / "gguf", "f16", name="broken", threads=2)
    command = list(plan.commands[0])
    if broken == "template":
        wrong = tmp_path / "wrong.jinja"
        wrong.write_text(
            plan.chat_template.read_text().replace("<start_of_turn>model", "<start_of_turn>assistant")
        )
        command[command.index("--chat-template") + 1] = str(wrong)
    else:
        command[command.index("--end-of-turn-id") + 1] = "1"  # <eos> instead of <end_of_turn>
    export_gguf._run_step(command, tmp_path / "convert.log", "convert", plan.converted)
    report = check_parity(plan.converted, tiny_spm_model, CONVERSATIONS, generation_tokens=0, threads=2)
    expected = "chat template" if broken == "template" else "is not the GGUF's EOS/EOT"
    assert not report.ok and any(expected in p for p in report.problems), report.problems
    with pytest.raises(SqlsftError, match="does not match its model"):
        require_parity(report)


@pytest.mark.slow
def test_served_by_llama_cpp_and_stopped_at_end_of_turn(converter, stopping_model, tmp_path):
    import socket
    import time

    import openai

    plan = export_gguf.plan_export(stopping_model, tmp_path / "gguf", "q8_0", name="stopper", threads=2)
    export_gguf.run_export(plan, log=lambda line: None)
    report = check_parity(plan.converted, stopping_model, CONVERSATIONS, generation_tokens=4, threads=2)
    require_parity(report)
    assert all(p.gguf_generation == [report.end_of_turn_id] for p in report.prompts)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(plan.output),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "2",
            "--n_ctx",
            "512",
            "--model_alias",
            "local",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "server.log"
                ).read_text()
                time.sleep(0.2)
        answer = client.chat.completions.create(
            model="local", messages=CONVERSATIONS[0], temperature=0, max_tokens=16
        )
        choice = answer.choices[0]
        assert choice.finish_reason == "stop" and choice.message.content == ""
        assert answer.usage.completion_tokens <= 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_embedded_tokenizer_gives_llama_cpp_ids(converter, tmp_path):
    """The embedded model trains with the ids llama.cpp (and so the browser) gives for the same prompt: the
    transformers tokenizer built from the package GGUF, saved and loaded again as a run saves it, matches
    llama.cpp's own tokenizer on 200 builtin prompts (sqlparse indents schemas with long runs of spaces)
    and on whitespace-heavy text."""
    import llama_cpp
    from transformers import AutoTokenizer

    from sqlsft.data.builtin.generator import generate_builtin_rows
    from sqlsft.data.prompts import load_templates, prompt_completion
    from sqlsft.models.chat_template import gemma3_chat_template
    from sqlsft.models.resolve import gguf_tokenizer

    gguf = export_gguf.embedded_tokenizer_gguf()
    saved = tmp_path / "tokenizer"
    built = gguf_tokenizer(gguf)
    built.chat_template = gemma3_chat_template()
    built.save_pretrained(saved)
    training = AutoTokenizer.from_pretrained(saved)
    templates = load_templates()
    texts = []
    for row in generate_builtin_rows(200, verify=False):
        pair = prompt_completion(templates, row)
        texts.append(training.apply_chat_template(pair["prompt"] + pair["completion"], tokenize=False))
    texts += [" " * n + "x" for n in range(1, 70, 3)] + [
        "a\n    b\t\t c" + " " * 40 + "d",
        "SELECT  *   FROM t",
    ]
    assert sum("  " in text for text in texts) >= 200
    runtime = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    differing = [
        text
        for text in texts
        if training(text, add_special_tokens=False)["input_ids"]
        != runtime.tokenize(text.encode(), add_bos=False, special=True)
    ]
    assert not differing, (
        f"{len(differing)} of {len(texts)} texts tokenize differently, e.g. {differing[0]!r}"
    )


@pytest.mark.slow
def test_export_cli_checks_and_evaluates_both_sides(converter, tiny_spm_model):
    """`sqlsft export FOLDER`: converted, quantized, checked, then the original (transformers serve) and the file
    (llama.cpp) evaluated on the same test rows; the card, Modelfile and export.json say what was found."""
    from sqlsft.export.served import export_target
    from tests.cli_runner import run_process

    result = run_process(
        "export", str(tiny_spm_model), "--quant", "q8_0", "--eval-rows", "3", "--threads", "2",
        "--original-engine", "transformers",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    folder = export_target(tiny_spm_model).folder
    manifest = json.loads((folder / "export.json").read_text())
    assert Path(manifest["file"]) == folder / f"{tiny_spm_model.name}-q8_0.gguf"
    assert all(check["ok"] for check in manifest["parity"]) and manifest["eval_rows"] == 3
    scores = manifest["execution_accuracy"]
    assert isinstance(scores["original"], float) and isinstance(scores["export"], float)
    assert "on 3 test rows" in result.stdout and "sqlsft serve" in result.stdout
    card = (folder / "README.md").read_text()
    assert f"| original (transformers) | {100 * scores['original']:.1f}% |" in card
    assert 'stop "<end_of_turn>"' in (folder / "Modelfile").read_text()
