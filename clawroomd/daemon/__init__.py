"""The clawroomd daemon: local API (JSON-RPC over a Unix socket), rooms, both sides of the peer link, store,
entry point. `wiring.py` is where the parts meet."""
