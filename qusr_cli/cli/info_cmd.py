"""`qusr info`: what this machine offers and which weights are present."""

from __future__ import annotations

import platform

import torch
from rich.console import Console
from rich.table import Table

from qusr_cli import __version__
from qusr_cli.cli.options import Weights
from qusr_cli.devices import default_threads, resolve_device
from qusr_cli.weights import load_registry, locate_component


def info(weights: Weights = None) -> None:
    """Show the device qusr would use, library versions and which model files are present."""
    table = Table(show_header=False, box=None)
    device = resolve_device("auto")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    table.add_row("qusr", __version__)
    table.add_row("python", platform.python_version())
    table.add_row("torch", torch.__version__)
    table.add_row("device (auto)", f"{device.type}: {name}")
    table.add_row("threads (default)", str(default_threads()))
    registry = load_registry(weights)
    table.add_row("weights list", str(registry.source))
    for model in registry.models.values():
        present = sum(locate_component(spec) is not None for spec in model.components.values())
        default = " (default)" if model.name == registry.default else ""
        table.add_row(f"model {model.name}{default}", f"{present}/{len(model.components)} files present")
    Console().print(table)
