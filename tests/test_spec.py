"""SPEC.md and the CDDL must describe exactly what the code produces and accepts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pycddl
import pytest
from roompair import Pair

from clawroomd.core import cose
from clawroomd.core.errors import ROOM_ERROR_CODES
from clawroomd.core.events import ConsultEnded, ConsultStarted, ErrorEvent, Message, Move

ROOT = Path(__file__).resolve().parents[1]
# The scripts must read this checkout's code, not whichever copy of clawroomd happens to be installed.
SCRIPT_ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
CDDL = (ROOT / "protocol" / "clawroom.cddl").read_text()
PAYLOAD_SCHEMA = pycddl.Schema("root = event\n" + CDDL)
ENVELOPE_SCHEMA = pycddl.Schema("root = #6.18([bstr, {}, bstr, bstr .size 64])\n")


def test_spec_tables_are_generated_from_the_code():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_spec.py"), "--check"],
        capture_output=True,
        text=True,
        env=SCRIPT_ENV,
    )
    assert out.returncode == 0, out.stderr


def test_every_room_error_code_raised_by_the_core_is_documented():
    raised = set()
    for name in ("events", "envelope", "rules", "room", "cbor", "cose", "identity"):
        src = (ROOT / "clawroomd" / "core" / f"{name}.py").read_text()
        raised |= set(re.findall(r'(?:_fail|ProtocolError)\(\s*"([a-z_]+)"', src))
    assert raised, "the pattern found nothing: the check itself is broken"
    assert raised - set(ROOM_ERROR_CODES) == set()


def every_kind_room() -> list[bytes]:
    p = Pair().join()
    p.host_send(Message(text="p", moves=(Move(op="propose", field="amount_format", value="cents", refs=("fact:1",)),)))
    p.guest_send(ConsultStarted())
    p.guest_send(ConsultEnded())
    p.guest_send(
        Message(
            text="",
            moves=(
                Move(op="reject", field="amount_format"),
                Move(op="propose", field="hash_algorithm", value="sha-256"),
            ),
        )
    )
    p.host_send(Message(text="ok", moves=(Move(op="accept", field="hash_algorithm", value="sha-256"),)))
    p.propose_close("guest")
    p.accept_close("host")
    envs = [e.envelope for e in p.host.log]
    q = Pair(turn_timeout_ms=10, deadline_ms=2_000_000, answer_timeout_ms=5).join()
    q.guest_send(ErrorEvent(code="cancelled", message="owner said stop"))
    return envs + [e.envelope for e in q.host.log]


@pytest.mark.parametrize("envelope", every_kind_room())
def test_every_event_the_code_emits_matches_the_cddl(envelope):
    ENVELOPE_SCHEMA.validate_cbor(envelope)
    PAYLOAD_SCHEMA.validate_cbor(cose.decode_sign1(envelope, max_size=10**5).payload)


def test_the_cddl_is_not_vacuous():
    import cbor2

    good = cose.decode_sign1(every_kind_room()[2], max_size=10**5).payload
    bad = cbor2.loads(good)
    bad["body"]["moves"][0]["op"] = "steal"
    with pytest.raises(pycddl.ValidationError):
        PAYLOAD_SCHEMA.validate_cbor(cbor2.dumps(bad, canonical=True))
    bad = cbor2.loads(good)
    bad["v"] = 2
    with pytest.raises(pycddl.ValidationError):
        PAYLOAD_SCHEMA.validate_cbor(cbor2.dumps(bad, canonical=True))


def test_our_published_vectors_reproduce_and_verify():
    import json

    from clawroomd.core.identity import Identity
    from clawroomd.core.room import GuestRoom

    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        env=SCRIPT_ENV,
    )
    assert out.returncode == 0, out.stderr
    v = json.loads((ROOT / "protocol" / "vectors" / "short-room.json").read_text())
    guest = GuestRoom(
        Identity.from_seed(bytes.fromhex(v["guest_seed"])),
        room_id=v["room"],
        host_key=Identity.from_seed(bytes.fromhex(v["host_seed"])).public_key,
    )
    for e in v["events"]:
        event = guest.receive(bytes.fromhex(e["envelope"]), now_ms=2**53)  # any time after 2026-01-01
        assert event is not None and event.hash.hex() == e["hash"]
    assert guest.head.hex() == v["head"] and guest.state.phase == "closed"
