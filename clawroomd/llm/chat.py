"""One OpenAI-compatible chat-completions endpoint (`POST {base_url}/chat/completions`), as Ollama, vLLM,
llama.cpp's server, LM Studio and hosted services serve it.

The action is asked for with `response_format` = json_schema where the server supports it. A server that
rejects that parameter (HTTP 400/422/501 to a request carrying it) is asked again without it, and for
the rest of this run, relying on the JSON instructions in the prompt; the driver checks the reply either
way. The API key is sent only as the `Authorization` header and cut out of every error text, since some
servers quote the key they refused.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

SCHEMA_REJECTED = frozenset({400, 422, 501})
MAX_ERROR_TEXT = 300


class ChatError(Exception):
    """The endpoint failed (unreachable, HTTP error, not a chat completion); the text is safe to log."""


class Chat:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        use_schema: bool = True,
        options: dict[str, Any] | None = None,
        log: Any = None,
    ) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.use_schema = use_schema
        self.options = dict(options or {})  # temperature, max_tokens: sent only when given
        self.log = log or (lambda text: None)

    def redact(self, text: str) -> str:
        if self.api_key:
            text = text.replace(self.api_key, "***")
        return text

    async def complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        """The model's text for `messages` (the first choice's message content)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": False, **self.options}
        if self.use_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "clawroom_action", "strict": True, "schema": schema},
            }
        resp = await self._post(body)
        if self.use_schema and resp.status_code in SCHEMA_REJECTED:
            self.log(
                f"the server refused response_format json_schema ({self._status(resp)}); "
                "asking for plain JSON for the rest of this run"
            )
            self.use_schema = False
            del body["response_format"]
            resp = await self._post(body)
        if resp.status_code != 200:
            hint = " (check the API key variable)" if resp.status_code in (401, 403) else ""
            raise ChatError(f"{self.url} answered {self._status(resp)}{hint}")
        try:
            data = resp.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ChatError(f"{self.url} did not answer with a chat completion") from None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            return f"(no content{': refused: ' + str(refusal) if refusal else ''})"
        return content

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            return await self.client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as err:
            raise ChatError(f"cannot reach {self.url}: {self.redact(str(err)) or type(err).__name__}") from None

    def _status(self, resp: httpx.Response) -> str:
        text = resp.text
        try:
            err = json.loads(text).get("error")
            text = err.get("message", text) if isinstance(err, dict) else str(err or text)
        except (ValueError, AttributeError):
            pass
        text = self.redact(" ".join(text.split()))[:MAX_ERROR_TEXT].encode("unicode_escape").decode()
        return f"HTTP {resp.status_code}: {text}" if text else f"HTTP {resp.status_code}"
