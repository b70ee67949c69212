"""The training loop every model shares: AdamW, warm-up + cosine, EMA, clipping, resume, logs.

A task (aux, critic, denoiser) supplies the model, the loss of a batch and a validation; this module
does the rest. The run folder holds:

- ``<role>.safetensors``: the EMA weights, a checkpoint ``load_checkpoint`` reads as it is (rewritten
  at every save, so a killed run still leaves usable weights);
- ``resume/state.safetensors`` + ``resume/state.json``: model, EMA, optimizer and RNG state (and a
  task's adversary: discriminator and its optimizer), and the scalars (no pickle anywhere, like the
  rest of the project);
- ``log.jsonl``: one JSON object per logged step and per validation;
- ``snapshots/<role>-step-<N>.safetensors`` (with ``keep_every``): the EMA weights of every Nth step,
  each a checkpoint whose header records its step and the CPU time spent to reach it.

Under ``torchrun`` the same loop runs in every process (see ``distributed``); only rank 0 writes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch
from rich.console import Console
from safetensors.torch import load_file, save_file
from torch import nn

from qusr_cli.devices import resolve_device
from qusr_cli.errors import WeightsError
from qusr_cli.provenance import git_commit
from qusr_cli.train import distributed
from qusr_cli.weights.checkpoint import save_checkpoint
from qusr_cli.weights.header import TrainingRun

console = Console(stderr=True)


@dataclass
class LoopConfig:
    steps: int = 2000
    batch: int = 16
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    min_lr_ratio: float = 0.05
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    save_every: int = 200
    keep_every: int = 0
    val_every: int = 500
    log_every: int = 10
    threads: int = 1
    device: str = "auto"
    num_workers: int = 1
    amp: str = "auto"  # auto: bf16 on CUDA only; bf16: also on CPU; none


class Task(Protocol):
    """What the loop trains. A task may also have an ``adversary``
    (:class:`~qusr_cli.train.adversarial.Adversary`, or None): the loop steps it after every
    generator step and saves and resumes it with the run."""

    role: str
    model: nn.Module

    def loss(self, model: nn.Module, batch: dict, rng: random.Random) -> tuple[torch.Tensor, dict[str, float]]:
        ...

    def validate(self, model: nn.Module) -> dict[str, float]:
        ...

    def info(self) -> dict:
        ...

    def header(self) -> dict:
        """Header sections the engine reads back (``weights.header``), beside the training record."""
        ...


def learning_rate(step: int, config: LoopConfig) -> float:
    """lr(t) = lr·t/W for t < W, then lr·[m + (1 − m)·½(1 + cos(π·(t − W)/(T − W)))], m = min_lr_ratio."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def ema_decay(step: int, decay: float) -> float:
    """d(t) = min(d, (1 + t)/(10 + t)): early on the EMA follows the fast-changing weights closely."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← d·θ_ema + (1 − d)·θ (buffers are copied)."""
    for target, source in zip(ema.parameters(), model.parameters()):
        target.lerp_(source.detach(), 1.0 - decay)
    for target, source in zip(ema.buffers(), model.buffers()):
        target.copy_(source)


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    if amp == "none":
        return None
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    return None


def hardware(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# --------------------------------------------------------------------------------------------
# Resume state (safetensors + JSON)


def _flat_optimizer(optimizer: torch.optim.Optimizer, prefix: str = "optim") -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors = {f"{prefix}.{index}.{name}": value.detach().cpu().contiguous()
               for index, slots in state["state"].items() for name, value in slots.items()}
    return tensors, state["param_groups"]


def _unflat_optimizer(tensors: dict[str, torch.Tensor], groups: list, prefix: str = "optim") -> dict:
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            index, name = key[len(prefix) + 1:].split(".", 1)
            slots.setdefault(int(index), {})[name] = value
    return {"state": slots, "param_groups": groups}


def _module_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})


@dataclass
class RunState:
    step: int = 0
    wall_s: float = 0.0
    # CPU seconds of the training process (all its threads, not DataLoader workers) summed over
    # resumes, counted from step cpu_from_step: a run saved before CPU time was counted counts from
    # its next resume on.
    cpu_s: float = 0.0
    cpu_from_step: int = 0
    validations: list = field(default_factory=list)


