"""`python -m clawroomd.llm --model MODEL [...]`: an agent command (README "Agent command protocol") that
asks a model behind an OpenAI-compatible chat-completions endpoint for each turn's action.

It reads the daemon's document on stdin, builds the prompt (prompt.py), asks for the action (chat.py),
checks it (action.py; an unusable reply is said back to the model, at most --retries times) and prints
the reply on stdout. Everything happens within the time the document leaves (`time_left_s`, less a
margin for starting up and for the daemon to send the move): trio cancels the model call when that runs
out, wherever it is (connect, upload, waiting, download), which per-phase HTTP timeouts alone cannot do.

The API key is read from the environment variable named by --api-key-env, never from the command line,
and is never printed. Log lines go to stderr; the daemon logs the last one when the command fails.
Exit status: 0 reply printed, 1 the endpoint failed or the model gave no usable reply, 2 bad command line
or input, 3 out of time for this turn.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from .action import BadReply, action_schema, check_action
from .command import DEFAULT_BASE_URL, DEFAULT_KEY_ENV
from .prompt import build_messages, correction

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIME = 0, 1, 2, 3
MARGIN_S = 1.5  # kept from the time left: for our own exit and the daemon to check and send the move
MIN_BUDGET_S = 1.0  # below this a model call is not worth starting
DEFAULT_BUDGET_S = 110.0  # a document without time_left_s (an older daemon: its agent timeout is 120 s)
ROLES = ("host", "guest")
MAX_BAD_SHOWN = 4000  # characters of an unusable reply said back to the model


class Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def log(text: str) -> None:
    print(f"clawroom-llm: {text}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m clawroomd.llm",
        description="Agent command for clawroomd: asks a model behind an OpenAI-compatible chat-completions "
        "endpoint (Ollama, vLLM, llama.cpp server, LM Studio, hosted) for each turn's action. Reads the "
        "daemon's agent document on stdin, prints one JSON action on stdout.",
        epilog="Exit status: 0 action printed, 1 endpoint failed or no usable reply, 2 usage, 3 out of time.",
    )
    p.add_argument("--model", required=True, help="the model name the endpoint knows (e.g. llama3.1:8b)")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL", help=f"default {DEFAULT_BASE_URL} (Ollama)")
    p.add_argument(
        "--api-key-env", default=DEFAULT_KEY_ENV, metavar="VAR",
        help=f"environment variable holding the API key (default {DEFAULT_KEY_ENV}; unset: no key is sent)",
    )  # fmt: skip
    p.add_argument(
        "--format", choices=("schema", "plain"), default="schema",
        help="schema: ask for response_format json_schema, falling back to plain JSON if the server refuses "
        "it (default); plain: never send response_format",
    )  # fmt: skip
    p.add_argument(
        "--private-facts", choices=("auto", "include", "omit"), default="auto",
        help="put the owner's private facts into the prompt: auto (default) only when the endpoint is on this "
        "machine (a loopback address), include, or omit",
    )  # fmt: skip
    p.add_argument("--retries", type=int, default=2, metavar="N", help="asks again after an unusable reply (default 2)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per turn at most (default: time left)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the server's)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="reply length limit (default: the server's)")
    return p


def _budget(doc: dict[str, Any], cap: float | None) -> float:
    left = doc.get("time_left_s")
    left = DEFAULT_BUDGET_S if not isinstance(left, (int, float)) else float(left)
    budget = left - MARGIN_S
    if cap is not None:
        budget = min(budget, cap)
    if budget < MIN_BUDGET_S:
        raise Failed(EXIT_TIME, f"only {max(left, 0):.1f} s left on this turn; not asking the model")
    return budget


def on_this_machine(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def ask(doc: dict[str, Any], chat: Any, retries: int, *, share_private: bool = True) -> dict[str, Any]:
    """The checked reply, asking again (with the error) after an unusable one, at most `retries` times."""
    messages: list[dict[str, str]] = build_messages(doc, share_private=share_private)
    schema = action_schema([f["name"] for f in doc["room"].get("fields", [])])
    for attempt in range(retries + 1):
        content = await chat.complete(messages, schema)
        try:
            return check_action(content, doc)
        except BadReply as err:
            last = attempt == retries
            log(f"unusable reply from the model ({err}); {'giving up' if last else 'asking again'}")
            if last:
                raise Failed(EXIT_FAILED, f"the model gave {retries + 1} unusable replies; the last: {err}") from None
            messages += [
                {"role": "assistant", "content": content[:MAX_BAD_SHOWN]},
                {"role": "user", "content": correction(str(err))},
            ]
    raise AssertionError("unreachable")


def run(args: argparse.Namespace, doc: dict[str, Any]) -> dict[str, Any]:
    import httpx  # here: the import costs ~70 ms and only this program needs it
    import trio

    from .chat import Chat, ChatError

    budget = _budget(doc, args.timeout)
    share_private = args.private_facts == "include" or (args.private_facts == "auto" and on_this_machine(args.base_url))
    if not share_private and (doc.get("owner") or {}).get("private_facts"):
        log("the owner's private facts are not sent to the model (it is not on this machine)")
    options = {k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None}

    async def main() -> dict[str, Any] | None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(budget), trust_env=True) as client:
            chat = Chat(
                client,
                base_url=args.base_url,
                model=args.model,
                api_key=os.environ.get(args.api_key_env) or None,
                use_schema=args.format == "schema",
                options=options,
                log=log,
            )
            with trio.move_on_after(budget):
                return await ask(doc, chat, args.retries, share_private=share_private)
            return None

    try:
        reply = trio.run(main)
    except ChatError as err:
        raise Failed(EXIT_FAILED, f"model {args.model}: {err}") from None
    if reply is None:
        raise Failed(
            EXIT_TIME,
            f"model {args.model} at {args.base_url} did not answer within {budget:.1f} s "
            "(the time left on this turn); giving up this turn",
        )
    return reply


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.retries < 0 or (args.timeout is not None and args.timeout <= 0):
        log("--retries must be 0 or more and --timeout above 0")
        return EXIT_USAGE
    try:
        doc = json.load(sys.stdin)
        if not isinstance(doc, dict) or not isinstance(doc.get("room"), dict) or doc.get("you") not in ROLES:
            raise ValueError("not an agent document")
    except ValueError as err:
        log(f"stdin must be the daemon's agent document (JSON): {err}")
        return EXIT_USAGE
    try:
        reply = run(args, doc)
    except Failed as err:
        log(str(err))
        return err.code
    print(json.dumps(reply, ensure_ascii=False), flush=True)
    return EXIT_OK
