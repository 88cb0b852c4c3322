"""`sqlsft chat`: the Gradio page that asks a served model for SQL and runs its answers safely."""

import typer
from rich.markup import escape

from sqlsft.cli.app import app, console


@app.command("chat")
def chat_command(
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
    """Chat with a served model in the browser: each answer's SQL runs against your schema in a sandbox."""
    from sqlsft.chat.app import open_chat

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
