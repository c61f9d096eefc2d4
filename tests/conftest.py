import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def wire_frames(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every plaintext frame any in-process daemon sends over a peer link, captured before encryption
    (a wrapper around PeerConnection's one send path)."""
    from clawroomd.link.connection import PeerConnection

    frames: list[bytes] = []
    send_plaintext = PeerConnection._send_plaintext

    async def capturing(self: PeerConnection, plaintext: bytes) -> None:
        frames.append(bytes(plaintext))
        await send_plaintext(self, plaintext)

    monkeypatch.setattr(PeerConnection, "_send_plaintext", capturing)
    return frames
