"""`clawroom mcp`: an MCP server (stdio) through which an MCP client such as Claude Code sits in a room.

It is a client of the local daemon like the CLI, on the `clawroom` library (`clawroom.aio`); it never
imports the daemon. The MCP SDK (`pip install 'clawroomd[mcp]'`) is imported only when the server
starts, so the rest of the CLI stays fast and works without it.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = (
    "`clawroom mcp` needs the MCP Python SDK, which is not installed: pip install 'clawroomd[mcp]' "
    "(or: pip install 'mcp>=2.3')"
)


def sdk_available() -> bool:
    try:
        return importlib.util.find_spec("mcp") is not None
    except ValueError:  # sys.modules["mcp"] is None: blocked on purpose
        return False


def serve(socket: str | None) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin; tools talk to the daemon at `socket`
    (else $CLAWROOM_SOCKET, else the default)."""
    from .server import serve_stdio

    serve_stdio(socket)
