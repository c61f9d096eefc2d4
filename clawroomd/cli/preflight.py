"""`clawroom preflight [--json] [--context PROFILE]`: is this machine ready for a room?

The product page's `clawroom_preflight.py --json` as a command. Each check is `ok`, `warn` (works, but
read this), `fail` (a room would not work: the check says what to do) or `skip` (cannot be checked without
the daemon). Ready means no check failed; not ready exits 1. The file checks run here, in the CLI: the
local API admits only the daemon's own uid (SO_PEERCRED), so the CLI sees the same files the daemon does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clawroomd
from clawroomd.client import ApiError, Client, ClientError, default_state_dir, resolve_socket_path
from clawroomd.private_files import UnsafeFolder, check_private_dir

from . import render
from .exits import EXIT_ERROR, EXIT_OK
from .options import Config

PREFLIGHT_HELP = (
    "Check that this machine is ready for a room: the daemon answers, its folders and keys are private, your "
    "owner context is written, the peer listener is bound and advertised, there is disk space. "
    "Exit 0: ready; 1: not ready (each failed check says what to do)."
)
DISK_FAIL = 64 << 20  # bytes free below which a room's writes would soon fail (SQLite, transcripts, results)
DISK_WARN = 512 << 20
ORDER = (
    "daemon", "version", "socket", "state_dir", "identity_key", "storage", "disk_space", "owner_context",
    "peer_listener", "advertise",
)  # fmt: skip
START_DAEMON = "start it: `clawroomd &` (or `systemctl --user enable --now clawroomd.socket`, see the README)"


def add_preflight(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--context", metavar="PROFILE", help="the owner-context profile to check (default: default, as create/join)"
    )


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str | None = None

    def view(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, **({"fix": self.fix} if self.fix else {})}


def _private_file(path: Path, what: str) -> Check:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return Check("fail", f"{what} {path} is missing", "restart clawroomd: it creates the key at start")
    except OSError as err:
        return Check("fail", f"cannot read {path}: {err.strerror}", f"check the permissions of {path.parent}")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        return Check("fail", f"{path} is not a regular file of yours", "move it away and restart clawroomd")
    if mode & 0o077:
        return Check("fail", f"{path} is readable by others (mode {mode:04o})", f"chmod 600 {path}")
    return Check("ok", f"{path} (mode {mode:04o})")


def _state_dir(path: Path, running: bool) -> Check:
    if not path.exists() and not running:
        return Check(
            "warn",
            f"the default state dir {path} does not exist yet",
            "clawroomd creates it (0700) when it first starts",
        )
    try:
        check_private_dir(path, what="the state dir")
    except UnsafeFolder as err:
        return Check("fail", str(err), f"chmod 700 {path}, or start clawroomd with --state-dir NEW_FOLDER")
    if not os.access(path, os.W_OK | os.X_OK):
        return Check("fail", f"{path} is not writable", f"chmod 700 {path}")
    return Check("ok", f"{path} is private (0700) and writable")


def _disk(path: Path) -> Check:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError as err:
        return Check("warn", f"cannot tell the free space at {path}: {err.strerror}")
    said = f"{free / (1 << 20):,.0f} MiB free at {path}"
    if free < DISK_FAIL:
        return Check("fail", said, f"free space on that file system (at least {DISK_WARN >> 20} MiB)")
    if free < DISK_WARN:
        return Check("warn", said, "free some space: rooms, transcripts and results are written there")
    return Check("ok", said)


def _socket(path: Path) -> Check:
    try:
        st = path.lstat()
    except OSError as err:
        return Check("warn", f"{path}: {err.strerror} (the daemon answered through it)")
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISSOCK(st.st_mode) and not mode & 0o077:
        return Check("ok", f"{path} (mode {mode:04o}; callers' uid checked)")
    return Check("warn", f"{path} has mode {mode:04o}", "the daemon checks each caller's uid; chmod 600 it anyway")


def _context(c: Client, profile: str | None) -> Check:
    name = profile or "default"
    option = f" --profile {name}" if profile else ""
    try:
        shown = c.call("context.show", **({"profile": profile} if profile else {}))
    except ApiError as err:
        if err.code == "no_context":
            return Check(
                "fail",
                f"no owner context in profile {name!r}: your agent would negotiate without your facts and goals",
                f'clawroom context write{option} --owner-name NAME --task-context "..." --confirmed-fact "..."',
            )
        rewrite = f"rewrite it: clawroom context write{option} --replace --owner-name NAME ..."
        return Check("fail", err.message, rewrite if err.code == "bad_context" else None)
    ctx = shown["context"]
    facts = len(ctx.get("confirmed_facts") or [])
    return Check("ok", f"profile {name!r}: owner {render.safe(ctx.get('owner_name'))}, {facts} confirmed fact(s)")


def run_checks(cfg: Config) -> dict[str, Any]:
    """The preflight report (the JSON `--json` prints)."""
    sock = resolve_socket_path(cfg.socket)
    checks: dict[str, Check] = {}
    info: dict[str, Any] | None = None
    skip = Check("skip", "the daemon is not answering")
    try:
        with Client(sock, timeout=10.0) as c:
            info = c.call("daemon.info")
            checks["daemon"] = Check("ok", f"clawroomd {info['version']} answers on {sock}")
            checks["owner_context"] = _context(c, cfg.context)
    except ClientError as err:
        checks["daemon"] = Check("fail", str(err), START_DAEMON)
        checks["owner_context"] = skip
    state = Path(info["state_dir"]) if info else default_state_dir()
    checks["state_dir"] = _state_dir(state, info is not None)
    if info is None:
        checks.update(version=skip, socket=skip, identity_key=skip, storage=skip, peer_listener=skip, advertise=skip)
    else:
        version = Check("ok", f"daemon and CLI are {clawroomd.__version__}")
        if info["version"] != clawroomd.__version__:
            version = Check(
                "warn", f"the daemon runs {info['version']}, this CLI is {clawroomd.__version__}", "restart clawroomd"
            )
        checks["version"] = version
        checks["socket"] = _socket(Path(info["socket"]))
        checks["identity_key"] = _private_file(state / "identity.key", "the identity key")
        storage = info.get("storage", "ok")
        checks["storage"] = (
            Check("ok", "the database is healthy")
            if storage == "ok" and not info.get("damaged_rooms")
            else Check(
                "fail" if storage != "ok" else "warn",
                f"storage {storage}; rooms not served: {', '.join(info.get('damaged_rooms') or []) or 'none'}",
                "free disk space (the daemon recovers by itself); a damaged room: see the README, Where files live",
            )
        )
        listen = info.get("listen") or []
        checks["peer_listener"] = (
            Check("ok", f"listening for peers on {', '.join(listen)}")
            if listen
            else Check("fail", "no peer listener is bound", "restart clawroomd (see its log for the address error)")
        )
        advertise = info.get("advertise")
        checks["advertise"] = (
            Check("ok", f"join URLs carry {', '.join(advertise)}")
            if advertise
            else Check(
                "warn",
                "join URLs carry no address to dial (the listener is 0.0.0.0 and no --advertise is set): a guest "
                "cannot reach a room you host",
                "start clawroomd with --advertise HOST:PORT, or pass --advertise HOST:PORT to `clawroom create`",
            )
        )
    checks["disk_space"] = _disk(state)
    checks = {name: checks[name] for name in ORDER}
    ready = all(check.status != "fail" for check in checks.values())
    return {
        "status": "ready" if ready else "not_ready",
        "state_root": str(state),
        "daemon": {
            "running": info is not None,
            "version": info["version"] if info else None,
            "listen": info.get("listen") if info else None,
            "advertise": info.get("advertise") if info else None,
        },
        "peer_id": info["peer_id"] if info else None,
        "socket": str(sock),
        "checks": {name: check.view() for name, check in checks.items()},
    }


def preflight_text(report: dict[str, Any]) -> str:
    checks = report["checks"]
    failed = [n for n, c in checks.items() if c["status"] == "fail"]
    head = "READY" if report["status"] == "ready" else f"NOT READY ({len(failed)} of {len(checks)} checks failed)"
    width = max(len(name) for name in checks)
    lines = [f"clawroom preflight: {head}", f"state dir: {report['state_root']} · socket: {report['socket']}"]
    if report["peer_id"]:
        lines.append(f"peer id: {report['peer_id']}")
    for name, check in checks.items():
        mark = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}[check["status"]]
        lines.append(f"  {mark:<4}  {name:<{width}}  {render.safe(check['detail'])}")
        if check.get("fix") and check["status"] in ("fail", "warn"):
            lines.append(f"  {'':<4}  {'':<{width}}  -> {render.safe(check['fix'])}")
    return "\n".join(lines)


def cmd_preflight(cfg: Config) -> int:
    report = run_checks(cfg)
    print(render.json_line(report) if cfg.json else preflight_text(report), flush=True)
    return EXIT_OK if report["status"] == "ready" else EXIT_ERROR
