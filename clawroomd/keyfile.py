"""The daemon's long-term keys on disk: a raw 32-byte file each, mode 0600, in a private folder.

* ``identity.key``: the Ed25519 seed of this daemon's identity (its peer id derives from it).
* ``noise.key``: the X25519 static private key of the Noise channel.

Created on first use from ``os.urandom``: the bytes go to a private temp file (O_EXCL, 0600) in the same
folder, are fsynced, then hard-linked to the final name, which fails if the name exists -- so a key
file is never seen half-written and two racing starts end up with the same key. On load the file must
be a regular file owned by us, not accessible by group or others, and exactly 32 bytes; otherwise
KeyFileError explains what to fix. The folder follows `clawroomd.private_files`: created 0700, or an
existing one that is ours with no group or other access (never chmod-ed by us).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from clawroomd.core.identity import Identity
from clawroomd.private_files import UnsafeFolder, atomic_write, ensure_private_dir

KEY_SIZE = 32


class KeyFileError(Exception):
    """A key file or its folder is unsafe or damaged; the message says what to do."""


def _check_folder(folder: Path) -> None:
    try:
        ensure_private_dir(folder, what="the key folder")
    except UnsafeFolder as e:
        raise KeyFileError(str(e)) from None


def _create(path: Path) -> None:
    atomic_write(path, os.urandom(KEY_SIZE), replace=False)  # someone else created it first: use theirs


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
