"""``python -m clawroomd.daemon``: same as the ``clawroomd`` command."""

import sys

from .main import main

sys.exit(main())
