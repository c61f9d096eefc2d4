"""The daemon's long-term keys on disk: a raw 32-byte file each, mode 0600, in a private folder.

* ``identity.key``: the Ed25519 seed of this daemon's identity (its peer id derives from it).
* ``noise.key``: the X25519 static private key of the Noise channel.

Created on first use from ``os.urandom``: the bytes go to a private temp file (O_EXCL, 0600) in the same
folder, are fsynced, then hard-linked to the final name, which fails if the name exists -- so a key
file is never seen half-written and two racing starts end up with the same key. On load the file must
be a regular file owned by us, not accessible by group or others, and exactly 32 bytes; otherwise
KeyFileError explains what to fix. The folder must be ours and not writable by group or others
(a new folder is created 0700).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from clawroomd.core.identity import Identity

KEY_SIZE = 32


class KeyFileError(Exception):
    """A key file or its folder is unsafe or damaged; the message says what to do."""


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
        os.chmod(folder, 0o700)
        return
    st = folder.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise KeyFileError(f"{folder} is not a folder")
    if st.st_uid != os.getuid():
        raise KeyFileError(f"refusing to keep keys in {folder}: it belongs to uid {st.st_uid}, not to us")
    if st.st_mode & 0o022:
        raise KeyFileError(
            f"refusing to keep keys in {folder}: other users can write to it (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run `chmod 700 {folder}`"
        )


def _create(path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEY_SIZE))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # someone else created it first: use theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _load(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise KeyFileError(f"cannot open key file {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if st.st_uid != os.getuid():
            raise KeyFileError(
                f"key file {path} belongs to uid {st.st_uid}, not to us (uid {os.getuid()}); "
                "run the daemon as its owner"
            )
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"key file {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run `chmod 600 {path}` (and consider the key exposed if others could read it)"
            )
        if st.st_size != KEY_SIZE:
            raise KeyFileError(
                f"key file {path} is {st.st_size} bytes, expected {KEY_SIZE}: it is damaged or not a "
                "clawroomd key; restore it from a backup (deleting it creates a new identity)"
            )
        data = os.read(fd, KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_SIZE:
        raise KeyFileError(f"key file {path} changed while it was being read")
    return data


def load_or_create_key(path: str | os.PathLike[str]) -> bytes:
    """The 32 secret bytes in `path`, creating the file from os.urandom if it does not exist."""
    path = Path(path)
    _check_folder(path.parent)
    if not os.path.lexists(path):
        _create(path)
    return _load(path)


def load_or_create_identity(path: str | os.PathLike[str]) -> Identity:
    """This daemon's Ed25519 identity from its 32-byte seed file (created on first use)."""
    return Identity.from_seed(load_or_create_key(path))


def load_or_create_secret(path: str | os.PathLike[str]) -> bytes:
    """This daemon's 32-byte X25519 static private key for Noise (created on first use)."""
    return load_or_create_key(path)
