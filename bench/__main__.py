"""python -m bench: every figure of the speed goals in one table (see bench/all.py)."""

import sys

from .all import main

sys.exit(main())
