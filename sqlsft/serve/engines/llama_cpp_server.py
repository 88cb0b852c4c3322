"""llama-cpp-python's own OpenAI server (`llama_cpp.server`), built through its public API, plus `GET /health`.

    python -m sqlsft.serve.engines.llama_cpp_server --model F.gguf --host H --port P --n_threads N ...

Takes exactly `python -m llama_cpp.server`'s arguments (its Settings), and adds only what sqlsft needs of
every engine:
- `GET /health`: 200 once the model is loaded (create_app loads it before uvicorn starts listening), so
  lifecycle, `sqlsft server status` and every client probe all engines alike;
- the API key from $SQLSFT_LLAMA_CPP_API_KEY, never from the command line (others can read it there); an
  unrelated $API_KEY in the environment (pydantic-settings would read it) is ignored;
- `--chat_template_config FILE` (JSON: template, bos_token, eos_token) for a GGUF that has no chat template
  of its own: registered in llama-cpp-python's chat-handler registry as llama.cpp does for a GGUF's
  own template (Jinja2ChatFormatter) and selected with its `chat_format` setting;
- the OpenAI API's meaning for what a request leaves out: llama-cpp-python's server defaults to
  `repeat_penalty` 1.1, `top_k` 40 and `min_p` 0.05, which OpenAI's API does not have. A repeat penalty
  breaks SQL, which repeats names by nature: the demo's q8_0 export scored 4% instead of 15% with it, and
  97 of 100 greedy answers differed from the original's. Requests get 1.0, 0 and 0.0 unless they set them
  (`extra_body={"repeat_penalty": 1.1}` still works).

It imports nothing from sqlsft: another environment (--engine-python) runs this file by its path.
"""

import argparse
import json
import os
import sys

API_KEY_ENV = "SQLSFT_LLAMA_CPP_API_KEY"
TRAINING_TEMPLATE_FORMAT = "sqlsft-training-template"
# what an OpenAI client means by leaving these out: no repeat penalty, no top-k or min-p cut
OPENAI_SAMPLING_DEFAULTS = {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0}
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions")
GRACEFUL_SHUTDOWN_S = 3


class OpenAISamplingDefaults:
    """ASGI middleware: fill OPENAI_SAMPLING_DEFAULTS into generation requests that do not set them."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in GENERATION_PATHS:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, receive, send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            request = json.loads(body)
        except ValueError:
            request = None  # the server's own validation answers it
        if isinstance(request, dict):
            body = json.dumps({**OPENAI_SAMPLING_DEFAULTS, **request}).encode()
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": headers}, replay, send)


def register_training_template(config_file: str) -> str:
    """Register the chat format a --chat_template_config file describes; its name for `chat_format`."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter, LlamaChatCompletionHandlerRegistry

    with open(config_file, encoding="utf-8") as handle:
        config = json.load(handle)
    formatter = Jinja2ChatFormatter(
        template=config["template"], eos_token=config["eos_token"], bos_token=config["bos_token"]
    )
    LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        TRAINING_TEMPLATE_FORMAT, formatter.to_chat_handler(), overwrite=True
    )
    return TRAINING_TEMPLATE_FORMAT


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

    parser = argparse.ArgumentParser(description="llama_cpp.server with GET /health (sqlsft)")
    add_args_from_model(parser, Settings)
    parser.add_argument("--chat_template_config", help="JSON: template, bos_token, eos_token (sqlsft).")
    args = parser.parse_args(argv)
    if args.api_key:
        parser.error(f"pass the API key in ${API_KEY_ENV}, not on the command line")
    if args.chat_template_config:
        if args.chat_format:
            parser.error("--chat_template_config and --chat_format exclude each other")
        args.chat_format = register_training_template(args.chat_template_config)
    server_settings = parse_model_from_args(ServerSettings, args).model_copy(
        update={"api_key": os.environ.get(API_KEY_ENV) or None}
    )
    app = create_app(
        server_settings=server_settings, model_settings=[parse_model_from_args(ModelSettings, args)]
    )

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(
        OpenAISamplingDefaults(app),
        host=server_settings.host,
        port=server_settings.port,
        ssl_keyfile=server_settings.ssl_keyfile,
        ssl_certfile=server_settings.ssl_certfile,
        # SIGTERM (sqlsft's stop, or the parent's death) must end it even while a generation runs: uvicorn
        # would otherwise wait for every queued request first
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    sys.exit(main())
