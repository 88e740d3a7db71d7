"""The `shipyard` command line. Subcommands are imported only when invoked."""