def save_resume(folder: Path, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer,
                run: RunState, rng: random.Random, adversary=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {**_module_tensors(model, "model"), **_module_tensors(ema, "ema")}
    optim_tensors, groups = _flat_optimizer(optimizer)
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    scalars = {"run": asdict(run), "param_groups": groups, "python_random": _jsonable(rng.getstate())}
    if adversary is not None:
        tensors.update(_module_tensors(adversary.discriminator, "adversary"))
        adversary_tensors, scalars["adversary_param_groups"] = _flat_optimizer(adversary.optimizer, "adversary_optim")
        tensors.update(adversary_tensors)
    # Write both files under temporary names first: a kill mid-save leaves the previous pair intact.
    save_file(tensors, str(folder / "state.safetensors.tmp"))
    (folder / "state.json.tmp").write_text(json.dumps(scalars))
    os.replace(folder / "state.safetensors.tmp", folder / "state.safetensors")
    os.replace(folder / "state.json.tmp", folder / "state.json")


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def load_resume(folder: Path, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer,
                rng: random.Random, adversary=None) -> RunState | None:
    if not (folder / "state.safetensors").exists() or not (folder / "state.json").exists():
        return None
    tensors = load_file(str(folder / "state.safetensors"))
    scalars = json.loads((folder / "state.json").read_text())
    _load_module(model, tensors, "model")
    _load_module(ema, tensors, "ema")
    optimizer.load_state_dict(_unflat_optimizer(tensors, scalars["param_groups"]))
    if adversary is not None:
        if "adversary_param_groups" not in scalars:
            raise ValueError(f"{folder} was saved without a discriminator; resume with the options it was "
                             "started with, or start afresh with --no-resume")
        _load_module(adversary.discriminator, tensors, "adversary")
        adversary.optimizer.load_state_dict(_unflat_optimizer(tensors, scalars["adversary_param_groups"],
                                                              "adversary_optim"))
    torch.set_rng_state(tensors["rng.torch"])
    rng.setstate(_tupled(scalars["python_random"]))
    run = RunState(**scalars["run"])
    if "cpu_s" not in scalars["run"]:
        run.cpu_from_step = run.step
    return run


# --------------------------------------------------------------------------------------------
# The loop


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _status(step: int, total: int, loss: float, samples_per_s: float, eta_s: float) -> str:
    return (f"step {step}/{total}  loss {loss:.4f}  {samples_per_s:.1f} samples/s  "
            f"ETA {int(eta_s // 60)}m{int(eta_s % 60):02d}s")


def start_from(model: nn.Module, checkpoint: str | Path) -> None:
    """Load a saved checkpoint's weights into ``model``; its architecture and config must be the model's.

    A run whose resume folder is lost starts again from the last weights that were kept (a committed
    model file), not from random weights; fine-tuning starts from a trained model the same way.
    """
    from qusr_cli.weights.checkpoint import load_checkpoint

    saved = load_checkpoint(checkpoint)
    if (saved.arch_name, saved.config) != (model.arch_name, model.config):
        raise WeightsError(f"{checkpoint}: a {saved.arch_name} {saved.config}, but this run trains a "
                           f"{model.arch_name} {model.config}")
    model.load_state_dict(saved.state_dict())


def train(task: Task, batches: Callable[[int], Iterable[dict]], config: LoopConfig, out_dir: str | Path,
          resume: bool = True, info: dict | None = None, init: str | Path | None = None) -> Path:
    """Train ``task.model`` for ``config.steps`` steps; ``batches(start_step)`` yields the remaining batches.

    ``init``: a checkpoint to start from when there is no resume state (ignored when resuming).
    Returns the path of the EMA checkpoint ``<out_dir>/<role>.safetensors``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    ranks = distributed.start(resolve_device(config.device))  # under torchrun; one rank otherwise
    device = ranks.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: autotune once, reuse
    torch.manual_seed(distributed.rank_seed(config.seed, ranks.rank))
    rng = random.Random(distributed.rank_seed(config.seed, ranks.rank))
    resume_dir = out_dir / "resume"
    resuming = resume and (resume_dir / "state.safetensors").exists()
    adversary = getattr(task, "adversary", None)
    if init is not None and not resuming:
        start_from(task.model, init)
        if ranks.is_main:
            console.print(f"[{task.role}] starting from {init}")
            if adversary is not None:
                # Measured: a GAN-trained g continued this way fell back to L1's blur within 100 steps.
                console.print(f"[{task.role}] warning: the discriminator starts untrained; a GAN run keeps its "
                              "game only when it resumes from its resume/ state (docs/training.md)")
    model = task.model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    amp_dtype = autocast_dtype(device, config.amp)
    if adversary is not None:
        adversary.to(device)
    run = (load_resume(resume_dir, model, ema, optimizer, rng, adversary) if resume else None) or RunState()
    if run.step:
        distributed.resume_streams(rng, config.seed, ranks.rank, run.step)
        if ranks.is_main:
            console.print(f"[{task.role}] resuming at step {run.step}/{config.steps}")
    step_model = ranks.wrap(model)  # what the loss calls; `model` itself is what is saved
    log = (out_dir / "log.jsonl").open("a") if ranks.is_main else None
    final_path = out_dir / f"{task.role}.safetensors"

    def write_log(record: dict) -> None:
        log.write(json.dumps(record) + "\n")
        log.flush()

    def validate() -> None:
        if not ranks.is_main:
            return
        metrics = task.validate(ema)
        run.validations.append({"step": run.step, **metrics})
        write_log({"type": "val", "step": run.step, **metrics})
        console.print(f"[{task.role}] validation at step {run.step}: "
                      + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    def checkpoint_info() -> dict:
        record = TrainingRun(task=task.info(), loop=asdict(config), steps_done=run.step,
                             wall_time_s=round(run.wall_s, 1), hardware=hardware(device), git_commit=git_commit(),
                             validation=run.validations[-1] if run.validations else None,
                             cpu_time_s=round(run.cpu_s, 1), cpu_counted_from_step=run.cpu_from_step)
        return {**record.to_info(), **task.header(), **(info or {})}

    saved_at = [-1]

    def kept(step: int) -> bool:
        return bool(config.keep_every) and step % config.keep_every == 0

    def save() -> None:
        """Resume state and weights, and a snapshot of the weights at the steps ``keep_every`` names."""
        saved_at[0] = run.step
        ranks.check_same(ema)
        if adversary is not None:
            ranks.check_same(adversary.discriminator)
        if not ranks.is_main:
            return
        save_resume(resume_dir, model, ema, optimizer, run, rng, adversary)
        save_checkpoint(final_path, ema, role=task.role, info=checkpoint_info(), dtype=torch.float16)
        if kept(run.step):
            snapshot = out_dir / "snapshots" / f"{task.role}-step-{run.step:07d}.safetensors"
            snapshot.parent.mkdir(exist_ok=True)
            # copied under a temporary name: a kill mid-copy leaves no half snapshot to bench
            shutil.copyfile(final_path, snapshot.with_name(snapshot.name + ".tmp"))
            os.replace(snapshot.with_name(snapshot.name + ".tmp"), snapshot)

    if run.step == 0 and config.val_every:
        validate()
    window_start, window_steps, loss_sum = time.perf_counter(), 0, 0.0
    last, last_cpu = time.perf_counter(), time.process_time()
    for batch in batches(run.step):
        if run.step >= config.steps:
            break
        batch = _to_device(batch, device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(run.step, config)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss, metrics = task.loss(step_model, batch, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if adversary is not None:
            metrics["discriminator_loss"] = adversary.update()
            ranks.average_weights(adversary.discriminator)
        update_ema(ema, model, ema_decay(run.step, config.ema_decay))
        run.step += 1
        now = time.perf_counter()
        run.wall_s += now - last
        now_cpu = time.process_time()
        run.cpu_s += now_cpu - last_cpu
        last, last_cpu = now, now_cpu
        window_steps += 1
        loss_sum += float(loss.detach())
        if run.step % config.log_every == 0 or run.step == config.steps:
            elapsed = now - window_start
            samples_per_s = window_steps * config.batch * ranks.world / max(elapsed, 1e-9)
            eta = (config.steps - run.step) * elapsed / window_steps
            rank_losses = ranks.gather(loss_sum / window_steps)
            mean_loss = sum(rank_losses) / len(rank_losses)
            if ranks.is_main:
                write_log({"type": "train", "step": run.step, "loss": mean_loss,
                           "lr": learning_rate(run.step - 1, config), "grad_norm": float(grad_norm),
                           "samples_per_s": samples_per_s, "wall_s": run.wall_s, "cpu_s": run.cpu_s, **metrics,
                           **({"rank_losses": rank_losses} if ranks.active else {})})
                console.print(f"[{task.role}] " + _status(run.step, config.steps, mean_loss, samples_per_s, eta))
            window_start, window_steps, loss_sum = now, 0, 0.0
        if config.val_every and (run.step % config.val_every == 0 or run.step == config.steps):
            model.eval()
            validate()
            model.train()
        if kept(run.step) or run.step % config.save_every == 0 or run.step == config.steps:
            save()
    if saved_at[0] != run.step:
        save()
    if log is not None:
        log.close()
    ranks.finish()
    return final_path
