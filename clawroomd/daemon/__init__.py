"""The clawroomd daemon: local API (JSON-RPC over a Unix socket), room supervisor, store, entry point."""
