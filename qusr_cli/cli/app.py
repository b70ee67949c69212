"""The `qusr` command: sub-commands are mounted here, each defined in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from qusr_cli import __version__
from qusr_cli.cli.bench_cmd import bench
from qusr_cli.cli.common import command_group, command_logging
from qusr_cli.cli.explain_cmd import explain
from qusr_cli.cli.info_cmd import info
from qusr_cli.cli.train_cmd import train_app
from qusr_cli.cli.upscale_cmd import batch, upscale
from qusr_cli.cli.weights_cmd import weights_app

app = command_group(help="qusr: 4x upscaling of real-world photos, honest about what it invents.",
                    pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qusr {__version__}")
        raise typer.Exit()


@app.callback()
def root(context: typer.Context,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    context.with_resource(command_logging())


app.command()(upscale)
app.command()(batch)
app.command()(explain)
app.command()(info)
app.command()(bench)
app.add_typer(weights_app, name="weights")
app.add_typer(train_app, name="train")


def main() -> None:
    # Errors become one line inside every command group (cli/common.py: QusrGroup), the one boundary.
    app()
