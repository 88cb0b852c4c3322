"""`sqlsft chat`: start the Gradio page that asks a served model for SQL and runs its answer in the sandbox.

target.py picks the server, turns.py builds what the model is sent, render.py turns answers and
results into inert HTML, page.py lays out the page; this module checks the options and serves it
behind a Content-Security-Policy.
"""

import os
from dataclasses import dataclass
from typing import Any

from sqlsft.chat.page import build_app, load_examples
from sqlsft.chat.render import CSS
from sqlsft.chat.target import ChatTarget, resolve_target
from sqlsft.common.errors import SqlsftError
from sqlsft.common.processes import port_in_use
from sqlsft.data.prompts import load_templates

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

# The second wall behind render.py's escaping: whatever ends up in the page, the browser loads
# nothing from another origin. Gradio itself needs inline scripts and styles (its config and theme)
# and data:/blob: images (icons, uploads); everything else is its own origin or nothing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "frame-src 'none'",
        "object-src 'none'",
        "base-uri 'self'",  # Gradio's page sets <base href> to its own root
        "form-action 'self'",
    ]
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """ASGI middleware that puts the security headers on every HTTP response of the page (a plain
    ASGI wrapper: it leaves Gradio's streamed responses streaming)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in _SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + _SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise SqlsftError("--auth must look like USER:PASSWORD (both parts non-empty).")
    return user, password


def check_port(host: str, port: int) -> None:
    """A clear line before Gradio starts, for a port out of range or taken."""
    if port_in_use(host, port):
        raise SqlsftError(
            f"Cannot listen on {host}:{port}: another program uses that port.", "Pass another --port."
        )


@dataclass
class ChatPage:
    """A started chat page: what the CLI tells the user, and the Gradio app to wait on."""

    target: ChatTarget
    local_url: str
    share_url: str | None
    open_without_auth: bool  # listening beyond this machine with no --auth
    demo: Any

    def wait(self) -> None:
        """Block until Ctrl+C, then stop the page."""
        try:
            self.demo.block_thread()
        finally:
            self.demo.close()


def serve_page(demo, *, host: str, port: int, share: bool = False, credentials=None) -> None:
    """Serve a built page in the background, every response behind the security headers."""
    from starlette.middleware import Middleware

    demo.queue(default_concurrency_limit=4)
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=credentials,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        css=CSS,
        footer_links=[],
        app_kwargs={"middleware": [Middleware(SecurityHeaders)]},
    )


def open_chat(
    url: str | None = None,
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    auth: str | None = None,
    api_key: str | None = None,
    template: str | None = None,
    max_tokens: int = 512,
) -> ChatPage:
    """Check the options, pick the server, and start the page (in the background: see ChatPage.wait)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    check_port(host, port)
    credentials = parse_auth(auth)
    target = resolve_target(url, model, api_key)
    templates = load_templates(template)
    demo = build_app(target, templates, load_examples(), max_tokens=max_tokens)
    serve_page(demo, host=host, port=port, share=share, credentials=credentials)
    return ChatPage(
        target=target,
        local_url=demo.local_url,
        share_url=demo.share_url,
        open_without_auth=host not in LOCAL_HOSTS and credentials is None,
        demo=demo,
    )
