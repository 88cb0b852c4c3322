"""`sqlsft serve MODEL` starts a server; `sqlsft server status|logs|stop` manage the running ones."""

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.serve.engines.vllm import VLLM_PYTHON_ENV

server_app = typer.Typer(
    help="Servers started by `sqlsft serve`: status (with a live health check), logs, stop.",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")

ENGINE_HELP = (
    "auto (vLLM when a GPU and vLLM are present; without a GPU llama.cpp when it is installed and a GGUF is at "
    "hand: a .gguf, embedded, a run's export; else transformers), vllm, transformers or llama.cpp."
)
QUANT_HELP = "llama.cpp: which GGUF export of the run to serve (q8_0, q4_k_m, f16, bf16; default: the newest, else q8_0 made now)."
PORT_HELP = "Server port (default: the only running server)."


def _gpus(value: str | None) -> int | None:
    if value is None:
        return None
    if value == "all":
        from sqlsft.common.hardware import gpu_count

        return max(gpu_count(), 1)
    try:
        count = int(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a number of GPUs (use N or all).") from None
    if count < 1:
        raise typer.BadParameter("use 1 or more GPUs.")
    return count


@app.command(
    "serve",
    context_settings={"allow_extra_args": True},
    epilog="Manage running servers with `sqlsft server status|logs|stop`. "
    "Engine arguments go after `--`, e.g. `sqlsft serve latest -- --dtype float32`.",
)
def serve_command(
    ctx: typer.Context,
    model: str = typer.Argument(
        "latest",
        help="`latest` (newest completed run), a run name, a model or checkpoint folder, a hub id, `embedded`, "
        "or a .gguf file (llama.cpp).",
    ),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it (use --api-key)."
    ),
    model_name: str = typer.Option("local", "--model-name", help="Model name clients ask for."),
    served_model_name: str | None = typer.Option(
        None, "--served-model-name", hidden=True, help="Old spelling of --model-name."
    ),
    engine: str = typer.Option("auto", "--engine", help=ENGINE_HELP),
    quant: str = typer.Option(None, "--quant", help=QUANT_HELP),
    engine_python: str = typer.Option(
        None,
        "--engine-python",
        help=f"Python of the engine's environment (vLLM: also ${VLLM_PYTHON_ENV}; "
        "found without either when `sqlsft engines install vllm` made it).",
    ),
    gpus: str = typer.Option(
        None,
        "--gpus",
        "--tensor-parallel-size",
        help="GPUs to shard the model over (vLLM tensor parallel; llama.cpp: every layer on the GPU), or all.",
    ),
    max_model_len: int = typer.Option(
        2048, "--max-model-len", help="Longest prompt + answer in tokens (vLLM; llama.cpp's context size)."
    ),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar="SQLSFT_API_KEY",
        help="Key clients must send (vLLM, llama.cpp). Never logged.",
    ),
    detach: bool = typer.Option(False, "--detach", help="Keep running in the background and return."),
    detach_short: bool = typer.Option(False, "-d", hidden=True, help="Old short form of --detach."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for the engine's /health."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the engine command line; start nothing."),
) -> None:
    """Serve a model through an OpenAI-compatible API (vLLM, transformers serve or llama.cpp) with its training chat template."""
    from sqlsft.cli.views.serve import ServeView, print_dry_run
    from sqlsft.serve.lifecycle import serve
    from sqlsft.serve.plan import plan_server

    extra = list(ctx.args)
    if model.startswith("-"):  # `sqlsft serve -- --flag`: the first pass-through argument landed on MODEL
        extra.insert(0, model)
        model = "latest"
    options = dict(
        engine=engine,
        port=port,
        host=host,
        model_name=served_model_name or model_name,
        max_model_len=max_model_len,
        gpus=_gpus(gpus),
        api_key=api_key,
        engine_python=engine_python,
        extra_args=extra,
        quant=quant,
    )
    if dry_run:
        print_dry_run(plan_server(model, make_gguf=False, **options), console)
        return
    code = serve(
        model, detach=detach or detach_short, progress=ServeView(console), timeout_s=timeout, **options
    )
    raise typer.Exit(code)


@server_app.command("status")
def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print the servers as JSON (every field, no table)."),
) -> None:
    """Running servers with a live health check (every value whole when piped)."""
    from sqlsft.cli.views.serve import print_statuses
    from sqlsft.serve.manage import server_statuses

    print_statuses(server_statuses(), console, as_json=as_json)


@server_app.command("logs")
def logs_command(
    port: int = typer.Option(None, "--port", help=PORT_HELP),
    lines: int = typer.Option(50, "--lines", "-n", help="How many of the last lines to show."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines until the server stops."
    ),
) -> None:
    """The engine's log (also for a server that already stopped or crashed)."""
    from sqlsft.serve.manage import show_logs

    try:
        for line in show_logs(port, lines, follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass


@server_app.command("stop")
def stop_command(
    port: int = typer.Option(None, "--port", help=PORT_HELP),
    all_servers: bool = typer.Option(False, "--all", help="Stop every server sqlsft started."),
) -> None:
    """Stop a server: SIGTERM to its process group, SIGKILL after a grace period."""
    from sqlsft.serve.manage import stop

    for stopped in stop(port, all_servers):
        err_console.print(f"stopped the server on port {stopped}", highlight=False)
