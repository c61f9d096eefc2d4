"""A small real tmpfs for disk-full tests (needs root: CI runs as root), unmounted however the test ends."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """Mount a `size_kb` KiB tmpfs (mode 0700) at `path`; skip the test, saying why, if mounting is not allowed."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a real disk-full test (needs root): {out.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)  # still busy: detach it lazily


def fill(folder: Path) -> Path:
    """Write a filler file in `folder` until the disk refuses one more byte; returns it (unlink to free)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * chunk) < chunk:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler
