"""Training the auxiliary net g: L1 between g(LR) and the HR crop, plus the recipe's terms.

g is a CompactSR by default; ``arch="rrdbnet"`` trains a (shallow) RRDBNet instead, the shape of a
g distilled from Real-ESRGAN (``qusr weights truncate`` gives its starting weights).

With no recipe terms g is UPSR's fidelity estimate. With a teacher term (``--teacher-cache``) g also
learns the teacher's restoration; g runs once per image at LR size, so it is where this project can
afford the capacity restoration needs (docs/model-card.md, "The restoring g").
"""

from __future__ import annotations

import random

import torch
from torch import nn

from qusr_cli.archs.compact import CompactSR
from qusr_cli.archs.rrdbnet import RRDBNet
from qusr_cli.train.objective import RestorationObjective
from qusr_cli.train.recipe import PerceptualRecipe
from qusr_cli.train.validate import PairedSet, evaluate


class AuxTask:
    role = "aux"

    def __init__(self, num_feat: int = 48, num_conv: int = 10, upsample: str = "bicubic",
                 val_pairs: PairedSet | None = None, recipe: PerceptualRecipe = PerceptualRecipe(),
                 fft_weight: float = 0.0, arch: str = CompactSR.arch_name, num_block: int = 4):
        """``num_conv`` and ``upsample`` shape a CompactSR, ``num_block`` an RRDBNet; ``num_feat`` both."""
        if arch == RRDBNet.arch_name:
            self.model = RRDBNet(num_feat=num_feat, num_block=num_block)
        elif arch == CompactSR.arch_name:
            self.model = CompactSR(num_feat=num_feat, num_conv=num_conv, upsample=upsample)
        else:
            raise ValueError(f"g is a {CompactSR.arch_name} or an {RRDBNet.arch_name}, not {arch!r}")
        self.objective = RestorationObjective.from_recipe(recipe, fft_weight)
        self.adversary = self.objective.adversary
        self.val_pairs = val_pairs
        self._bicubic: dict[str, float] | None = None

    def loss(self, model: nn.Module, batch: dict, rng: random.Random) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective(model(batch["lr"]), batch)

    def validate(self, model: nn.Module) -> dict[str, float]:
        if self.val_pairs is None:
            return {}
        if self._bicubic is None:
            self._bicubic = evaluate("bicubic", self.val_pairs)
        device = next(model.parameters()).device
        pairs = PairedSet(self.val_pairs.lr.to(device), self.val_pairs.gt.to(device), self.val_pairs.names)
        ours = evaluate("aux", pairs, aux_net=model)
        return {"aux_psnr_y": ours["psnr_y"], "aux_sharpness": ours["sharpness"],
                "bicubic_psnr_y": self._bicubic["psnr_y"]}

    def header(self) -> dict:
        return {}

    def info(self) -> dict:
        return {"loss": self.objective.describe(), "params": sum(p.numel() for p in self.model.parameters())}
