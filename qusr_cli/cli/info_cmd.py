"""`qusr info`: what this machine offers and which weights are present."""

from __future__ import annotations

import platform

from rich.table import Table

from qusr_cli import __version__
from qusr_cli.cli import options as opt
from qusr_cli.cli.output import Output

INFO_EXAMPLES = """Examples:

  qusr info

  qusr info --json | jq .device"""


def info(weights: opt.Weights = None, as_json: opt.Json = False) -> None:
    """Show the device qusr would use, library versions and which model files are present."""
    import torch

    from qusr_cli.devices import default_threads, resolve_device
    from qusr_cli.weights import load_registry, locate_component

    device = resolve_device("auto")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    registry = load_registry(weights)
    models = {}
    for model in registry.models.values():
        present = sum(locate_component(spec) is not None for spec in model.components.values())
        models[model.name] = {"default": model.name == registry.default, "files_present": present,
                              "files": len(model.components)}
    payload = {"qusr": __version__, "python": platform.python_version(), "torch": torch.__version__,
               "device": {"type": device.type, "name": name}, "threads": default_threads(),
               "weights_list": str(registry.source), "models": models}

    def table() -> Table:
        shown = Table(show_header=False, box=None)
        for key in ("qusr", "python", "torch"):
            shown.add_row(key, payload[key])
        shown.add_row("device (auto)", f"{device.type}: {name}")
        shown.add_row("threads (default)", str(payload["threads"]))
        shown.add_row("weights list", payload["weights_list"])
        for model_name, entry in models.items():
            default = " (default)" if entry["default"] else ""
            shown.add_row(f"model {model_name}{default}", f"{entry['files_present']}/{entry['files']} files present")
        return shown

    Output(as_json=as_json).result(payload, table)
