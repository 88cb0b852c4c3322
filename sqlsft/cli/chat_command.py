"""`sqlsft chat`: the Gradio page that asks a served model for SQL and runs its answers safely."""

import typer
from rich.markup import escape

from sqlsft.cli.app import app, console


@app.command("chat")
def chat_command(
    model: str | None = typer.Argument(
        None,
        help="With --web: a run (default `latest`), a model folder, `embedded`, a .gguf file or an exported page folder.",
        show_default=False,
    ),
    web: bool = typer.Option(
        False,
        "--web",
        help="Serve the model's web page (`sqlsft export --format web`): it runs in the browser.",
    ),
    url: str | None = typer.Option(
        None,
        "--url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (default: the recorded server).",
    ),
    model_name: str | None = typer.Option(
        None, "--model-name", help="Model name on the server (default: the served name, else 'local')."
    ),
    model_alias: str | None = typer.Option(
        None, "--model", hidden=True, help="Old spelling of --model-name."
    ),
    port: int = typer.Option(7860, "--port", help="Port of the page."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; keep 127.0.0.1 unless you use --auth."
    ),
    share: bool = typer.Option(False, "--share", help="Also open a public Gradio share link."),
    auth: str | None = typer.Option(None, "--auth", help="Ask for USER:PASSWORD before showing the page."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        help="API key for the server (default: $SQLSFT_API_KEY, $OPENAI_API_KEY, else 'EMPTY').",
        show_default=False,
    ),
    template: str = typer.Option(
        "text-to-sql", "--template", help="Prompt template the model was trained with."
    ),
    max_tokens: int = typer.Option(
        512, "--max-tokens", min=1, help="Most tokens the model may write per answer."
    ),
) -> None:
    """Chat with a served model in the browser: each answer's SQL runs against your schema in a sandbox.
    With --web, the model itself runs in the browser tab (llama.cpp and SQLite in WebAssembly)."""
    from sqlsft.chat.app import open_chat
    from sqlsft.common.errors import SqlsftError

    if web:
        _serve_web_page(model or "latest", host, port)
        return
    if model is not None:
        raise SqlsftError(f"MODEL ({model}) is for --web.", "Without --web, chat talks to a server: --url.")

    page = open_chat(
        url,
        model_name or model_alias,
        host=host,
        port=port,
        share=share,
        auth=auth,
        api_key=api_key,
        template=template,
        max_tokens=max_tokens,
    )
    target = page.target
    console.print(
        f"Chatting with model [bold]{escape(target.model)}[/] at {escape(target.display_url)} "
        f"({escape(target.source)}).",
        soft_wrap=True,
        highlight=False,
    )
    if page.open_without_auth:
        console.print(
            f"[yellow]warning:[/] listening on {escape(host)} without --auth: anyone who can reach it can use it.",
            soft_wrap=True,
        )
    console.print(f"Open {page.local_url} (Ctrl+C to stop).", soft_wrap=True, highlight=False, markup=False)
    if page.share_url:
        console.print(f"Public link: {page.share_url}", soft_wrap=True, highlight=False, markup=False)
    page.wait()


def _serve_web_page(model: str, host: str, port: int) -> None:
    import contextlib
    from pathlib import Path

    from sqlsft.chat.app import LOCAL_HOSTS
    from sqlsft.export.web.export_web import WEB_QUANT, export_web
    from sqlsft.export.web.server import open_page_server

    folder = Path(model).expanduser()
    if not (folder / "index.html").is_file():
        log = lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
        folder = export_web(model, WEB_QUANT, console=console, log=log).page.folder
    server = open_page_server(folder, host, port)
    console.print(f"Serving {escape(str(folder))}", soft_wrap=True, highlight=False)
    if host not in LOCAL_HOSTS:
        console.print(
            f"[yellow]warning:[/] listening on {escape(host)}: anyone who can reach it can download the model.",
            soft_wrap=True,
        )
    console.print(f"Open {server.url} (Ctrl+C to stop).", soft_wrap=True, highlight=False, markup=False)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C ends the server quietly
        server.serve_forever()
