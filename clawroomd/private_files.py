"""The one policy for the daemon's private folders and files (state dir, key folder, room folders, socket
folder), so that every place that creates or accepts a folder decides the same way.

Folders. A folder we create is made 0700. An existing folder is used only if it is already private: a
folder (a symlink to one is followed, and must itself be ours), owned by us, with no group or other
permission bits. We never chmod a folder we did not create -- tightening someone's ``~`` or a shared
folder behind their back would break whatever else lives there -- we refuse with a message saying what
to do instead, and nothing is created inside a refused folder.

Files. ``atomic_write`` puts bytes under a name all at once (temp file in the same folder, fsync, rename
or link, fsync the folder), mode 0600: a reader sees the old content or the new, never half of it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


class UnsafeFolder(Exception):
    """A folder that exists but may not hold private files; the message says why and what to do."""


def check_private_dir(path: Path, *, what: str) -> None:
    """Raise UnsafeFolder unless `path` is an existing folder owned by us with no group/other access.

    `what` names the folder's use in the message ("the state dir", "the socket folder", ...).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UnsafeFolder(f"{what} {path} does not exist") from None
    except OSError as e:
        raise UnsafeFolder(f"cannot use {path} as {what}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"cannot use {path} as {what}: it is not a folder")
    uid = os.getuid()
    if st.st_uid != uid:
        raise UnsafeFolder(
            f"refusing to use {path} as {what}: it belongs to uid {st.st_uid}, not to us (uid {uid}); "
            "name a folder of your own, or one that does not exist yet (it is then created private)"
        )
    if path.is_symlink():
        link_uid = path.lstat().st_uid
        if link_uid not in (uid, 0):
            raise UnsafeFolder(
                f"refusing to use {path} as {what}: the symlink belongs to uid {link_uid}, not to us or root"
            )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise UnsafeFolder(
            f"refusing to use {path} as {what}: other users have access to it (mode {mode:04o}) and clawroomd "
            f"did not create it, so it will not change it. Name a folder that does not exist yet (clawroomd "
            f"creates it 0700), or, if {path} is meant for clawroomd alone, run `chmod 700 {path}`"
        )


def ensure_private_dir(path: Path, *, what: str) -> bool:
    """Create `path` as a 0700 folder (parents as ``mkdir -p`` would), or check an existing one with
    ``check_private_dir``. Returns True if we created it. Raises UnsafeFolder, or OSError when it cannot
    be created."""
    if os.path.lexists(path) and not path.exists():
        raise UnsafeFolder(f"cannot use {path} as {what}: it is a symlink to nothing")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # someone made it meanwhile: judge it like any existing folder
            check_private_dir(path, what=what)
            return False
        os.chmod(path, PRIVATE_DIR_MODE)  # ours, just made: the umask must not have widened or narrowed it
        return True
    check_private_dir(path, what=what)
    return False


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE, replace: bool = True) -> bool:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, then rename over `path`
    (``replace=True``) or hard-link to it only if it does not exist yet (``replace=False``: two racing
    writers end up with the first one's bytes). Fsyncs the folder. Returns False only when
    ``replace=False`` and `path` already existed (nothing was changed)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    created = True
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                created = False
    finally:
        with contextlib.suppress(OSError):  # gone already after a rename; never mask the real error
            os.unlink(tmp)
    fsync_dir(path.parent)
    return created
