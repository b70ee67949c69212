"""`python -m qusr_cli …` runs the `qusr` command."""

from qusr_cli.cli.entry import main

if __name__ == "__main__":  # a spawned worker process imports this module too, and must not run qusr
    main()
