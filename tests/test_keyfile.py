"""Key files: created private and once, refused when unsafe or damaged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clawroomd.keyfile import KeyFileError, load_or_create_identity, load_or_create_secret


def test_identity_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "identity.key"
    first = load_or_create_identity(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes() == first.seed() and len(first.seed()) == 32
    again = load_or_create_identity(path)
    assert again.public_key == first.public_key and again.peer_id == first.peer_id
    assert [p.name for p in path.parent.iterdir()] == ["identity.key"]  # no temp files left


def test_secret_is_created_once(tmp_path: Path) -> None:
    a = load_or_create_secret(tmp_path / "noise.key")
    b = load_or_create_secret(tmp_path / "noise.key")
    assert a == b and len(a) == 32
    assert load_or_create_secret(tmp_path / "other.key") != a


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "identity.key"
    load_or_create_identity(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_identity(path)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_refuses_wrong_size(tmp_path: Path, size: int) -> None:
    path = tmp_path / "noise.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * size)
    os.close(fd)
    with pytest.raises(KeyFileError, match=f"{size} bytes, expected 32"):
        load_or_create_secret(path)


def test_refuses_other_owner(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to chown")
    path = tmp_path / "identity.key"
    load_or_create_identity(path)
    os.chown(path, 65534, 65534)
    with pytest.raises(KeyFileError, match="belongs to uid 65534"):
        load_or_create_identity(path)


def test_refuses_symlink_and_writable_folder(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_or_create_secret(real)
    (tmp_path / "link.key").symlink_to(real)
    with pytest.raises(KeyFileError, match="cannot open"):
        load_or_create_secret(tmp_path / "link.key")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(KeyFileError, match="other users have access"):
        load_or_create_secret(shared / "noise.key")
    assert not (shared / "noise.key").exists()
