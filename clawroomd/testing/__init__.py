"""Helpers for tests, benchmarks and the demo (like `trio.testing`): real daemons in child processes.

Nothing here is imported by the daemon or the CLI's ordinary commands.
"""

from .daemons import DaemonProcess, free_port

__all__ = ["DaemonProcess", "free_port"]
