"""What the benchmark compares: resampling baselines, Real-ESRGAN, g alone, qusr and its ablations, outside tools.

A ``MethodSpec`` is plain data (it travels to the speed workers as JSON); ``MethodLoader.build``
turns it into something with ``upscale(lr) -> hr`` on (1, 3, H, W) float tensors in [0, 1].
"""

from __future__ import annotations

import copy
import math
import re
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qusr_cli.archs import Conditioning
from qusr_cli.aux_sr import auxiliary_estimate
from qusr_cli.bench.datasets import from_uint8, save_png, to_uint8
from qusr_cli.bench.measure import count_flops, lr_tiles, meta_twin
from qusr_cli.devices import resolve_device, resolve_dtype, set_threads
from qusr_cli.errors import QusrError, WeightsError
from qusr_cli.imageio import IMAGE_SUFFIXES, read_rgb8
from qusr_cli.options import EngineOptions
from qusr_cli.tiling import run_tiled
from qusr_cli.upscaler import UpscaleOptions

# The factor the bench compares at: that of the shipped models (their descriptors) and Real-ESRGAN x4plus.
# Nets report their own (``descriptor.scale``); this is for the methods without one.
SCALE = 4
BASE_METHODS = ("bicubic", "lanczos", "realesrgan", "aux", "qusr")
PILLOW_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
# kind -> (largest LR tile, overlap, context margin). Real-ESRGAN: tiles of at most 192 px, which
# bound its memory, with 10 px of context (its own script's tile_pad), cross-faded over 8 px to hide
# the small differences between neighbours. g is light (a few hundred MB of activations for a 512² tile), so its tiles
# only bound memory on large photos; overlap and margin are the engine's.
TILING = {"realesrgan": (192, 8, 10),
          "aux": (512, UpscaleOptions.tile_overlap, UpscaleOptions.tile_margin)}
EXTERNAL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
IMPORT_COMMAND = "qusr weights import-ncnn --out {path}"


