"""`clawroom demo`: two local daemons negotiate one room with a scripted agent on each side.

`clawroomd.demo.run` runs it; `clawroomd.demo.negotiator` is the agent command each daemon calls.
"""
