"""`sqlsft serve --engine llama.cpp`: GGUF checks, the engine choice, the command line, and a tiny exported
model served through the real CLI (status, API key, logs, stop), answered through the openai client and
stopped at end of turn; then evaluated by `sqlsft eval X.gguf`."""

import json
import os
import time
from pathlib import Path

import psutil
import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.serve.gguf_file import check_gguf_file, read_gguf_metadata
from sqlsft.serve.plan import plan_server
from tests.cli_runner import invoke, one_error_line, run_process

API_KEY = "sqlsft-llama-key-0451"
TEMPLATE = "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
SCHEMA = "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2);"


@pytest.fixture(scope="module")
def llama_cpp():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (`uv sync --extra llama`)")


def write_gguf(path: Path, *, template: str | None = TEMPLATE, eos: int | None = 1) -> Path:
    """A header-only GGUF (no tensors): enough for the checks made before a start."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "gemma3")
    writer.add_file_type(7)  # q8_0
    if template is not None:
        writer.add_chat_template(template)
    if eos is not None:
        writer.add_eos_token_id(eos)
    writer.add_token_list(["<pad>", "<eos>", "<bos>"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ------------------------------------------------------------------ quick: checks, choice, command line


def test_gguf_metadata_is_read_without_parsing_arrays(tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf")
    metadata = read_gguf_metadata(gguf)
    assert metadata.chat_template == TEMPLATE and metadata.stop_ids == {"tokenizer.ggml.eos_token_id": 1}
    assert metadata.quant == "q8_0" and metadata.values["tokenizer.ggml.tokens"] == 3  # an array: its length
    checked = check_gguf_file(gguf, "m.gguf")
    assert checked.is_gguf and checked.chat_template == TEMPLATE and checked.template_tokens is None


def test_bad_gguf_input_is_one_line(llama_cpp, tmp_path):
    def error(*args: str) -> str:
        return one_error_line(invoke("serve", *args, "--dry-run"))

    assert "does not exist" in error(str(tmp_path / "missing.gguf"), "--engine", "llama.cpp")
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_text("this is not a GGUF file at all, only text")
    assert "is not a GGUF file" in error(str(not_gguf), "--engine", "llama.cpp")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(write_gguf(tmp_path / "whole.gguf").read_bytes()[:40])
    assert "damaged or cut short" in error(str(cut))
    no_template = write_gguf(tmp_path / "no-template.gguf", template=None)
    assert "has no chat template (tokenizer.chat_template)" in error(
        str(no_template), "--engine", "llama.cpp"
    )
    no_stop = write_gguf(tmp_path / "no-stop.gguf", eos=None)
    assert "names no end-of-generation token" in error(str(no_stop))
    good = write_gguf(tmp_path / "good.gguf")
    for engine in ("transformers", "vllm"):
        assert f"Only --engine llama.cpp serves a .gguf file, not --engine {engine}" in error(
            str(good), "--engine", engine
        )
    assert "is already one file" in error(str(good), "--quant", "q4_k_m")
    with pytest.raises(SqlsftError, match=r"Only --engine llama\.cpp serves --quant"):
        plan_server("latest", engine="transformers", quant="q8_0")


def test_dry_run_prints_the_wrapper_command_without_the_key(llama_cpp, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf")
    result = invoke(
        "serve", str(gguf), "--engine", "llama.cpp", "--port", "8123", "--max-model-len", "512", "--dry-run",
        env={"SQLSFT_API_KEY": API_KEY},
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    command = next(line for line in result.stdout.splitlines() if "llama_cpp_server" in line)
    assert (
        f"-m sqlsft.serve.engines.llama_cpp_server --model {gguf.resolve()} --host 127.0.0.1 --port 8123"
        in command
    )
    assert "--n_ctx 512 --model_alias local --n_threads" in command and "--chat_format" not in command
    assert API_KEY not in result.stdout and "SQLSFT_LLAMA_CPP_API_KEY=***" in result.stdout


def test_auto_picks_llama_cpp_only_for_a_gguf_at_hand(llama_cpp, tiny_model_dir, tmp_path):
    gguf = write_gguf(tmp_path / "m.gguf")
    plan = plan_server(str(gguf))
    assert plan.choice.name == "llama.cpp" and "a .gguf file" in plan.choice.reason
    assert plan.model.path == gguf.resolve() and plan.model.quant == "q8_0"

    embedded = plan_server("embedded", make_gguf=False)  # the package's GGUF: no conversion
    if embedded.choice.name == "llama.cpp":  # (a GPU machine prefers vLLM)
        assert "a GGUF (gemma-3-270m-q4_k_m.gguf)" in embedded.choice.reason
        assert embedded.model.template_tokens == ("<bos>", "<end_of_turn>")
        assert "--chat_template_config" in embedded.command

    folder = plan_server(str(tiny_model_dir))  # a folder with no export: never quantized on its own
    assert folder.choice.name in ("transformers", "vllm") and folder.model.path == tiny_model_dir
    if folder.choice.name == "transformers":
        assert "no GPU" in folder.choice.reason
        assert any("`sqlsft export MODEL` makes a GGUF" in note for note in folder.launch.notes)
    with pytest.raises(SqlsftError, match="has no GGUF export yet"):
        plan_server(str(tiny_model_dir), engine="llama.cpp", make_gguf=False)


# ------------------------------------------------------------------ slow: a real export, served and evaluated


@pytest.fixture(scope="module")
def stopper_gguf(llama_cpp, tmp_path_factory) -> Path:
    """A tiny Gemma 3 whose greedy answer is `<end_of_turn>` (in ../model), exported to q8_0 (~25 s)."""
    from sqlsft.export import gguf as export_gguf
    from tests.tiny_gguf_model import build_tiny_spm_gemma, llama_cpp_or_skip

    llama_cpp_or_skip()
    folder = tmp_path_factory.mktemp("llama-serve")
    model = build_tiny_spm_gemma(folder / "model", stop_at_once=True)
    plan = export_gguf.plan_export(model, folder / "gguf", "q8_0", name="stopper", threads=2)
    export_gguf.run_export(plan, log=lambda line: None)
    return plan.output


def group_left(pid: int) -> list[int]:
    left = []
    for proc in psutil.process_iter():
        try:
            if (proc.pid == pid or os.getpgid(proc.pid) == pid) and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return left


@pytest.mark.slow
def test_gguf_served_through_the_cli_with_a_key_logs_and_stop(stopper_gguf):
    import openai

    from sqlsft.serve import free_port

    port = free_port(start=8460)
    result = run_process(
        "serve", str(stopper_gguf), "--engine", "llama.cpp", "--detach", "--port", str(port), "--timeout", "120",
        env={"SQLSFT_API_KEY": API_KEY},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        status = json.loads(run_process("server", "status", "--json").stdout)
        mine = next(s for s in status if s["port"] == port)
        assert (mine["engine"], mine["health"], mine["api_key_set"]) == ("llama.cpp", "healthy", True)
        assert mine["model"] == str(stopper_gguf.resolve()) and API_KEY not in " ".join(mine["command"])
        assert API_KEY not in " ".join(psutil.Process(mine["pid"]).cmdline())

        url = f"http://127.0.0.1:{port}/v1"
        messages = [{"role": "user", "content": "How many rows are in t?"}]
        with pytest.raises(openai.AuthenticationError):  # 401 without the key
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=60)
        answer = client.chat.completions.create(
            model="local", messages=messages, temperature=0, max_tokens=16
        )
        assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content == ""
        # `sqlsft chat` finds the recorded server and streams from it like from any engine
        from sqlsft.chat.target import resolve_target, stream_answer

        target = resolve_target(None, None, API_KEY)
        assert f":{port}/" in target.url and target.model == "local"
        assert [piece for piece in stream_answer(target, messages, 16) if piece] == []

        logs = run_process("server", "logs", "--port", str(port), "--lines", "2000").stdout
        assert "llama_cpp_server --model" in logs.splitlines()[0] and "POST /v1/chat/completions" in logs
    finally:
        stopped = run_process("server", "stop", "--port", str(port))
    assert stopped.returncode == 0 and f"stopped the server on port {port}" in stopped.stderr
    deadline = time.monotonic() + 20
    while group_left(mine["pid"]) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert group_left(mine["pid"]) == []
    assert not [s for s in json.loads(run_process("server", "status", "--json").stdout) if s["port"] == port]


@pytest.mark.slow
def test_eval_of_a_gguf_through_llama_cpp(stopper_gguf, tmp_path):
    from sqlsft.serve import recorded_servers

    def row(i: int) -> str:
        return json.dumps({
            "id": i, "sql_prompt": f"Question {i} about t?", "sql_context": SCHEMA, "sql": "SELECT COUNT(*) FROM t",
            "sql_complexity": "basic SQL", "sql_task_type": "analytics and reporting",
        })  # fmt: skip

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(row(100 + i) + "\n" for i in range(20)))
    test.write_text("".join(row(i) + "\n" for i in range(2)))
    result = run_process(
        "eval", str(stopper_gguf), "--engine", "llama.cpp", "--dataset", str(train), "--test-file", str(test),
        "--max-tokens", "8", "-j", "1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["examples"] == 2 and report["execution_accuracy"] == 0.0  # it answers nothing, and stops
    assert "llama.cpp" in result.stderr and not recorded_servers()


@pytest.mark.slow
def test_bench_serve_gives_llama_cpp_a_row_per_quant(stopper_gguf, tmp_path):
    from rich.console import Console

    from sqlsft.bench.serve import run_serve_bench
    from sqlsft.cli.views.bench import serve_renderables

    console = Console(record=True, width=200)
    report = run_serve_bench(
        str(stopper_gguf), engines=["llama.cpp"], concurrencies=[1], num_requests=2, max_tokens=4,
        console=console, out_dir=tmp_path,
    )  # fmt: skip
    (row,) = report["results"]
    assert (row["engine"], row["ok"], row["errors"]) == ("llama.cpp q8_0", 2, 0) and row["startup_s"] > 0
    assert report["versions"]["llama-cpp-python"] and json.loads((tmp_path / "serve.json").read_text())
    console.print(serve_renderables(report))
    assert "llama.cpp q8_0" in console.export_text()
    with pytest.raises(SqlsftError, match=r"Only llama\.cpp serves a \.gguf"):
        run_serve_bench(str(stopper_gguf), engines=["transformers"], console=console, out_dir=tmp_path)


def test_bench_ratios_per_llama_cpp_row():
    from sqlsft.bench.serve import _ratios

    rows = [
        {"engine": "vllm", "concurrency": 1, "output_tokens_per_s": 10.0},
        {"engine": "llama.cpp q8_0", "concurrency": 1, "output_tokens_per_s": 31.0},
        {"engine": "llama.cpp q8_0", "concurrency": 8, "output_tokens_per_s": 40.0},
    ]
    assert _ratios(rows, "llama.cpp q8_0", "vllm", [1, 8]) == {"1": 3.1}


@pytest.mark.slow
def test_a_run_is_served_by_its_export(stopper_gguf):
    """A run without an export: auto serves it with transformers, --engine llama.cpp --dry-run says how to make
    one. With one (here the fixture's file, put where `sqlsft export` writes it), both serve that file."""
    import shutil

    from sqlsft.common.paths import runs_dir
    from sqlsft.export.served import export_target
    from sqlsft.runs.status import update_status

    run_dir = runs_dir() / "20260101-000000-stopper"
    shutil.copytree(stopper_gguf.parent.parent / "model", run_dir / "model")
    update_status(run_dir, status="completed", preset="stopper", model="stopper")
    assert "has no GGUF export yet" in one_error_line(
        invoke("serve", run_dir.name, "--engine", "llama.cpp", "--dry-run")
    )
    assert plan_server(run_dir.name).choice.name != "llama.cpp"  # auto never exports on its own

    export = export_target(run_dir / "model").file("q8_0")
    export.parent.mkdir(parents=True)
    shutil.copy(stopper_gguf, export)
    from sqlsft.common.hardware import gpu_count

    for engine in ("llama.cpp",) if gpu_count() else ("auto", "llama.cpp"):  # a GPU machine: auto is vLLM
        plan = plan_server(run_dir.name, engine=engine, make_gguf=False)
        assert (plan.choice.name, plan.model.path, plan.model.quant) == (
            "llama.cpp",
            export.resolve(),
            "q8_0",
        )
        assert plan.model.describe().startswith(run_dir.name)


@pytest.fixture(scope="module")
def chatty_gguf(llama_cpp, tmp_path_factory) -> Path:
    """A tiny random Gemma 3 that talks on (no early end of turn), exported to f16."""
    from sqlsft.export import gguf as export_gguf
    from tests.tiny_gguf_model import build_tiny_spm_gemma, llama_cpp_or_skip

    llama_cpp_or_skip()
    folder = tmp_path_factory.mktemp("llama-chatty")
    model = build_tiny_spm_gemma(folder / "model", seed=1, initializer_range=0.05)  # repeats "SELECT"
    plan = export_gguf.plan_export(model, folder / "gguf", "f16", name="chatty", threads=2)
    export_gguf.run_export(plan, log=lambda line: None)
    return plan.output


@pytest.mark.slow
def test_served_answers_are_greedy_without_a_repeat_penalty(chatty_gguf):
    """An OpenAI client's temperature-0 request gets plain greedy decoding: llama-cpp-python's own server would
    apply repeat_penalty 1.1, top_k 40 and min_p 0.05, which changed 97 of the demo's 100 answers."""
    import llama_cpp
    import openai

    from sqlsft.serve import free_port, running_server

    messages = [{"role": "user", "content": "SELECT name FROM customers WHERE city = 'Paris';"}]
    local = llama_cpp.Llama(model_path=str(chatty_gguf), n_ctx=512, n_threads=2, verbose=False)

    def direct(**sampling) -> str:
        answer = local.create_chat_completion(messages=messages, temperature=0, max_tokens=24, **sampling)
        return answer["choices"][0]["message"]["content"]

    greedy = direct(repeat_penalty=1.0, top_k=0, min_p=0.0)
    penalised = direct(repeat_penalty=1.1, top_k=40, min_p=0.05)
    local.close()
    assert greedy != penalised, "the model must repeat itself for this test to tell the two apart"
    with running_server(str(chatty_gguf), engine="llama.cpp", port=free_port(start=8470)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0, timeout=60)
        served = client.chat.completions.create(
            model="local", messages=messages, temperature=0, max_tokens=24
        )
        asked = client.chat.completions.create(
            model="local",
            messages=messages,
            temperature=0,
            max_tokens=24,
            extra_body={"repeat_penalty": 1.1, "top_k": 40, "min_p": 0.05},
        )
    assert served.choices[0].message.content == greedy
    assert asked.choices[0].message.content == penalised  # a request that sets them still gets them
