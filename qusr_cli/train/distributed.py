"""Training on several processes: ``qusr train …`` launched by ``torchrun --nproc-per-node N``.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them (or with one process) everything here
is a no-op and training runs exactly as before. With them, every process joins one process group
(NCCL on CUDA, gloo on the CPU), uses GPU ``LOCAL_RANK``, and wraps its model in
DistributedDataParallel, which averages the gradients. The processes start from the same weights
(DDP broadcasts rank 0's) and take the same averaged steps, so the weights and the EMA stay the
same everywhere; :meth:`Distributed.check_same` verifies that at every save.

Data: ``--batch`` is per process. Step s of the run uses samples s·B·N … (s+1)·B·N − 1, rank r the
r-th B of them (:func:`shard_indices`); since sample i is a pure function of (seed, i), a resumed
run sees the same data. Only rank 0 logs, validates and writes checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model the training step calls: DDP over ``model`` when there are several processes."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Every parameter of the three models gets a gradient in every step (the denoiser's null
        # token too), so DDP need not search the graph for unused ones.
        return DistributedDataParallel(model, device_ids=ids)

    def gather(self, value: float) -> list[float]:
        """``value`` from every rank, in rank order (a collective: every rank must call it)."""
        if not self.active:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def check_same(self, model: nn.Module) -> None:
        """Raise if ``model``'s weights differ between ranks (they must not: same start, same steps)."""
        if not self.active:
            return
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        digests = [None] * self.world
        dist.all_gather_object(digests, digest.hexdigest())
        if len(set(digests)) > 1:
            raise RuntimeError(f"the weights differ between ranks ({len(set(digests))} versions)")

    def average_weights(self, module: nn.Module) -> None:
        """Set ``module``'s parameters to their mean over the ranks (a collective).

        For a net a task steps itself outside DDP (the GAN's discriminator): each rank updated it on
        its own crops, and averaging after every step keeps one discriminator, identical everywhere.
        Its optimizer state stays per rank; rank 0's is the one saved.
        """
        if not self.active:
            return
        with torch.no_grad():
            for param in module.parameters():
                dist.all_reduce(param.data)
                param.data /= self.world

    def finish(self) -> None:
        if self.active:
            dist.barrier()
            dist.destroy_process_group()


def launched_world() -> tuple[int, int, int]:
    """(rank, local rank, world size) as torchrun set them; (0, 0, 1) in a plain run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def quiet_other_ranks() -> None:
    """Send the stdout of ranks other than 0 to /dev/null: N copies of every line help nobody.

    Their stderr stays, so a failing rank still says why.
    """
    if launched_world()[0] > 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the rest of the process)


def start(device: torch.device) -> Distributed:
    """Join torchrun's process group if there is one; ``device`` becomes this rank's GPU on CUDA."""
    rank, local_rank, world = launched_world()
    if world == 1:
        return Distributed(device=device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Distributed(rank=rank, world=world, device=device)


def rank_and_world() -> tuple[int, int]:
    """This process's place in the running process group, (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(step: int, batch: int, rank: int = 0, world: int = 1) -> range:
    """The samples rank ``rank`` of ``world`` trains on at ``step``: its B of the step's B·N."""
    first = (step * world + rank) * batch
    return range(first, first + batch)


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed (one process trains as before); the others get their own streams."""
    return seed if rank == 0 else seed * 65_537 + rank


def resume_streams(rng, seed: int, rank: int, step: int) -> None:
    """After a resume: the saved random state is rank 0's, so the other ranks start new streams."""
    if rank:
        stream_seed = rank_seed(seed, rank) * 1_000_003 + step
        torch.manual_seed(stream_seed)
        rng.seed(stream_seed)
