"""`--notify`, `clawroom inbox` and `clawroom answer` through the real CLI against real daemons in
subprocesses; the agent's question arrives over the local socket as an agent would send it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from test_cli import ok, out_json, start_daemon, stop_daemon

from clawroomd.client import Client

pytestmark = pytest.mark.slow


def test_notify_inbox_and_answer(tmp_path: Path) -> None:
    a = start_daemon(tmp_path / "a")
    try:
        b = start_daemon(tmp_path / "b")
        try:
            seen = tmp_path / "notified.json"
            hook = f"{sys.executable} -c \"import sys; open({str(seen)!r}, 'w').write(sys.stdin.read())\""
            created = out_json(a.clawroom("create", "--topic", "t", "--field", "price", "--notify", hook, "--json"))
            room = created["room_id"]
            ok(b.clawroom("join", created["join_url"]))
            assert "No questions waiting." in ok(a.clawroom("inbox")).stdout
            with Client(a.socket, timeout=10) as c:
                asked = c.call("room.ask_owner", room_id=room, question="Go to 52k?", field="price", value="52000")
            deadline = time.monotonic() + 10
            while not seen.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert json.loads(seen.read_text())["question_id"] == asked["question_id"]
            listed = ok(a.clawroom("inbox")).stdout
            assert asked["question_id"] in listed and "Go to 52k?" in listed
            assert a.clawroom("answer", "--room", room).returncode == 2  # --approve or --reject is required
            answered = out_json(a.clawroom("answer", "--room", room, "--approve", "fine, once", "--json"))
            assert answered["approved"] is True and answered["text"] == "fine, once"
            again = a.clawroom("answer", "--room", room, "--reject")
            assert again.returncode == 1 and "no pending question" in again.stderr
            assert out_json(a.clawroom("inbox", "--json"))["questions"] == []
        finally:
            stop_daemon(b)
    finally:
        stop_daemon(a)
