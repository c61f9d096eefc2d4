"""An agent command for the crash and partition suites: waits until a gate file exists, then runs the demo
negotiator (`clawroomd/demo/negotiator.py`, the real scripted agent) on the document it was given.

    python3 tests/gated_agent.py GATE NEGOTIATOR_PY --role host|guest

The gate holds every room's first move until all rooms are joined, so that they are all in flight
together. (The negotiator reads its owner's limits with clawroomd.owner, so this runs with the daemon's
PYTHONPATH, not isolated.)
"""

import os
import runpy
import sys
import time

gate, negotiator = sys.argv[1], sys.argv[2]
while not os.path.exists(gate):
    time.sleep(0.02)
sys.argv = [negotiator, *sys.argv[3:]]
runpy.run_path(negotiator, run_name="__main__")
