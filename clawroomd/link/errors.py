"""Why a peer link ended or never started; protocol violations themselves stay core RemoteProtocolErrors."""

from __future__ import annotations


class LinkClosed(Exception):
    """The WebSocket is closed: `close_code` and `reason` as sent on the wire, `by_peer` says who closed.

    Our own refusals use the reason "<error code>: <sentence>", so `error_code` is the stable string
    (e.g. "bad_invite") whichever side closed.
    """

    def __init__(self, close_code: int, reason: str, *, by_peer: bool) -> None:
        who = "peer" if by_peer else "we"
        super().__init__(f"connection closed by {who} with {close_code}" + (f" ({reason})" if reason else ""))
        self.close_code = close_code
        self.reason = reason
        self.by_peer = by_peer

    @property
    def error_code(self) -> str | None:
        code, sep, _ = self.reason.partition(":")
        return code if sep and code and " " not in code else None


class DialFailed(Exception):
    """No secure channel came up: the address did not answer, refused the WebSocket, or took too long."""
