"""`python -m qusr_cli.cli`: the `qusr` command without its console script."""

from qusr_cli.cli.app import main

main()
