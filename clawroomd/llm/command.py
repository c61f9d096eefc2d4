"""The agent command that runs the LLM driver, as `clawroom create|join --agent-llm MODEL` builds it.
Imports nothing heavy: the CLI imports this module."""

from __future__ import annotations

import sys

DEFAULT_BASE_URL = "http://localhost:11434/v1"  # Ollama's OpenAI-compatible endpoint
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


def llm_agent_argv(
    model: str, *, base_url: str = DEFAULT_BASE_URL, key_env: str = DEFAULT_KEY_ENV, extra: list[str] | None = None
) -> list[str]:
    """argv for `python -m clawroomd.llm` with this interpreter. It names the key's variable, never the key."""
    return [
        sys.executable, "-m", "clawroomd.llm", "--model", model, "--base-url", base_url, "--api-key-env", key_env,
        *(extra or []),
    ]  # fmt: skip