@dataclass(frozen=True)
class MethodSpec:
    name: str                    # table label and cache folder name
    kind: str                    # one of BASE_METHODS, or "external"
    steps: int = 0
    candidates: int = 1
    noise_weighting: bool = True
    critic: str = "auto"         # the engine's vocabulary: auto (the model's own), builtin (statistics), none
    detail: float | None = None  # the sampler's fidelity ↔ invented-detail dial; None: the model's own
    command: str = ""            # external: the command template with {in} and {out}

    @property
    def group(self) -> str:
        if self.candidates > 1:
            return "best-of-n"
        if not self.noise_weighting or self.critic != "auto":
            return "ablation"
        if self.detail is not None:
            return "detail"
        return "method"

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["detail"] is None:
            # the fingerprint of cached outputs is this dict: those made before the dial existed stay valid
            del data["detail"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MethodSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class EngineConfig(EngineOptions):
    """The engine's options plus the bench's own; JSON-able so a speed worker loads exactly the same thing."""

    realesrgan_weights: str | None = None
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def qusr_name(steps: int, suffix: str = "") -> str:
    return f"qusr-s{steps}{suffix}"


def parse_external(text: str) -> MethodSpec:
    name, sep, command = text.partition("=")
    name = name.strip()
    if not sep or not EXTERNAL_NAME.fullmatch(name) or name in BASE_METHODS:
        raise QusrError(f"--external {text!r}: expected NAME=CMD with a new name of letters, digits, '.', '_', '-'")
    if "{in}" not in command or "{out}" not in command:
        raise QusrError(f"--external {name}: the command needs both {{in}} and {{out}} placeholders")
    try:
        shlex.split(command)
    except ValueError as exc:
        raise QusrError(f"--external {name}: cannot split the command ({exc})") from None
    return MethodSpec(name, "external", command=command)


def detail_name(steps: int, detail: float) -> str:
    return qusr_name(steps, f"-d{detail:g}")


def plan_methods(names: list[str], *, steps_list: list[int], ablations: bool, candidates_list: list[int],
                 ablation_steps: int, externals: list[str], detail_list: list[float] = ()) -> list[MethodSpec]:
    """The methods to run, in table order: baselines, qusr per step count, ablations, best-of-N, the
    detail sweep, external."""
    unknown = [n for n in names if n not in BASE_METHODS]
    if unknown:
        raise QusrError(f"unknown method {', '.join(unknown)}: choose from {', '.join(BASE_METHODS)}")
    specs = [MethodSpec(n, n) for n in BASE_METHODS if n in names and n != "qusr"]
    if "qusr" in names:
        specs += [MethodSpec(qusr_name(s), "qusr", steps=s) for s in sorted(set(steps_list))]
    variants = []
    if ablations:
        variants += [MethodSpec(qusr_name(ablation_steps, "-w1"), "qusr", steps=ablation_steps, noise_weighting=False),
                     MethodSpec(qusr_name(ablation_steps, "-noprior"), "qusr", steps=ablation_steps, critic="none"),
                     MethodSpec(qusr_name(ablation_steps, "-statcritic"), "qusr", steps=ablation_steps,
                                critic="builtin")]
    variants += [MethodSpec(qusr_name(ablation_steps, f"-best{n}"), "qusr", steps=ablation_steps, candidates=n)
                 for n in sorted(set(candidates_list)) if n > 1]
    variants += [MethodSpec(detail_name(ablation_steps, d), "qusr", steps=ablation_steps, detail=d)
                 for d in sorted(set(detail_list))]
    if variants and qusr_name(ablation_steps) not in {s.name for s in specs}:
        # ablations and best-of-N are read as differences from this one
        specs.append(MethodSpec(qusr_name(ablation_steps), "qusr", steps=ablation_steps))
    specs += variants + [parse_external(text) for text in externals]
    names_seen = [s.name for s in specs]
    if len(set(names_seen)) != len(names_seen):
        raise QusrError(f"two methods share a name: {', '.join(names_seen)}")
    return specs


class PillowMethod:
    """bicubic / Lanczos 4x through Pillow on the 8-bit image, as most SR tables compute them."""

    def __init__(self, spec: MethodSpec):
        self.spec = spec
        self.device = torch.device("cpu")

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        image = Image.fromarray(to_uint8(lr))
        return from_uint8(np.asarray(image.resize((image.width * SCALE, image.height * SCALE),
                                                  PILLOW_FILTERS[self.spec.kind])))

    def flops(self, height: int, width: int) -> int | None:
        return None


class TiledNetMethod:
    """A feed-forward 4x net (Real-ESRGAN's RRDBNet, or qusr's g) run tile by tile in bounded memory."""

    def __init__(self, spec: MethodSpec, net: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 tile: int, overlap: int, margin: int):
        self.spec, self.net, self.device, self.dtype = spec, net, device, dtype
        self.tile, self.overlap, self.margin = tile, overlap, margin
        self._meta = None

    @torch.inference_mode()
    def _run(self, lr_tile: torch.Tensor) -> torch.Tensor:
        x = lr_tile.to(self.device)
        if self.dtype == torch.float32:
            return auxiliary_estimate(self.net, x).float().cpu()
        with torch.autocast(self.device.type, dtype=self.dtype):
            return auxiliary_estimate(self.net, x).float().cpu()

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        return run_tiled(lr, lambda t, _spec: self._run(t), self.tile, self.overlap, self.net.descriptor.scale,
                         margin=self.margin).clamp(0, 1)

    def flops(self, height: int, width: int) -> int | None:
        self._meta = self._meta or meta_twin(self.net)
        return sum(_net_flops(self._meta, h, w) for h, w in lr_tiles(height, width, self.tile, self.overlap,
                                                                     self.margin))


def _net_flops(meta_net: torch.nn.Module, height: int, width: int) -> int:
    return count_flops(partial(meta_net, torch.empty(1, 3, height, width, device="meta")))


class QusrMethod:
    def __init__(self, spec: MethodSpec, upscaler, seed: int):
        self.spec, self.upscaler, self.device = spec, upscaler, upscaler.device
        self.options = UpscaleOptions(steps=spec.steps, seed=seed, candidates=spec.candidates,
                                      noise_weighting=spec.noise_weighting, detail=spec.detail)
        self._meta = None

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        return self.upscaler.upscale(lr, self.options).image

    def flops(self, height: int, width: int) -> int | None:
        """g once per tile plus ``steps`` denoiser calls on the batch of candidates; critic and encoder excluded."""
        if self._meta is None:
            self._meta = (meta_twin(self.upscaler.bundle.aux), meta_twin(self.upscaler.bundle.denoiser))
        aux, denoiser = self._meta
        tile = self.upscaler.auto_tile(self.spec.candidates)
        multiple, scale = denoiser.descriptor.size_multiple, denoiser.descriptor.scale
        overlap = min(self.options.tile_overlap, tile // 4)
        cache: dict[tuple[int, int], int] = {}
        total = 0
        for h, w in lr_tiles(height, width, tile, overlap, self.options.tile_margin):
            h, w = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
            if (h, w) not in cache:
                n = self.spec.candidates
                hr = torch.empty(n, 3, h * scale, w * scale, device="meta")
                tau = torch.empty(n, device="meta")
                cache[h, w] = _net_flops(aux, h, w) + self.spec.steps * count_flops(
                    partial(denoiser, hr, tau, Conditioning(hr, hr)))
            total += cache[h, w]
        return total


class ExternalMethod:
    """An outside tool run as ``CMD`` with {in}/{out} replaced by folders; split by shlex, never a shell."""

    def __init__(self, spec: MethodSpec):
        self.spec = spec
        self.device = torch.device("cpu")

    def command(self, in_dir: Path, out_dir: Path) -> list[str]:
        # Placeholders are filled after splitting, so a folder name with spaces or quotes stays one argument.
        return [token.replace("{in}", str(in_dir)).replace("{out}", str(out_dir))
                for token in shlex.split(self.spec.command)]

    def run_folder(self, in_dir: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        args = self.command(in_dir, out_dir)
        try:
            done = subprocess.run(args, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise QusrError(f"external {self.spec.name}: cannot run {args[0]!r} ({exc.strerror})") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise QusrError(f"external {self.spec.name}: exit status {done.returncode}"
                            + (f": {lines[-1]}" if lines else ""))

    @staticmethod
    def find_output(out_dir: Path, stem: str) -> Path | None:
        found = [p for p in sorted(out_dir.glob(f"{glob_escape(stem)}.*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        return found[0] if found else None

    def upscale(self, lr: torch.Tensor) -> torch.Tensor:
        with tempfile.TemporaryDirectory(prefix="qusr-bench-") as work:
            in_dir, out_dir = Path(work) / "in", Path(work) / "out"
            save_png(in_dir / "image.png", to_uint8(lr))
            self.run_folder(in_dir, out_dir)
            output = self.find_output(out_dir, "image")
            if output is None:
                raise QusrError(f"external {self.spec.name}: wrote no image for its input")
            return from_uint8(read_rgb8(output))

    def flops(self, height: int, width: int) -> int | None:
        return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


class MethodLoader:
    """Builds methods, loading each model once: every qusr variant and g share one ``Upscaler``."""

    def __init__(self, engine: EngineConfig, default_realesrgan: Path):
        self.engine = engine
        self.realesrgan_path = Path(engine.realesrgan_weights) if engine.realesrgan_weights else default_realesrgan
        self._upscaler = None
        self._model_identity: dict | None = None
        set_threads(engine.threads)
        self.device = resolve_device(engine.device)
        self.dtype = resolve_dtype(engine.dtype, self.device)

    def upscaler(self):
        if self._upscaler is None:
            self._upscaler = self.engine.load()
        return self._upscaler

    def unavailable(self, spec: MethodSpec) -> str | None:
        """Why ``spec`` cannot run here (said once, then the method is skipped), or None."""
        if spec.kind == "realesrgan" and not self.realesrgan_path.is_file():
            return (f"realesrgan skipped: {self.realesrgan_path} does not exist; make it with "
                    f"`{IMPORT_COMMAND.format(path=shlex.quote(str(self.realesrgan_path)))}` "
                    "(needs pip install 'qusr[bench]')")
        if spec.kind == "qusr" and spec.critic == "builtin" and self.upscaler().bundle.critic_path is None:
            return f"{spec.name} skipped: the model has no learned critic, so it already uses the statistics"
        return None

    def model_identity(self) -> dict:
        """The qusr model's name and the sha256 of each of its files (checked, never downloaded)."""
        if self._model_identity is None:
            from qusr_cli.loading import load_model_files

            model, _files = load_model_files(self.engine.model, self.engine.weights)
            self._model_identity = {"name": model.name,
                                    **{role: c.sha256 for role, c in model.components.items()}}
        return self._model_identity

    def fingerprint(self, spec: MethodSpec) -> dict:
        """What a cached output depends on besides the input: a change means recompute."""
        key: dict = {"spec": spec.to_dict()}
        if spec.kind in ("aux", "qusr", "realesrgan"):
            key.update(device=self.device.type, dtype=str(self.dtype))
        if spec.kind in TILING:
            key["tiling"] = list(TILING[spec.kind])
        if spec.kind in ("aux", "qusr"):
            key["model"] = self.model_identity()
        if spec.kind == "qusr":
            key["seed"] = self.engine.seed
        if spec.kind == "realesrgan":
            from qusr_cli.weights import file_sha256

            # without the file, the only outputs are ones imported from --realesrgan-outputs
            key["weights"] = file_sha256(self.realesrgan_path) if self.realesrgan_path.is_file() else None
        return key

    def _net(self, kind: str) -> torch.nn.Module:
        """Real-ESRGAN's RRDBNet, or the model's g alone (without the denoiser, critic and text encoder)."""
        from qusr_cli.weights.checkpoint import load_checkpoint

        if kind == "realesrgan":
            net = load_checkpoint(self.realesrgan_path, role="aux", device=self.device)
            if net.arch_name != "rrdbnet":
                raise WeightsError(f"{self.realesrgan_path}: a {net.arch_name} network, not Real-ESRGAN's RRDBNet")
        else:
            from qusr_cli.loading import load_model_files

            _model, files = load_model_files(self.engine.model, self.engine.weights)
            net = load_checkpoint(files["aux"], role="aux", device=self.device)
        if self.device.type == "cpu":
            # as the Upscaler does for its own nets: oneDNN's blocked kernels (~15% faster here)
            net.to(memory_format=torch.channels_last)
        return net

    def build(self, spec: MethodSpec):
        if spec.kind in PILLOW_FILTERS:
            return PillowMethod(spec)
        if spec.kind == "external":
            return ExternalMethod(spec)
        if spec.kind in TILING:
            return TiledNetMethod(spec, self._net(spec.kind), self.device, self.dtype, *TILING[spec.kind])
        upscaler = self.upscaler()
        if spec.critic != self.engine.critic:
            from qusr_cli.prior.critic import make_critic

            # a shallow copy shares the loaded networks; only the critic differs
            upscaler = copy.copy(upscaler)
            upscaler.critic = make_critic(spec.critic)
        return QusrMethod(spec, upscaler, self.engine.seed)
