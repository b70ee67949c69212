"""Mean L1 to the HR crop of SR nets on crops degraded by the training pipeline itself (in distribution).

    python benchmarks/in_distribution.py qusr_cli/models/qusr-small-aux.safetensors runs/rrdb4.safetensors

The crops are the top-left 128 px of the first --images ground truths of --set (never training photos),
each degraded with Real-ESRGAN's second-order pipeline at seeds 100·i + s for s < --seeds. Bicubic is
the first row. A net that has learned the cleaning (noise, JPEG blocks) the pipeline teaches comes out
well below bicubic here even where NIQE on real photos prefers a noisier output.
"""

from __future__ import annotations

import argparse

import torch

from qusr_cli.aux_sr import bicubic_upsample
from qusr_cli.degradations import DegradationConfig, degrade
from qusr_cli.eval_sets import load_set
from qusr_cli.imageio import read_rgb8
from qusr_cli.weights.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="SR nets (aux checkpoints) to score.")
    parser.add_argument("--set", default="imagenet-val32", help="Paired set whose ground truths are cropped.")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=4, help="Degradations per crop.")
    parser.add_argument("--crop", type=int, default=128, help="HR crop side (a multiple of 4).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    nets = {path: load_checkpoint(path, role="aux") for path in args.checkpoints}
    totals = dict.fromkeys(["bicubic", *nets], 0.0)
    count = 0
    for index, image in enumerate(load_set(args.set).images[:args.images]):
        pixels = torch.from_numpy(read_rgb8(image.gt)[:args.crop, :args.crop].copy())
        hr = pixels.permute(2, 0, 1).float() / 255.0
        for seed in range(args.seeds):
            lr = degrade(hr, DegradationConfig(), 100 * index + seed)[0].clamp(0, 1)[None]
            with torch.no_grad():
                outputs = {"bicubic": bicubic_upsample(lr),
                           **{path: net(lr) for path, net in nets.items()}}
            for name, output in outputs.items():
                totals[name] += float((output.clamp(0, 1)[0] - hr).abs().mean())
            count += 1
    for name, total in totals.items():
        print(f"{total / count:.4f}  {name}")


if __name__ == "__main__":
    main()
