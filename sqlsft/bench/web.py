"""`sqlsft bench web`: the web page in headless Chromium (Debian's) against llama.cpp native, same GGUF, same prompts.

The page is exported to a scratch folder, served by `chat --web`'s server (COOP/COEP: WebAssembly threads on)
and driven through its own Ask button with every request outside 127.0.0.1 blocked. Figures:
- page ready: navigation to the model, Python and SQLite all loaded (the page's own clock);
- time to first token: Ask to the first streamed piece (prompt processing included);
- output tokens/s: llama.cpp's own decode figure in the tab (`timings.predicted_per_second`), and for native
  llama-cpp-python the tokens after the first over the time after the first (the same definition).
Both sides get the same prompt text (the page's, read back) and the same thread count; greedy decoding.
"""

import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlsft.common.errors import SqlsftError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@dataclass
class WebBenchResult:
    model: str
    gguf: str
    threads: int
    prompts: int
    max_tokens: int
    page_ready_s: float
    browser_ttft_s: float
    browser_tokens_per_s: float
    native_ttft_s: float
    native_tokens_per_s: float
    prompt_tokens: list[int] = field(default_factory=list)
    same_answers: int = 0  # prompts whose browser and native answers are identical (greedy, same tokens)
    native_load_s: float = 0.0

    @property
    def browser_share_of_native(self) -> float:
        return self.browser_tokens_per_s / self.native_tokens_per_s if self.native_tokens_per_s else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "browser_share_of_native": round(self.browser_share_of_native, 3)}


def _browser_side(folder: Path, rows: list[dict], threads: int, max_tokens: int) -> tuple[float, list[dict]]:
    from playwright.sync_api import sync_playwright

    from sqlsft.export.web.server import open_page_server

    if not Path(CHROMIUM).exists():
        raise SqlsftError("Debian's chromium is missing.", "Install it: bash scripts/setup.sh --browser")
    server = open_page_server(folder).start_in_thread()
    blocked: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            local = f"http://127.0.0.1:{server.port}/"

            def route(request_route) -> None:
                if request_route.request.url.startswith((local, "blob:", "data:")):
                    request_route.continue_()
                else:
                    blocked.append(request_route.request.url)
                    request_route.abort()

            page.route("**/*", route)
            page.goto(f"{server.url}?threads={threads}&max_tokens={max_tokens}")
            page.wait_for_function(
                "() => ['ready', 'error'].includes(window.sqlsftPage && window.sqlsftPage.state)",
                timeout=600_000,
            )
            if page.evaluate("window.sqlsftPage.error"):
                raise SqlsftError(f"The page did not start: {page.evaluate('window.sqlsftPage.error')}")
            ready_s = page.evaluate("window.sqlsftPage.timings.ready_s")
            answers = []
            for row in rows:
                page.fill("#question", row["sql_prompt"])
                page.fill("#schema", row["sql_context"])
                page.fill("#expected", "")
                page.click("#ask")
                page.wait_for_function(
                    "() => window.sqlsftPage.last && window.sqlsftPage.last.done", timeout=600_000
                )
                answers.append(page.evaluate("JSON.parse(JSON.stringify(window.sqlsftPage.last))"))
            browser.close()
    finally:
        server.close()
    if blocked:
        raise SqlsftError(f"The page tried to reach another origin: {blocked[0]}")
    return ready_s, answers


def _native_side(gguf: Path, prompts: list[str], threads: int, max_tokens: int) -> tuple[float, list[dict]]:
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=str(gguf), n_threads=threads, n_ctx=4096, verbose=False)
    load_s = time.perf_counter() - started
    results = []
    for prompt in prompts:
        llm.reset()
        begun = time.perf_counter()
        stamps, text = [], ""
        for chunk in llm.create_completion(
            prompt, max_tokens=max_tokens, temperature=0, top_k=1, repeat_penalty=1.0, stream=True
        ):
            stamps.append(time.perf_counter())
            text += chunk["choices"][0]["text"]
        decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        results.append(
            {"ttft_s": stamps[0] - begun if stamps else 0.0, "tokens_per_s": decode, "answer": text}
        )
    return load_s, results


def bench_web(
    model: str = "embedded",
    quant: str | None = None,
    *,
    prompts: int = 3,
    max_tokens: int = 64,
    threads: int | None = None,
    log=lambda line: None,
) -> WebBenchResult:
    from sqlsft.data.builtin.generator import generate_builtin_rows
    from sqlsft.export.served import gguf_for_serving
    from sqlsft.export.web.page import write_page

    threads = threads or os.cpu_count() or 1
    served = gguf_for_serving(model, quant)
    rows = generate_builtin_rows(max(prompts, 1), verify=False)[:prompts]
    with tempfile.TemporaryDirectory(prefix="sqlsft-bench-web-") as scratch:
        page = write_page(served.path, Path(scratch) / "web", label=served.label, log=log)
        log(f"browser: {served.path.name}, {threads} threads, {len(rows)} prompts, {max_tokens} tokens")
        ready_s, browser = _browser_side(page.folder, rows, threads, max_tokens)
    errors = [answer["error"] for answer in browser if answer.get("error")]
    if errors:
        raise SqlsftError(f"The page failed to answer: {errors[0]}")
    bos = "<bos>"  # llama.cpp adds it: both sides get the text after it, as the page sends it
    texts = [a["prompt"][len(bos) :] if a["prompt"].startswith(bos) else a["prompt"] for a in browser]
    log("native: llama-cpp-python, same prompts")
    load_s, native = _native_side(served.path, texts, threads, max_tokens)
    return WebBenchResult(
        model=served.label,
        gguf=str(served.path),
        threads=threads,
        prompts=len(rows),
        max_tokens=max_tokens,
        page_ready_s=round(ready_s, 2),
        browser_ttft_s=round(statistics.median(a["ttft_ms"] / 1000 for a in browser), 3),
        browser_tokens_per_s=round(statistics.median(a["tokens_per_s"] for a in browser), 2),
        native_ttft_s=round(statistics.median(n["ttft_s"] for n in native), 3),
        native_tokens_per_s=round(statistics.median(n["tokens_per_s"] for n in native), 2),
        prompt_tokens=[a["prompt_tokens"] for a in browser],
        same_answers=sum(a["answer"] == n["answer"] for a, n in zip(browser, native, strict=True)),
        native_load_s=round(load_s, 2),
    )
