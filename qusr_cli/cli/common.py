"""What every qusr command shares: the one error boundary, warnings on stderr, the stderr console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from typer.core import TyperGroup

from qusr_cli.errors import InputError, QusrError, describe_failure, reraise_if_interrupted

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
    # tifffile logs what it finds wrong in a damaged TIFF; qusr says it once, as its own one line.
    tifffile_logger = logging.getLogger("tifffile")
    tifffile_level = tifffile_logger.level
    tifffile_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        tifffile_logger.setLevel(tifffile_level)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A QusrError ends the command with its message as one stderr line and its exit code; any other
    exception with one line too (exit 1); Ctrl-C with exit 130, SIGTERM (errors.Terminated) with 143."""
    try:
        yield
    except QusrError as exc:
        typer.echo(f"qusr: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise  # Typer's own ways to end a command (usage errors and bad parameters among them)
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line, never a traceback
        try:
            reraise_if_interrupted(exc)
        except KeyboardInterrupt as interrupt:
            _interrupted(interrupt)
        typer.echo(f"qusr: error: {describe_failure(exc)}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM as errors.Terminated
        _interrupted(interrupt)


def _interrupted(interrupt: KeyboardInterrupt):
    typer.echo("qusr: interrupted", err=True)
    raise typer.Exit(getattr(interrupt, "exit_code", 130)) from None


class QusrGroup(TyperGroup):
    """The error boundary: every command of a group made by :func:`command_group` runs inside
    :func:`one_line_errors`, whether the group is ``qusr`` itself or a sub-app run on its own."""

    def invoke(self, ctx):
        with one_line_errors():
            return super().invoke(ctx)


def command_group(**settings) -> typer.Typer:
    """A Typer app whose commands share the error boundary (``qusr``, ``qusr weights``, ``qusr train``)."""
    return typer.Typer(cls=QusrGroup, no_args_is_help=True, context_settings=HELP_OPTIONS, **settings)


def parse_numbers(text: str, option: str, kind: type = int, minimum: float | None = None,
                  maximum: float | None = None) -> list:
    """A comma-separated list option ("1,2,4"; "" is empty) as numbers of ``kind`` in [minimum, maximum]."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    # written as "not inside" so that a NaN is refused too
    if minimum is not None and any(not v >= minimum for v in values):
        raise InputError(f"{option}: every value must be at least {minimum}")
    if maximum is not None and any(not v <= maximum for v in values):
        raise InputError(f"{option}: every value must be at most {maximum}")
    return values
