"""The daemon's configuration: command line plus an optional TOML file (the command line wins).

TOML keys (all optional; relative paths are relative to the file's folder)::

    state_dir   = "~/.local/state/clawroom"
    socket      = "/run/user/1000/clawroom/clawroomd.sock"
    listen      = "0.0.0.0:7643"          # HOST:PORT, [v6addr]:PORT; port 0 picks a free one
    log_level   = "info"                  # debug | info | warning | error
    durability  = "normal"                # normal | full  (see clawroomd.daemon.store)
    max_request = 1048576                 # bytes per local-API request line
    advertise   = ["192.0.2.10:7643"]     # addresses put in join URLs (default: the listen address)
    notify      = "notify-send clawroom"  # the owner's question hook for rooms without --notify
    deliver     = "mail -s result me"     # the owner's delivery hook for rooms without --deliver
    lan         = true                    # LAN discovery (DNS-SD over mDNS); off by default
    lan_interfaces = ["eth0"]             # interfaces for it (default: every one with a private IPv4 address)
    lan_name    = "alice"                 # the name others see on the LAN (default: this machine's host name)

    [tuning]                              # every key and its bounds: clawroomd/daemon/tuning.py
    agent_timeout = 120                   # s for one run of a room's agent command
    handshake_timeout = 10.0              # s a peer connection may take from accept to admission
    max_pending_handshakes = 128          # peer connections in their handshake, in total
    max_pending_per_address = 8           # ... from one IPv4 address / IPv6 /64
    max_links_per_peer = 8                # admitted links per peer identity (a new one replaces the oldest)
    max_peer_connections = 4096           # all peer connections (also at most half the open-file limit)
    watch_memory = 67108864               # bytes of unread local-API notifications (and, apart, answers), in all
    lan_stale_after = 120                 # s without news of a LAN peer before we dial it to confirm it
    join_request_ttl = 600                # s a LAN join request waits for the owner's approval

    [any_table]                           # other tables are kept, unparsed, in DaemonConfig.extra
    ...

An unknown top-level key that is not a table is an error (a typo should not be silently ignored).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import clawroomd
from clawroomd.client import default_socket_path, default_state_dir

from .tuning import Tuning, TuningError

DEFAULT_LISTEN = "0.0.0.0:7643"
LOG_LEVELS = ("debug", "info", "warning", "error")
DURABILITIES = ("normal", "full")
DEFAULT_MAX_REQUEST = 1 << 20
# [tuning] keys checked here: (type, lowest, highest). PeerLimits field for each peer one below.
_KNOWN_KEYS = {
    "state_dir", "socket", "listen", "log_level", "durability", "max_request", "advertise", "notify", "deliver",
    "lan", "lan_interfaces", "lan_name",
}  # fmt: skip


class ConfigError(Exception):
    """A bad option or config file; the message names the setting and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    state_dir: Path
    socket_path: Path
    listen_host: str
    listen_port: int
    config_file: Path | None = None
    log_level: str = "info"
    durability: Literal["normal", "full"] = "normal"
    max_request: int = DEFAULT_MAX_REQUEST
    advertise: tuple[str, ...] = ()  # HOST:PORT put in join URLs; empty: the listen address
    tuning: Tuning = field(default_factory=Tuning)
    notify: tuple[str, ...] = ()  # the owner's question hook for rooms that name none (argv)
    deliver: tuple[str, ...] = ()  # the owner's delivery hook for rooms that name none (argv)
    lan: bool = False  # LAN discovery on (--lan)
    lan_interfaces: tuple[str, ...] = ()  # pinned interface names; empty: every private one
    lan_name: str = ""  # the name advertised on the LAN; empty: the host name
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def listen(self) -> str:
        """``host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "clawroomd.lock"

    @property
    def identity_key_path(self) -> Path:
        return self.state_dir / "identity.key"

    @property
    def noise_key_path(self) -> Path:
        return self.state_dir / "noise.key"


def parse_listen(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"[V6]:PORT"`` -> (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%\w]+)\]:(\d{1,5})|([^\s:\[\]]+):(\d{1,5})", text.strip())
    if not m:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT (e.g. 0.0.0.0:7643 or [::]:7643)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ConfigError(f"listen port {port} is out of range (0-65535; 0 picks a free port)")
    return host, port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clawroomd",
        description="The clawroom daemon: runs in the foreground, logs to stderr, stops on SIGTERM/SIGINT.",
        epilog="Exit codes: 0 clean stop, 1 internal error, 2 bad usage or config, "
        "3 another clawroomd uses this state dir, 4 cannot start (files, socket, keys, address).",
    )
    p.add_argument("--state-dir", metavar="DIR", help="state folder (default $XDG_STATE_HOME/clawroom)")
    p.add_argument("--listen", metavar="HOST:PORT", help=f"peer listener address (default {DEFAULT_LISTEN})")
    p.add_argument("--socket", metavar="PATH", help="local API socket (default: see docs)")
    p.add_argument("--config", metavar="FILE", help="TOML config file; command-line options override it")
    p.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower, help="log level (default info)")
    p.add_argument("--durability", choices=DURABILITIES, help="normal (default) or full: fsync every commit")
    p.add_argument("--max-request", metavar="BYTES", type=int, help="local-API request size limit")
    p.add_argument(
        "--advertise",
        metavar="HOST:PORT",
        action="append",
        help="address peers should dial, put in join URLs (repeatable; default: the listen address, "
        "which must then not be 0.0.0.0)",
    )
    p.add_argument(
        "--lan", action="store_true", default=None,
        help="discover and advertise on the LAN (DNS-SD over mDNS; never room ids or topics)",
    )  # fmt: skip
    p.add_argument(
        "--lan-interface", dest="lan_interfaces", action="append", metavar="IFACE",
        help="use this interface for LAN discovery (repeatable; default: every one with a private IPv4 address)",
    )  # fmt: skip
    p.add_argument("--lan-name", metavar="NAME", help="the name others see on the LAN (default: the host name)")
    p.add_argument("--version", action="version", version=f"clawroomd {clawroomd.__version__}")
    return p


def _path(value: Any, key: str, base: Path | None) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty path string, not {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return Path(os.path.normpath(path))


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    unknown = sorted(k for k, v in data.items() if k not in _KNOWN_KEYS | {"tuning"} and not isinstance(v, dict))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(_KNOWN_KEYS))})"
        )
    return data


def _command(value: Any, key: str) -> tuple[str, ...]:
    """A hook command from the config file: a string split like a shell line, or an argv list."""
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as e:
            raise ConfigError(f"{key}: {e}") from None
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        argv = list(value)
    else:
        raise ConfigError(f"{key} must be a command line or a list of strings, not {value!r}")
    if not argv or not all(argv):
        raise ConfigError(f"{key} must name a command")
    return tuple(argv)


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> DaemonConfig:
    """Parse `argv` (default sys.argv[1:]) and the optional --config file into a DaemonConfig.

    Raises ConfigError for bad values; argparse itself exits with code 2 on unknown options
    (and 0 for --help/--version).
    """
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    file_data: dict[str, Any] = {}
    config_file = None
    if args.config:
        config_file = _path(args.config, "--config", None)
        file_data = _read_file(config_file)
    base = config_file.parent if config_file else None

    def pick(arg: Any, key: str) -> tuple[Any, bool]:
        """(value, from_file) with the command line winning."""
        if arg is not None:
            return arg, False
        return file_data.get(key), key in file_data

    raw, from_file = pick(args.state_dir, "state_dir")
    state_dir = _path(raw, "state_dir", base if from_file else None) if raw is not None else default_state_dir(env)

    raw, from_file = pick(args.socket, "socket")
    socket_path = (
        _path(raw, "socket", base if from_file else None) if raw is not None else default_socket_path(state_dir, env)
    )

    raw, _ = pick(args.listen, "listen")
    if raw is not None and not isinstance(raw, str):
        raise ConfigError(f"listen must be a string HOST:PORT, not {raw!r}")
    host, port = parse_listen(raw or DEFAULT_LISTEN)

    raw, _ = pick(args.log_level, "log_level")
    log_level = "info" if raw is None else raw
    if not isinstance(log_level, str) or log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")

    raw, _ = pick(args.durability, "durability")
    durability: Literal["normal", "full"]
    if raw is None or raw == "normal":
        durability = "normal"
    elif raw == "full":
        durability = "full"
    else:
        raise ConfigError(f"durability must be 'normal' or 'full', not {raw!r}")

    raw, _ = pick(args.max_request, "max_request")
    max_request = DEFAULT_MAX_REQUEST if raw is None else raw
    if type(max_request) is not int or not 1024 <= max_request <= 1 << 30:
        raise ConfigError(f"max_request must be a whole number of bytes from 1024 to 2**30, not {max_request!r}")

    raw, _ = pick(args.advertise, "advertise")
    advertise = () if raw is None else raw
    if not isinstance(advertise, list | tuple) or not all(isinstance(a, str) for a in advertise):
        raise ConfigError(f"advertise must be a list of HOST:PORT strings, not {advertise!r}")
    for text in advertise:
        parse_listen(text)  # same grammar as listen; raises ConfigError naming the bad value

    raw, _ = pick(args.lan, "lan")
    if raw is not None and not isinstance(raw, bool):
        raise ConfigError(f"lan must be true or false, not {raw!r}")
    lan = bool(raw)
    raw, _ = pick(args.lan_interfaces, "lan_interfaces")
    lan_interfaces = () if raw is None else raw
    if not isinstance(lan_interfaces, list | tuple) or not all(isinstance(a, str) and a for a in lan_interfaces):
        raise ConfigError(f"lan_interfaces must be a list of interface names, not {lan_interfaces!r}")
    raw, _ = pick(args.lan_name, "lan_name")
    lan_name = "" if raw is None else raw
    if not isinstance(lan_name, str) or len(lan_name) > 48:
        raise ConfigError(f"lan_name must be a name of at most 48 characters, not {lan_name!r}")

    try:
        tuning = Tuning.from_table(file_data.get("tuning", {}))
    except TuningError as e:
        raise ConfigError(f"config file {config_file}: {e}") from None
    extra = {k: v for k, v in file_data.items() if k not in _KNOWN_KEYS and k != "tuning"}
    return DaemonConfig(
        state_dir=state_dir,
        socket_path=socket_path,
        listen_host=host,
        listen_port=port,
        config_file=config_file,
        log_level=log_level.lower(),
        durability=durability,
        max_request=max_request,
        advertise=tuple(advertise),
        notify=_command(file_data.get("notify"), "notify"),
        deliver=_command(file_data.get("deliver"), "deliver"),
        tuning=tuning,
        lan=lan,
        lan_interfaces=tuple(lan_interfaces),
        lan_name=lan_name,
        extra=MappingProxyType(extra),
    )
