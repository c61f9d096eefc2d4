"""The peer link: one WebSocket per peer carrying Noise transport messages (trio; everything with I/O)."""

from .connection import DEAD_AFTER, KEEPALIVE_INTERVAL, MAX_WS_MESSAGE, PeerConnection
from .dialer import DIAL_TIMEOUT, dial_peer
from .errors import DialFailed, LinkClosed
from .limits import PeerLimits
from .listener import RESOURCE, run_connection, serve_peers
from .session import HANDSHAKE_TIMEOUT, Authorize, accept_peer, connect_peer

__all__ = [
    "DEAD_AFTER",
    "DIAL_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "MAX_WS_MESSAGE",
    "RESOURCE",
    "Authorize",
    "DialFailed",
    "LinkClosed",
    "PeerConnection",
    "PeerLimits",
    "accept_peer",
    "connect_peer",
    "dial_peer",
    "run_connection",
    "serve_peers",
]
