"""The static server of `sqlsft chat --web`: the page folder on 127.0.0.1, every response with the headers
WebAssembly threads need (COOP/COEP: the page is cross-origin isolated) and a strict Content-Security-Policy
(the page loads nothing from another origin, runs no inline script, and only its own WebAssembly).

Any static server works too (the page then runs llama.cpp single-threaded; index.html carries the policy
in a <meta> tag); this one is the standard library's, with the headers and the right types.
"""

import functools
import http.server
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.processes import port_in_use

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",  # the page's own modules, and compiling its own .wasm
        "worker-src 'self' blob:",  # wllama starts its worker (and llama.cpp's threads) from a blob
        "connect-src 'self' blob: data:",
        "img-src 'self' data:",
        "style-src 'self'",
        "font-src 'self'",
        "media-src 'none'",
        "object-src 'none'",
        "frame-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".gguf": "application/octet-stream",
    ".zip": "application/zip",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
}


class PageRequestHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}  # noqa: RUF012

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def list_directory(self, path):  # no folder listings
        self.send_error(404, "Not found")
        return None

    def log_message(self, format, *args) -> None:
        pass


@dataclass
class PageServer:
    folder: Path
    host: str
    port: int
    _server: http.server.ThreadingHTTPServer

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def start_in_thread(self) -> "PageServer":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def open_page_server(folder: Path, host: str = "127.0.0.1", port: int = 0) -> PageServer:
    """A server for the page folder, bound (port 0: any free port), not yet serving."""
    folder = Path(folder)
    if not (folder / "index.html").is_file():
        raise SqlsftError(
            f"{folder} is not an exported page (no index.html).", "Make one: sqlsft export --format web."
        )
    if port and port_in_use(host, port):
        raise SqlsftError(
            f"Cannot listen on {host}:{port}: another program uses that port.", "Pass another --port."
        )
    handler = functools.partial(PageRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return PageServer(folder, host, server.server_address[1], server)
