"""``python -m clawroomd.demo``: same as ``clawroom demo``."""

import sys

from clawroomd.cli.main import main

sys.exit(main(["demo", *sys.argv[1:]]))
