"""A real tiny Gemma 3 whose weights are set so that greedy decoding answers every prompt with a fixed text.

A random tiny model writes byte garbage (often nothing printable while streaming), so a test of the chat
page or of eval cannot check what happens to a real answer. This one can: the layers are silenced
(zero output projections) and the tied embedding + final norm spell out a token chain, so the model is
a bigram machine "last prompt token -> answer tokens -> <end_of_turn>". Served by any engine, it streams
the answer token by token and stops by itself.

ScriptedServer is the other scripted model: an OpenAI-compatible server that answers exactly what a test
says (any text, hostile text included) and records every request, for what a tiny model cannot write.
"""

import itertools
import shutil
from pathlib import Path


def build_scripted_model(base_dir: Path, folder: Path, answer: str) -> Path:
    """Copy the tiny model in `base_dir` to `folder`, rewritten to answer `answer` to any chat prompt."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    base_dir, folder = Path(base_dir), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for item in base_dir.iterdir():
        if item.name != "model.safetensors":
            shutil.copy2(item, folder / item.name)

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    prompt_ids = tokenizer.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        add_generation_prompt=True,
        return_dict=True,
    )["input_ids"]
    chain = [
        prompt_ids[-1],
        *tokenizer.encode(answer, add_special_tokens=False),
        tokenizer.convert_tokens_to_ids("<end_of_turn>"),
    ]
    weights = load_file(base_dir / "model.safetensors")
    embed = weights["model.embed_tokens.weight"]
    hidden = embed.shape[1]
    if len(set(chain)) != len(chain) or 2 * (len(chain) - 1) > hidden:
        raise ValueError(
            f"answer {answer!r} needs distinct tokens and at most {hidden // 2 - 1} of them: {chain}"
        )

    for name in weights:
        if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            weights[name] = torch.zeros_like(weights[name])  # layers add nothing to the residual stream
    dims = list(range(2 * (len(chain) - 1)))
    embed[:, dims] = 0.0
    embed[chain, :] = 0.0
    norm = torch.full((hidden,), -1.0)  # Gemma's RMSNorm scales by (1 + weight): -1 silences a dimension
    for link, (token, successor) in enumerate(itertools.pairwise(chain)):
        a, b = 2 * link, 2 * link + 1
        strength = 2.0**link  # each link outweighs the previous one: the chain only runs forward
        embed[token, a] = embed[token, b] = strength
        embed[successor, a], embed[successor, b] = strength, -strength
        norm[a], norm[b] = 0.0, -2.0  # +1 and -1: logit(successor | token) = 2 * strength**2 / rms
    weights["model.embed_tokens.weight"] = embed
    weights["model.norm.weight"] = norm
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


class ScriptedServer:
    """An OpenAI-compatible chat server (on 127.0.0.1, in a thread) that streams scripted answers and
    records every request it gets, for tests that need exact control over what a "model" writes (a
    hostile answer) or that check what a client sent.

    `answers` maps a word to an answer: a request whose last message contains the word gets that answer
    (the first match), any other request gets `default`."""

    def __init__(
        self, answers: dict[str, str] | None = None, default: str = "SELECT 1", model: str = "local"
    ):
        import http.server
        import json
        import threading

        self.answers, self.default, self.model = dict(answers or {}), default, model
        self.requests: list[dict] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def _send_json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send_json(
                        200, {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    )
                else:
                    self._send_json(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send_json(404, {"detail": "Not Found"})
                    return
                if body.get("model") != server.model:
                    self._send_json(
                        404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
                    )
                    return
                answer = server.answer_for(body.get("messages") or [])
                if not body.get("stream"):
                    message = {"role": "assistant", "content": answer}
                    choice = {"index": 0, "message": message, "finish_reason": "stop"}
                    self._send_json(200, {"id": "x", "object": "chat.completion", "choices": [choice]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for start in range(0, len(answer), 16):
                    delta = {"content": answer[start : start + 16]}
                    chunk = {"id": "x", "object": "chat.completion.chunk", "model": server.model}
                    chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def answer_for(self, messages: list[dict]) -> str:
        last = str(messages[-1].get("content", "")) if messages else ""
        return next((answer for word, answer in self.answers.items() if word in last), self.default)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> "ScriptedServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
