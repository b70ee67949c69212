"""What every qusr command shares: one-line errors, warnings on stderr, the stderr console."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click
import typer
from rich.console import Console

from qusr_cli.errors import QusrError, describe_failure, reraise_if_interrupted

stderr = Console(stderr=True, highlight=False)


class _OneLineHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"qusr: {record.getMessage()}", err=True)


def setup_logging() -> None:
    """Library warnings (placeholder model, halved tiles, missing encoder) become 'qusr: …' lines."""
    logger = logging.getLogger("qusr")
    if not any(isinstance(h, _OneLineHandler) for h in logger.handlers):
        logger.addHandler(_OneLineHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # tifffile logs what it finds wrong in a damaged TIFF; qusr says it once, as its own one line.
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A QusrError ends the command with its message as one stderr line and its exit code; any other
    exception with one line too (exit 1); Ctrl-C with exit 130, SIGTERM (errors.Terminated) with 143."""
    try:
        yield
    except QusrError as exc:
        typer.echo(f"qusr: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # Typer's own ways to end a command
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
