"""`qusr explain`: show a person stages 2 and 3 — where noise goes and what the critic saw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from qusr_cli.cli import options as opt
from qusr_cli.cli.groups import grouped
from qusr_cli.cli.output import Output
from qusr_cli.options import EngineOptions, UpscaleOptions

EXPLAIN_EXAMPLES = """Examples:

  qusr explain photo.jpg                      # writes photo_explain/ next to it

  qusr explain photo.jpg -o maps/ --critic builtin --json"""


@grouped(engine=opt.ENGINE.without(dtype="fp32"),
         options=opt.SAMPLING.without(steps=5, seed=0, color_fix="wavelet", candidates=1, select="niqe"))
def explain(
    source: Annotated[Path, typer.Argument(help="Input image.", show_default=False)],
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Where the maps go (default: next to the input).")] = None,
    as_json: opt.Json = False,
    max_pixels: opt.MaxPixels = None,
    *,
    engine: EngineOptions,
    options: UpscaleOptions,
) -> None:
    """Draw where qusr will invent detail and say what the critic found.

    Writes NAME_explain.png (the photo, where detail will be invented, and g(y), captioned, with a colour
    bar) and, for tools, the separate maps: uncertainty, noise weight, overlay and g(y) (aux).
    """
    from qusr_cli.heatmaps import explanation_in_words, save_explanation
    from qusr_cli.imageio import read_image

    image = read_image(source, max_pixels=max_pixels)
    upscaler = engine.load()
    explanation = upscaler.explain(image.rgb, options)
    folder = output_dir or source.with_name(source.stem + "_explain")
    settings = upscaler.bundle.settings
    critic_result = explanation.prior.critic
    findings, invented = explanation_in_words(explanation, settings.floor, upscaler.plain_sr)
    written = save_explanation(explanation, folder, source.stem, settings.floor, settings.psi_max,
                               (findings, invented))
    weight = explanation.weight
    summary = {
        "input": str(source),
        "findings": findings,
        "invented": invented,
        "critic": critic_result.source if critic_result else None,
        "report": critic_result.report.to_dict() if critic_result and critic_result.report else None,
        "critique": critic_result.critique if critic_result else None,
        "prior_text": explanation.prior.text,
        "uncertainty_mean": round(explanation.psi.mean().item(), 5),
        "noise_weight_mean": round(weight.mean().item(), 4),
        "full_noise_fraction": round((weight >= 0.999).float().mean().item(), 4),
        "figure": str(written[0]),
        "files": [str(p) for p in written],
    }
    Output(as_json=as_json).result(summary, lambda: _panel(summary))


def _panel(summary: dict) -> Panel:
    table = Table(show_header=True, box=None)
    for column in ("measure", "value", "level"):
        table.add_column(column)
    for name, measurement in (summary["report"] or {}).items():
        table.add_row(name, f"{measurement['value']:.3g} {measurement['unit']}", measurement["level"])
    body = [table] if summary["report"] else []
    lines = [summary["findings"], summary["invented"],
             f"critique ({summary['critic']}): {summary['critique']}" if summary["critique"] else "no critic",
             f"prior text: {summary['prior_text'] or '(none: null prior)'}",
             f"mean uncertainty psi: {summary['uncertainty_mean']}   mean noise weight w: "
             f"{summary['noise_weight_mean']}   full-noise area: {summary['full_noise_fraction']:.0%}",
             f"figure: {summary['figure']}", "maps for tools: " + ", ".join(summary["files"][1:])]
    return Panel(Group(*body, *map(escape, lines)), title=escape(f"qusr explain: {summary['input']}"))
