"""Fuzzing the JSON-RPC layer (issue 12 item 6) on a real daemon over its real socket: random lines, random
requests to every method with random params (commands and joins left out: they would run programs or
dial addresses). Every answer is one JSON-RPC error or result line with a documented error code, never
`internal`, and the daemon's log holds no traceback. Profiles: tests/fuzz_profile.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_profile import FUZZ, counted
from hypothesis import given
from hypothesis import strategies as st

from clawroomd.daemon.errors import ERROR_CODES
from clawroomd.testing import DaemonProcess

pytestmark = pytest.mark.slow
METHODS = ["daemon.info", "room.create", "room.list", "room.status", "room.transcript", "room.send", "room.watch",
           "room.close", "room.cancel", "room.result", "room.ask_owner", "room.answer", "owner.inbox", "room.summary",
           "context.write", "context.show", "rpc.x", "nope", ""]  # fmt: skip
UNSAFE = {"agent_command", "notify", "deliver_command", "join_url"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=15,
)
param_names = st.sampled_from(["room_id", "topic", "fields", "text", "propose", "accept", "reject", "after", "wait",
                               "max_turns", "deadline_s", "label", "goal", "reason", "approved", "question",
                               "profile", "owner_name", "expect_seq", "sid", "first"]) | st.text(max_size=8)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0"]), "method": st.sampled_from(METHODS),
     "params": st.dictionaries(param_names, json_values, max_size=5).map(
         lambda d: {k: v for k, v in d.items() if k not in UNSAFE})},
    optional={"id": st.integers(0, 2**40) | st.text(max_size=5) | json_values},
)  # fmt: skip
lines = st.one_of(
    requests.map(json.dumps),
    requests.map(json.dumps).map(lambda s: s[: len(s) // 2]),
    json_values.map(json.dumps),
    st.text(max_size=100).map(lambda t: t.replace("\n", " ")),
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("fuzz-rpc"), name="fuzz", log_level="warning").start()
    d.call("room.create", topic="fuzz", fields=["price"])  # a room for room_id params to find
    yield d
    d.stop()


def _ask(path: Path, line: str) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(line.encode("utf-8", "surrogatepass") + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return [json.loads(x) for x in data.splitlines()]


def test_fuzz_json_rpc(daemon: DaemonProcess) -> None:
    with counted("JSON-RPC layer") as tick:

        @FUZZ
        @given(lines)
        def run(line: str) -> None:
            tick()
            for answer in _ask(daemon.socket, line):
                assert answer.get("jsonrpc") == "2.0", answer
                if "error" in answer:
                    err = answer["error"]
                    assert isinstance(err, dict) and isinstance(err.get("message"), str), answer
                    code = err.get("data", {}).get("error")
                    assert code in ERROR_CODES and code != "internal", answer
                else:
                    assert "result" in answer or "method" in answer, answer

        run()
    log = daemon.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
