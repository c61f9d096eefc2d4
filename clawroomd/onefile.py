"""The entry point of the single-file build (`dist/clawroomd.pyz`): one file that is both programs.

`clawroomd.pyz [daemon args]` runs the daemon; `clawroomd.pyz clawroom [cli args]`, or the file run
through a symlink named `clawroom`, runs the CLI. Nothing else imports this module, and it imports
each program only once it has chosen, so the CLI keeps its fast start (no trio, no cryptography).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

CLI_NAMES = frozenset({"clawroom", "clawroom.pyz"})
DAEMON_NAMES = frozenset({"clawroomd", "clawroomd.pyz"})


def choose(argv: Sequence[str]) -> tuple[str, list[str]]:
    """("cli" | "daemon", the arguments for that program) for a full argv (argv[0] is the file run)."""
    called = os.path.basename(argv[0]) if argv else ""
    rest = list(argv[1:])
    if called in CLI_NAMES:
        return "cli", rest
    if rest and rest[0] in CLI_NAMES:
        return "cli", rest[1:]
    if rest and rest[0] in DAEMON_NAMES:  # `clawroomd.pyz clawroomd --help` says it as plainly as the CLI form
        return "daemon", rest[1:]
    return "daemon", rest


def main(argv: Sequence[str] | None = None) -> int:
    program, args = choose(sys.argv if argv is None else argv)
    if program == "cli":
        from clawroomd.cli.main import main as cli_main

        return cli_main(args)
    from clawroomd.daemon.main import main as daemon_main

    return daemon_main(args)


if __name__ == "__main__":
    sys.exit(main())
