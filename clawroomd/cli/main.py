"""``clawroom``: the command-line client of the local clawroomd daemon.

The command line is parsed into a `Config`; each command is a function of that config (in
`clawroomd.cli.commands`, imported only when a command runs); `describe_error` is the one place that
turns an exception into a message and an exit code. Commands talk to the daemon with the small
synchronous client (no trio, no cryptography), so the CLI starts fast.

Exit codes: `clawroomd.cli.exits`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from .exits import EXIT_OK, describe_error
from .options import Config
from .parser import parse


def run(cfg: Config) -> int:
    """Run one command; every failure becomes a message on stderr (or JSON on stdout) and an exit code."""
    try:
        from . import commands
        from .room_ref import resolve_room

        cfg = resolve_room(cfg)  # `--room cr_8f2a`: the start of an id, as the product page writes it
        code: int = getattr(commands, "cmd_" + cfg.command)(cfg)
        return code
    except BrokenPipeError:  # `clawroom watch ... | head`: the reader left
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lets the interpreter's final flush succeed
        return EXIT_OK
    except (Exception, KeyboardInterrupt) as exc:
        message, code, name = describe_error(exc)
        if os.environ.get("CLAWROOM_DEBUG") and name == "internal":
            raise
        if cfg.json:
            import json

            print(json.dumps({"error": name, "message": message, "exit_code": code}), flush=True)
        else:
            from .render import safe  # the message may quote the peer (a refusal's reason)

            print(f"clawroom: {safe(message)}", file=sys.stderr, flush=True)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse(argv))


if __name__ == "__main__":  # python -m clawroomd.cli.main: run the importable module, so that the
    from clawroomd.cli.main import main as _main  # exception classes the commands raise are these ones

    sys.exit(_main())
