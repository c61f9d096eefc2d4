"""clawroomd: peer-to-peer negotiation rooms for two owners' AI agents."""

__version__ = "0.1.0"
