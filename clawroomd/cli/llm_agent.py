"""`--agent-llm MODEL [--base-url URL] [--api-key-env VAR]` on create and join: the room's agent command
becomes the LLM driver (`python -m clawroomd.llm`, README "LLM agent").

The key stays off every command line: the driver's argv names the variable, and when the variable is set
where this command runs, its value travels to the daemon over the local socket (`agent_env`, uid-checked),
which keeps it in memory for that room's agent only. A daemon restarted later no longer has it and runs
the agent with its own environment."""

from __future__ import annotations

import argparse
import os
from typing import Any

from clawroomd.llm.command import DEFAULT_BASE_URL, DEFAULT_KEY_ENV, llm_agent_argv

from .exits import UsageError
from .options import Config


def add_llm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--agent-llm", metavar="MODEL",
        help="let a model be your agent: the daemon runs `python -m clawroomd.llm --model MODEL` on each of "
        "your turns, against an OpenAI-compatible chat-completions endpoint (instead of --agent)",
    )  # fmt: skip
    p.add_argument(
        "--base-url", metavar="URL",
        help=f"with --agent-llm: the endpoint's base URL (default {DEFAULT_BASE_URL}, Ollama; e.g. "
        "http://localhost:8000/v1 vLLM, http://localhost:8080/v1 llama.cpp, http://localhost:1234/v1 LM Studio)",
    )  # fmt: skip
    p.add_argument(
        "--api-key-env", metavar="VAR",
        help=f"with --agent-llm: the environment variable holding the API key (default {DEFAULT_KEY_ENV}); "
        "if set here, its value is handed to the daemon in memory for this room's agent, never on a command line",
    )  # fmt: skip


def llm_params(cfg: Config, env: dict[str, str] | None = None) -> dict[str, Any]:
    """room.create / room.join parameters for --agent-llm: agent_command and, when the key is set, agent_env."""
    if cfg.agent_llm is None:
        if cfg.base_url is not None or cfg.api_key_env is not None:
            raise UsageError("--base-url and --api-key-env go with --agent-llm MODEL")
        return {}
    if cfg.agent is not None:
        raise UsageError("give either --agent CMD or --agent-llm MODEL, not both")
    model = cfg.agent_llm.strip()
    if not model:
        raise UsageError("--agent-llm needs a model name, e.g. --agent-llm llama3.1:8b")
    base_url = cfg.base_url or DEFAULT_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url {base_url!r} is not an http:// or https:// URL")
    key_env = cfg.api_key_env or DEFAULT_KEY_ENV
    params: dict[str, Any] = {"agent_command": llm_agent_argv(model, base_url=base_url, key_env=key_env)}
    key = (os.environ if env is None else env).get(key_env)
    if key:
        params["agent_env"] = {key_env: key}
    return params
