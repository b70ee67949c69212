"""What every qusr command shares: the one error boundary, warnings on stderr, the stderr console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from typer.core import TyperGroup

from qusr_cli.errors import InputError, QusrError

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


class QusrGroup(TyperGroup):
    """The error boundary: every command of a group made by :func:`command_group` runs inside
    :func:`one_line_errors`, whether the group is ``qusr`` itself or a sub-app run on its own."""

    def invoke(self, ctx):
        with one_line_errors():
            return super().invoke(ctx)


def command_group(**settings) -> typer.Typer:
    """A Typer app whose commands share the error boundary (``qusr``, ``qusr weights``, ``qusr train``)."""
    return typer.Typer(cls=QusrGroup, no_args_is_help=True, context_settings=HELP_OPTIONS, **settings)


def parse_numbers(text: str, option: str, kind: type = int, minimum: float | None = None) -> list:
    """A comma-separated list option ("1,2,4"; "" is empty) as numbers of ``kind``, each at least ``minimum``."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    if minimum is not None and any(v < minimum for v in values):
        raise InputError(f"{option}: every value must be at least {minimum}")
    return values
