"""The ``clawroom`` command-line client (entry point: `clawroomd.cli.main:main`).

Kept light on purpose: importing this package imports nothing but the standard library; each command
imports what it needs when it runs. Exit codes are documented in `clawroomd.cli.main`.
"""
