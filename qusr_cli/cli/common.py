"""What every qusr command shares: one-line errors, warnings on stderr, the stderr console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from qusr_cli.errors import QusrError

stderr = Console(stderr=True, highlight=False)
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


class _OneLineHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"qusr: {record.getMessage()}", err=True)


@contextmanager
def command_logging() -> Iterator[None]:
    """For one command, library warnings (halved tiles, missing encoder) become 'qusr: …' lines.

    The ``qusr`` logger is restored afterwards: a library must not stay configured by one command for
    the next, or for a program that runs several commands in one process (tests, notebooks).
    """
    logger = logging.getLogger("qusr")
    handler = _OneLineHandler()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A QusrError ends the command with its message as one stderr line and its exit code."""
    try:
        yield
    except QusrError as exc:
        typer.echo(f"qusr: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("qusr: interrupted", err=True)
        raise typer.Exit(130) from None
