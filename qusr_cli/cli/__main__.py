"""`python -m qusr_cli.cli`: the `qusr` command without its console script (the same entry as `qusr`)."""

from qusr_cli.cli.entry import main

if __name__ == "__main__":  # a spawned worker process imports this module too, and must not run qusr
    main()
