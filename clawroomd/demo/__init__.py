"""The demo's agent: `python -m clawroomd.demo.negotiator --role host|guest` is a complete example of an
`--agent` command. `clawroom demo` (clawroomd.cli.demo) runs it on two daemons."""
