"""A small OpenAI-compatible chat-completions server for the LLM driver's tests: real HTTP on 127.0.0.1
in a thread of the test process, with canned model replies (no model runs here; no PyPI package ships
the weights of one). Each model name has its own queue of replies, taken in order, so each side of a
room (host and guest use different model names) gets its script; every request is recorded.

A reply is the content text, or a `Canned` saying the status, body or delay to answer with.
While it serves a request, the server reads every process's command line (/proc/*/cmdline), so a test
can check that no argv on the machine held the API key while the driver was running.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Canned:
    content: str | None = None
    status: int = 200
    error: str = ""  # the error message of a non-200 answer
    delay: float = 0.0  # seconds to wait before answering (released early when the server stops)


@dataclass
class Request:
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    cmdlines: list[str] = field(default_factory=list, repr=False)

    @property
    def prompt(self) -> str:
        return "\n".join(m.get("content", "") for m in self.body.get("messages", []))


Reply = str | Canned | Callable[[Request], "str | Canned"]


class ModelServer:
    def __init__(self, scripts: dict[str, list[Reply]] | None = None, *, reject_schema: bool = False) -> None:
        self.scripts = {k: list(v) for k, v in (scripts or {}).items()}
        self.reject_schema = reject_schema  # answer 400 to any request carrying response_format
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def for_model(self, model: str) -> list[Request]:
        return [r for r in self.requests if r.model == model]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length", "0"))))
        req = Request(model=body.get("model", ""), body=body, headers={k.lower(): v for k, v in h.headers.items()})
        req.cmdlines = _cmdlines()
        with self.lock:
            self.requests.append(req)
            script = self.scripts.get(req.model, [])
            reply: Reply = script.pop(0) if script else Canned(status=500, error=f"no reply left for {req.model}")
        if h.path != "/v1/chat/completions":
            reply = Canned(status=404, error=f"no such path {h.path}")
        elif self.reject_schema and "response_format" in body:
            with self.lock:
                self.scripts.setdefault(req.model, []).insert(0, reply)  # not used up by the refused request
            reply = Canned(status=400, error="response_format of type json_schema is not supported by this server")
        if callable(reply):
            reply = reply(req)
        canned = reply if isinstance(reply, Canned) else Canned(content=reply)
        if canned.delay:
            self.stopping.wait(canned.delay)
        if canned.status == 200:
            out: dict[str, Any] = {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "model": req.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": canned.content}, "finish_reason": "stop"}
                ],
            }
        else:
            out = {"error": {"message": canned.error, "type": "invalid_request_error"}}
        data = json.dumps(out).encode()
        try:
            h.send_response(canned.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the driver gave up and went away


def _cmdlines() -> list[str]:
    out = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return out


def action(action: str = "message", text: str | None = None, moves: list[dict[str, Any]] | None = None) -> str:
    """A model reply in the schema's flat shape (every key present, null where unused)."""
    full_moves = None if moves is None else [{"value": None, "refs": None, **m} for m in moves]
    return json.dumps(
        {
            "action": action,
            "text": text,
            "moves": full_moves,
            "reason": None,
            "question": None,
            "options": None,
            "field": None,
            "value": None,
        }
    )
