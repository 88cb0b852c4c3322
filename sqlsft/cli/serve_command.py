"""`sqlsft serve MODEL` starts a server; `sqlsft server status|logs|stop` manage the running ones;
`sqlsft bench serve` measures them."""

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.common.environment import VLLM_PYTHON_ENV

server_app = typer.Typer(
    help="Servers started by `sqlsft serve`: status (with a live health check), logs, stop.",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")

ENGINE_HELP = "auto (vLLM when a GPU and vLLM are present, else transformers), vllm or transformers."


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
        help="`latest` (newest completed run), a run name, a model or checkpoint folder, or a hub id.",
    ),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it (use --api-key)."
    ),
    served_model_name: str = typer.Option("local", "--served-model-name", help="Model name clients ask for."),
    engine: str = typer.Option("auto", "--engine", help=ENGINE_HELP),
    engine_python: str = typer.Option(
        None, "--engine-python", help=f"Python of the engine's environment (vLLM: also ${VLLM_PYTHON_ENV})."
    ),
    gpus: str = typer.Option(
        None,
        "--gpus",
        "--tensor-parallel-size",
        help="GPUs to shard the model over (vLLM tensor parallel), or all.",
    ),
    max_model_len: int = typer.Option(
        2048, "--max-model-len", help="Longest prompt + answer in tokens (vLLM)."
    ),
    api_key: str = typer.Option(
        None, "--api-key", envvar="SQLSFT_API_KEY", help="Key clients must send (vLLM). Never logged."
    ),
    detach: bool = typer.Option(False, "--detach", "-d", help="Keep running in the background and return."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for the engine's /health."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the engine command line; start nothing."),
) -> None:
    """Serve a model through an OpenAI-compatible API (vLLM or transformers serve) with its training chat template."""
    from sqlsft.serve.server import serve

    extra = list(ctx.args)
    if model.startswith("-"):  # `sqlsft serve -- --flag`: the first pass-through argument landed on MODEL
        extra.insert(0, model)
        model = "latest"
    code = serve(
        model,
        detach=detach,
        dry_run=dry_run,
        console=console,
        engine=engine,
        port=port,
        host=host,
        served_model_name=served_model_name,
        max_model_len=max_model_len,
        gpus=_gpus(gpus),
        api_key=api_key,
        engine_python=engine_python,
        extra_args=extra,
        timeout_s=timeout,
    )
    raise typer.Exit(code)


@server_app.command("status")
def status_command() -> None:
    """Running servers with a live health check."""
    from sqlsft.serve.server import status_table

    table = status_table()
    if table is None:
        console.print(
            "No sqlsft server is running. Start one with `sqlsft serve` (add --detach to background it)."
        )
        return
    console.print(table)


@server_app.command("logs")
def logs_command(
    port: int = typer.Option(None, "--port", help="Server port (default: the only running server)."),
    lines: int = typer.Option(50, "--lines", "-n", help="How many of the last lines to show."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines until the server stops."
    ),
) -> None:
    """The engine's log (also for a server that already stopped or crashed)."""
    from sqlsft.serve.server import show_logs

    try:
        for line in show_logs(port, lines, follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass


@server_app.command("stop")
def stop_command(
    port: int = typer.Option(None, "--port", help="Server port (default: the only running server)."),
    all_servers: bool = typer.Option(False, "--all", help="Stop every server sqlsft started."),
) -> None:
    """Stop a server: SIGTERM to its process group, SIGKILL after a grace period."""
    from sqlsft.serve.server import stop

    for stopped in stop(port, all_servers):
        err_console.print(f"stopped the server on port {stopped}", highlight=False)
