"""The owner's side, pure: reading numbers and dates, the leak guard and authority limits.

Like the core it is sans-IO (no trio, no I/O, no clock): the daemon feeds it strings and acts on the answer.
"""
