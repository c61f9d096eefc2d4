"""Join URLs: round trips, what chat apps glue on, and a precise complaint for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawroomd.core.errors import LocalProtocolError
from clawroomd.core.identity import Identity
from clawroomd.core.joinurl import JoinURL

PEER = Identity.from_seed(b"h" * 32).peer_id
SECRET = bytes(range(16))
URL = JoinURL(
    room_id="cr_0123456789abcdef",
    host_peer_id=PEER,
    addrs=(("192.168.1.20", 7420), ("fe80::1%eth0", 7420), ("laptop.local", 1)),
    secret=SECRET,
)


def _err(text: str) -> str:
    with pytest.raises(LocalProtocolError) as err:
        JoinURL.parse(text)
    assert err.value.code == "bad_join_url"
    return err.value.message


def test_round_trip() -> None:
    text = URL.format()
    assert text.startswith("clawroom://join/cr_0123456789abcdef?peer=")
    assert "at=[fe80::1%25eth0]:7420" in text and text.endswith("&s=AAECAwQFBgcICQoLDA0ODw")
    assert JoinURL.parse(text) == URL
    assert URL.invite.secret == SECRET and URL.invite.room_id == URL.room_id
    assert "AAECAw" not in repr(URL)
    bare = JoinURL(room_id="cr_00000000", host_peer_id=PEER.lower().replace("-", ""), secret=b"\xff" * 32)
    assert bare.host_peer_id == PEER and JoinURL.parse(bare.format()) == bare


@pytest.mark.parametrize(
    "wrap",
    [
        "{}",
        "  {}\n",
        "<{}>",
        '"{}"',
        "`{}`",
        "({})",
        "{}.",
        "{}!",
        "{}),",
        "\u2018{}\u2019",
        "“{}”",
        "'{}';",
        "[{}]",
        "<{}>.",
    ],
)
def test_chat_glue_is_tolerated(wrap: str) -> None:
    assert JoinURL.parse(wrap.format(URL.format())) == URL


def test_scheme_case_and_peer_id_case_are_forgiven() -> None:
    text = URL.format().replace("clawroom://join/", "Clawroom://JOIN/").replace(PEER, PEER.lower())
    assert JoinURL.parse(text) == URL


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (lambda u: u.split("&s=")[0], "invite secret (s=) is missing"),
        (lambda u: u[:-4], "at least 128"),
        (lambda u: u + "==", "padding"),
        (lambda u: u.replace("&s=", "&s=*"), "base64url"),
        (lambda u: u.replace("peer=", "peer=X"), "host peer id is wrong"),
        (lambda u: u.replace(PEER[:7], "AAAAAAA"), "typo"),
        (lambda u: u.replace("?peer=" + PEER + "&", "?"), "peer=) is missing"),
        (lambda u: u + "&x=1", "unknown parameter 'x'"),
        (lambda u: u + "&s=AAECAwQFBgcICQoLDA0ODw", "given twice"),
        (lambda u: u.replace("cr_0123456789abcdef", "CR_0123"), "not a room id"),
        (lambda u: u.replace("clawroom://", "https://"), "not a clawroom link"),
        (lambda u: u.replace("clawroom://join/", "clawroom://room/"), "starts with clawroom://join/"),
        (lambda u: u.replace(":7420", ":0", 1), "port must be a number"),
        (lambda u: u.replace(":7420", ":07420", 1), "leading zeros"),
        (lambda u: u.replace("192.168.1.20:7420", "192.168.1.20"), "no port"),
        (lambda u: u.replace("192.168.1.20", "192.168.1.300"), "not an IPv4 address"),
        (lambda u: u.replace("[fe80::1%25eth0]", "fe80::1"), "brackets"),
        (lambda u: u.replace("[fe80::1%25eth0]", "[fe80::zz]"), "not an IPv6 address"),
        (lambda u: u.replace("laptop.local", "lap_top"), "not a host name"),
        (lambda u: u.replace("&at=", "& at="), "spaces"),
        (lambda u: u.replace("&at=", "&at"), "has no value"),
        (lambda u: u.split("?")[0], "no parameters"),
        (lambda u: u + "#frag", "'#'"),
        (lambda u: u.replace("at=laptop", "at=%ff"), "not UTF-8"),
        (lambda u: "", "empty"),
        (lambda u: u + "&s" * 2000, "longer than"),
    ],
)
def test_errors_say_what_is_wrong(mutate: object, says: str) -> None:
    message = _err(mutate(URL.format()))  # type: ignore[operator]
    assert says in message, message


def test_constructor_validates() -> None:
    with pytest.raises(LocalProtocolError):
        JoinURL(room_id="cr_00000000", host_peer_id=PEER, secret=b"short")
    with pytest.raises(LocalProtocolError):
        JoinURL(room_id="cr_00000000", host_peer_id=PEER, addrs=(("bad host", 1),), secret=SECRET)


@settings(max_examples=60)
@given(st.text(max_size=200))
def test_random_text_only_raises_bad_join_url(text: str) -> None:
    try:
        JoinURL.parse(text)
    except LocalProtocolError as exc:
        assert exc.code == "bad_join_url"


@settings(max_examples=40)
@given(
    room=st.from_regex(r"\Acr_[0-9a-f]{8,32}\Z"),
    secret=st.binary(min_size=16, max_size=64),
    ports=st.lists(st.integers(1, 65535), max_size=4),
)
def test_round_trip_property(room: str, secret: bytes, ports: list[int]) -> None:
    url = JoinURL(room_id=room, host_peer_id=PEER, addrs=tuple(("::1", p) for p in ports), secret=secret)
    assert JoinURL.parse(url.format()) == url
