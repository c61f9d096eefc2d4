"""The one private-folder policy (state dir, key folder, room folders, socket folder) on real folders, and
the daemon refusing an existing non-private --state-dir without touching it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clawroomd.daemon.main import EXIT_CANNOT_START
from clawroomd.daemon.rpc import SocketSetupError, prepare_socket_dir
from clawroomd.daemon.store import Store, UnsafeStateDir
from clawroomd.keyfile import KeyFileError, load_or_create_secret
from clawroomd.private_files import UnsafeFolder, atomic_write, ensure_private_dir

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_a_new_folder_is_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert ensure_private_dir(tmp_path / "a" / "b" / "state", what="the state dir") is True
    finally:
        os.umask(old)
    assert mode(tmp_path / "a" / "b" / "state") == 0o700
    assert ensure_private_dir(tmp_path / "a" / "b" / "state", what="the state dir") is False


@pytest.mark.parametrize("bits", [0o755, 0o750, 0o705, 0o770, 0o777, 0o1777])
def test_an_existing_folder_with_group_or_other_bits_is_refused_and_left_alone(tmp_path: Path, bits: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, bits)
    with pytest.raises(UnsafeFolder, match=rf"other users have access to it \(mode {bits & 0o7777:04o}\)"):
        ensure_private_dir(shared, what="the state dir")
    assert stat.S_IMODE(shared.stat().st_mode) == bits and listing(shared) == []


def test_a_symlink_is_judged_by_its_target(tmp_path: Path) -> None:
    home = tmp_path / "home"  # like `--state-dir ~/link` with `link -> ~`, a 0755 folder
    home.mkdir()
    os.chmod(home, 0o755)
    (tmp_path / "link").symlink_to(home)
    with pytest.raises(UnsafeFolder, match="mode 0755"):
        ensure_private_dir(tmp_path / "link", what="the state dir")
    assert mode(home) == 0o755
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (tmp_path / "plink").symlink_to(private)
    assert ensure_private_dir(tmp_path / "plink", what="the state dir") is False
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafeFolder, match="symlink to nothing"):
        ensure_private_dir(tmp_path / "dangling", what="the state dir")
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_of_another_user_or_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafeFolder, match="not a folder"):
        ensure_private_dir(tmp_path / "file", what="the state dir")
    if os.getuid() != 0:
        pytest.skip("needs root to chown")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(UnsafeFolder, match="belongs to uid 65534"):
        ensure_private_dir(theirs, what="the state dir")


def test_store_keys_and_socket_share_the_policy(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    with pytest.raises(UnsafeStateDir, match="mode 0755"):
        Store(shared)
    with pytest.raises(KeyFileError, match="mode 0755"):
        load_or_create_secret(shared / "noise.key")
    with pytest.raises(SocketSetupError, match="mode 0755"):
        prepare_socket_dir(shared)
    assert mode(shared) == 0o755 and listing(shared) == []
    # inside a private state dir, a rooms/ folder someone opened up is refused too (not chmod-ed)
    state = tmp_path / "state"
    Store(state).close()
    os.chmod(state / "rooms", 0o755)
    with pytest.raises(UnsafeStateDir, match="rooms"):
        Store(state)
    assert mode(state / "rooms") == 0o755


def test_atomic_write_replaces_or_only_creates(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert atomic_write(path, b"one") is True
    assert mode(path) == 0o600 and path.read_bytes() == b"one"
    assert atomic_write(path, b"two") is True and path.read_bytes() == b"two"
    assert atomic_write(path, b"three", replace=False) is False and path.read_bytes() == b"two"
    assert listing(tmp_path) == ["f"]  # no temp files left


def run_daemon(state: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "XDG_RUNTIME_DIR")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "clawroomd.daemon", "--state-dir", str(state), "--listen", "127.0.0.1:0"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["0755 folder", "symlink to a 0755 folder", "world-writable folder"])
def test_the_daemon_refuses_a_non_private_state_dir_and_leaves_nothing(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "folder"
    target.mkdir()
    os.chmod(target, 0o777 if kind == "world-writable folder" else 0o755)
    (target / "notes.txt").write_text("the owner's own file")
    state = target
    if kind.startswith("symlink"):
        state = tmp_path / "link"
        state.symlink_to(target)
    before = (mode(target), listing(target))
    out = run_daemon(state)
    assert out.returncode == EXIT_CANNOT_START, out.stderr
    assert "refusing to use" in out.stderr and "chmod 700" in out.stderr and "Traceback" not in out.stderr
    assert (mode(target), listing(target)) == before  # not chmod-ed, no clawroomd.lock, no database
