"""The sans-IO protocol core: no sockets, no trio, no clock, no randomness of its own."""
