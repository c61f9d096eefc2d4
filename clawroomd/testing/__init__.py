"""Helpers for tests, benchmarks and the demo (like `trio.testing`): real daemons in child processes
(`DaemonProcess`), or wired inside the caller's trio run (`open_daemon`, in `clawroomd.testing.inprocess`,
imported from there so that the process harness stays free of trio).

Nothing here is imported by the daemon or the CLI's ordinary commands.
"""

from .daemons import DaemonProcess, daemon_pair, free_port, wait_for

__all__ = ["DaemonProcess", "daemon_pair", "free_port", "wait_for"]
