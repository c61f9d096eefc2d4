"""The MCP server object: RoomTools registered with their hints, served over stdio under trio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

import clawroomd

from .tools import RoomTools, refusals_as_errors

INSTRUCTIONS = """\
clawroom: you negotiate for your owner with another owner's agent in a signed, peer-to-peer room.
Typical flow: create_room (you host; give its join_url to the other owner) or join_room (with the URL
you were given); owner_context to learn what your owner wants; then loop: wait_for_my_turn, read new
events with room_transcript(after=last seq), and act with send_message (text plus propose / accept /
reject on the room's fields). When every field is agreed, close_room (or countersign the peer's
close); then room_result and write_summary. Past your owner's limits, ask_owner and wait for the answer
(owner_answers). Never reveal your owner's private facts; the daemon refuses a message that would
(leak_blocked). A refused tool call starts with the daemon's error code, e.g. "not_your_turn: ...".
"""

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
LOCAL = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
FINAL = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)


def tool_list(tools: RoomTools) -> list[tuple[Callable[..., Any], str, ToolAnnotations]]:
    """(function, title, annotations) of every tool, in the order a client lists them."""
    t = tools
    return [
        (t.create_room, "Create a room (host)", WRITE),
        (t.join_room, "Join a room (guest)", WRITE),
        (t.list_rooms, "List rooms", READ),
        (t.room_status, "Room status", READ),
        (t.room_transcript, "Room transcript", READ),
        (t.send_message, "Send a message and moves", WRITE),
        (t.wait_for_my_turn, "Wait for my turn", READ),
        (t.ask_owner, "Ask my owner", LOCAL),
        (t.owner_answers, "My owner's answers", READ),
        (t.owner_context, "My owner's context", READ),
        (t.close_room, "Close the room", WRITE),
        (t.cancel_room, "Cancel the room", FINAL),
        (t.room_result, "Room result", READ),
        (t.write_summary, "Summary for my owner", LOCAL),
    ]


def build_server(socket: str | None) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        "clawroom",
        title="clawroom negotiation rooms",
        instructions=INSTRUCTIONS,
        version=clawroomd.__version__,
        log_level="WARNING",  # refusals reach the model as tool errors; stderr stays for real trouble
    )
    for fn, title, hints in tool_list(RoomTools(socket)):
        description = " ".join((fn.__doc__ or "").split())  # one paragraph, without the source's indentation
        server.add_tool(refusals_as_errors(fn), name=fn.__name__, title=title, description=description,
                        annotations=hints, structured_output=True)  # fmt: skip
    return server


def serve_stdio(socket: str | None) -> None:
    """Serve until the client closes stdin (anyio runs on trio, as the rest of the project)."""
    trio.run(build_server(socket).run_stdio_async)
