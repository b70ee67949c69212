"""A shallower RRDBNet cut from a deeper one: its first K residual-in-residual blocks, all of its head and tail.

Distilling Real-ESRGAN into a net that fits qusr's speed budget is far cheaper from its own first
blocks than from random weights: truncated, the net is already near the teacher (the feature trunk
is shared; only the later refinements are missing) and fine-tuning to the teacher's outputs closes
most of the gap in a few hundred steps (docs/model-card.md, "The distilled g"). The result keeps the
source's provenance and licence in its header.
"""

from __future__ import annotations

from pathlib import Path

from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.errors import WeightsError
from qusr_cli.weights.checkpoint import load_checkpoint, read_header, save_checkpoint
from qusr_cli.weights.header import provenance
from qusr_cli.weights.registry import file_sha256


def truncate_rrdbnet(source: str | Path, blocks: int, out: str | Path) -> Path:
    """Write an RRDBNet with ``blocks`` of ``source``'s blocks (the first ones) as an aux checkpoint."""
    source = Path(source)
    header = read_header(source)
    if header.arch != RRDBNet.arch_name:
        raise WeightsError(f"{source}: a {header.arch} network; only an RRDBNet can be cut to fewer blocks")
    depth = header.config["num_block"]
    if not 1 <= blocks < depth:
        raise WeightsError(f"{source} has {depth} blocks: keep between 1 and {depth - 1}, not {blocks}")
    deep = load_checkpoint(source, role=header.role)
    shallow = RRDBNet(**{**header.config, "num_block": blocks})
    shallow.load_state_dict({key: value for key, value in deep.state_dict().items()
                             if not key.startswith("body.") or int(key.split(".")[1]) < blocks})
    info = {**provenance(header.info),
            "truncated_from": {"file": source.name, "sha256": file_sha256(source), "blocks": depth,
                               "kept": blocks}}
    return save_checkpoint(out, shallow, role="aux", info=info)
