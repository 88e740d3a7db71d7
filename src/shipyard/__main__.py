"""`python -m shipyard` runs the CLI."""

from shipyard.cli.main import main

main()
