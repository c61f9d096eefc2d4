"""Submit ids (sids): the wire rule and every sid this implementation mints, in one place.

A sid names one submission so that a retry is answered with the original event (SPEC §10); sids are
unique per author within a room. Each source of submissions has its own namespace, so that one can
never replay or shadow another's event: a client's sid can never equal a sid the daemon minted.

| sid                | who mints it                                                   |
| ---                | ---                                                            |
| `create`           | the host's room_created                                        |
| `join`             | the guest's joined                                             |
| `close-<seq>`      | the host's close that an append made inevitable (at `seq`)     |
| `timeout-<seq>`    | the host's close when a deadline passed (at `seq`)             |
| `l-<hex>`          | a local move without a client sid (the daemon draws the hex)   |
| `cancel-<hex>`     | the owner's cancel (the daemon draws the hex)                  |
| `a-<client sid>`   | a local move whose API client gave a sid (CLIENT_SID_RULE)     |

The core draws no random numbers: `local` and `cancel` take their random part from the caller.
"""

from __future__ import annotations

import re

SID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # the wire rule (SPEC §5); fullmatch, never `$`
SID_RULE = "1-64 characters of [A-Za-z0-9_.:-]"
CLIENT_SID_RE = re.compile(r"[A-Za-z0-9_-]{1,60}")  # room.send's `sid`: "a-" + it stays within SID_RE
CLIENT_SID_RULE = "1-60 letters, digits, - or _"
_TOKEN_RE = re.compile(r"[0-9a-f]{1,32}")


def is_sid(value: object) -> bool:
    """A sid any author may put on the wire."""
    return isinstance(value, str) and SID_RE.fullmatch(value) is not None


def is_client_sid(value: object) -> bool:
    """A sid an API client may give room.send (ASCII only, unlike str.isalnum)."""
    return isinstance(value, str) and CLIENT_SID_RE.fullmatch(value) is not None


def create() -> str:
    return "create"


def joined() -> str:
    return "join"


def follow_up_close(seq: int) -> str:
    return f"close-{_seq(seq)}"


def timeout(seq: int) -> str:
    return f"timeout-{_seq(seq)}"


def local(token_hex: str) -> str:
    """A local move the client gave no sid for; `token_hex` is random, e.g. `secrets.token_hex(8)`."""
    return "l-" + _token(token_hex)


def cancel(token_hex: str) -> str:
    """The owner's cancel; `token_hex` is random, e.g. `secrets.token_hex(4)`."""
    return "cancel-" + _token(token_hex)


def from_client(client_sid: str) -> str:
    """The wire sid for a move whose API client named it `client_sid` (check is_client_sid first)."""
    if not is_client_sid(client_sid):
        raise ValueError(f"a client sid is {CLIENT_SID_RULE}, not {client_sid!r}")
    return "a-" + client_sid


def _seq(seq: int) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"a sequence number is an int >= 0, not {seq!r}")
    return seq


def _token(token_hex: str) -> str:
    if not isinstance(token_hex, str) or _TOKEN_RE.fullmatch(token_hex) is None:
        raise ValueError(f"a sid token is 1-32 lowercase hex digits, not {token_hex!r}")
    return token_hex
