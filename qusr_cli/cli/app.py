"""The `qusr` command: sub-commands are mounted here, each defined in its own module.

Command modules import torch and the engine inside their functions, so `qusr --version`, `--help` and
shell completion stay fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from qusr_cli import __version__
from qusr_cli.cli.bench_cmd import BENCH_EXAMPLES, bench
from qusr_cli.cli.common import command_group, command_logging
from qusr_cli.cli.explain_cmd import EXPLAIN_EXAMPLES, explain
from qusr_cli.cli.info_cmd import INFO_EXAMPLES, info
from qusr_cli.cli.train_cmd import train_app
from qusr_cli.cli.upscale_cmd import BATCH_EXAMPLES, UPSCALE_EXAMPLES, batch, upscale
from qusr_cli.cli.weights_cmd import weights_app

app = command_group(help="qusr: 4x upscaling of real-world photos, honest about what it invents.",
                    epilog="Examples:\n\n  qusr upscale photo.jpg\n\n  qusr explain photo.jpg\n\n  qusr weights list",
                    pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qusr {__version__}")
        raise typer.Exit()


@app.callback()
def root(context: typer.Context,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    context.with_resource(command_logging())


app.command(epilog=UPSCALE_EXAMPLES)(upscale)
app.command(epilog=BATCH_EXAMPLES)(batch)
app.command(epilog=EXPLAIN_EXAMPLES)(explain)
app.command(epilog=INFO_EXAMPLES)(info)
app.command(epilog=BENCH_EXAMPLES)(bench)
app.add_typer(weights_app, name="weights")
app.add_typer(train_app, name="train")


def main() -> None:
    # Errors become one line inside every command group (cli/common.py: QusrGroup), the one boundary.
    app()
