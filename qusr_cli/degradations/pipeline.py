"""Real-ESRGAN's second-order degradation model, one image at a time on the CPU.

``degrade(hr, config, seed)`` turns an HR crop (3, H, W) in [0, 1] into its LR version
(3, H/scale, W/scale) and returns every parameter it drew, plus three labels derived from them
(the noise and blur visible at LR size, and the final JPEG quality) that the critic learns to
estimate and that the training captions describe.

Order, as in Real-ESRGAN / UPSR: blur → random resize → noise → JPEG; then, with probability
``second_order_prob``, blur → resize (relative to the LR size) → noise; then the final stage:
[resize to LR size + sinc filter] and JPEG, in random order.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from qusr_cli.degradations import kernels

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class DegradationConfig:
    """Every range and probability of the pipeline (defaults: Real-ESRGAN x4 as UPSR trains it)."""

    scale: int = 4
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    # Probabilities of the six Gaussian-family kernels (normalised if they do not sum to 1).
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    # First order
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # σ in 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    # Second order
    second_order_prob: float = 0.5
    second_blur_prob: float = 0.8
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_probs2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)  # relative to the LR size
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    # Final stage
    final_sinc_prob: float = 0.8
    final_sinc_cutoff: tuple[float, float] = (math.pi / 3, math.pi)
    jpeg_range2: tuple[int, int] = (30, 95)

    def as_dict(self) -> dict:
        return asdict(self)


# A milder, first-order-only member of the same family: the ranges of ResShift's published testing
# degradation (its configs/degradation_testing_realesrgan.yaml). A small g trained on the heavy
# default alone smooths photos this mildly degraded below bicubic (docs/training.md).
LIGHT = DegradationConfig(
    kernel_sizes=(13,), kernel_probs=(0.6, 0.4, 0.0, 0.0, 0.0, 0.0), blur_sigma=(0.2, 0.8),
    betag_range=(1.0, 1.5), betap_range=(1.0, 1.2), resize_range=(0.5, 1.5), noise_range=(1.0, 15.0),
    poisson_scale_range=(0.05, 0.3), jpeg_range=(70, 95), second_order_prob=0.0, final_sinc_prob=0.2,
    jpeg_range2=(80, 100))


# --------------------------------------------------------------------------------------------
# Operations


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """y = x ∗ k with reflect padding, through the FFT (a 21×21 kernel costs the same as a 3×3).

    All kernels here are point-symmetric, so convolution and correlation coincide.
    """
    size = kernel.shape[-1]
    pad = size // 2
    height, width = image.shape[-2:]
    mode = "reflect" if pad < min(height, width) else "replicate"
    padded = F.pad(image[None], (pad, pad, pad, pad), mode=mode)[0]
    shape = (fft_size(padded.shape[-2]), fft_size(padded.shape[-1]))
    spectrum = torch.fft.rfft2(padded, s=shape) * torch.fft.rfft2(kernel.to(image.dtype), s=shape)
    full = torch.fft.irfft2(spectrum, s=shape)
    return full[..., size - 1:size - 1 + height, size - 1:size - 1 + width]


def fft_size(length: int) -> int:
    """Smallest n ≥ length whose only prime factors are 2, 3 and 5 (where FFTs are fastest)."""
    n = length
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    kwargs = {} if mode == "area" else {"align_corners": False}
    if mode == "bicubic":
        # Anti-aliased when shrinking, like the cv2/PIL resizes camera pipelines use.
        kwargs["antialias"] = True
    return F.interpolate(image[None], size=size, mode=mode, **kwargs)[0]


def gaussian_noise(shape: tuple[int, ...], sigma_levels: float, gray: bool,
                   generator: torch.Generator) -> torch.Tensor:
    """n ~ N(0, (σ/255)²), one field shared by the three channels when ``gray``."""
    channels, height, width = shape
    field = torch.randn((1 if gray else channels, height, width), generator=generator)
    return (sigma_levels / 255.0) * field.expand(channels, height, width)


def poisson_noise(image: torch.Tensor, scale: float, gray: bool, generator: torch.Generator) -> torch.Tensor:
    """n = s·(Poisson(255·x)/255 − x): shot noise of an 8-bit sensor, its strength scaled by s.

    With ``gray`` it is drawn on the luma x = 0.299R + 0.587G + 0.114B and shared by all channels.
    """
    source = image.clamp(0, 1)
    if gray:
        source = (0.299 * source[0] + 0.587 * source[1] + 0.114 * source[2])[None]
    counts = torch.poisson(source * 255.0, generator=generator)
    return (scale * (counts / 255.0 - source)).expand_as(image)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode with Pillow's baseline JPEG (4:2:0 chroma, as most cameras and sites)."""
    array = (image.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1)


# --------------------------------------------------------------------------------------------
# Random draws


def _choose(rng: np.random.Generator, probs: tuple[float, ...]) -> int:
    p = np.asarray(probs, dtype=np.float64)
    return int(rng.choice(len(p), p=p / p.sum()))


def random_kernel(rng: np.random.Generator, config: DegradationConfig, second: bool) -> tuple[torch.Tensor, dict]:
    """One blur kernel of a random family; returns it with its type, size and Gaussian-equivalent σ."""
    size = int(rng.choice(config.kernel_sizes))
    sinc_prob = config.sinc_prob2 if second else config.sinc_prob
    sigma_range = config.blur_sigma2 if second else config.blur_sigma
    betag = config.betag_range2 if second else config.betag_range
    betap = config.betap_range2 if second else config.betap_range
    if rng.uniform() < sinc_prob:
        # Small kernels cannot hold a low cutoff's ringing, so they get a higher minimum cutoff.
        low = math.pi / 3 if size < 13 else math.pi / 5
        kind = KERNEL_TYPES.index("sinc")
        kernel = kernels.sinc_kernel(size, float(rng.uniform(low, math.pi)))
    else:
        kind = _choose(rng, config.kernel_probs)
        name = KERNEL_TYPES[kind]
        sigma_x = float(rng.uniform(*sigma_range))
        if name.endswith("iso") and not name.endswith("aniso"):
            sigma_y, theta = sigma_x, 0.0
        else:
            sigma_y = float(rng.uniform(*sigma_range))
            theta = float(rng.uniform(-math.pi, math.pi))
        if name.startswith("generalized"):
            kernel = kernels.generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, float(rng.uniform(*betag)))
        elif name.startswith("plateau"):
            kernel = kernels.plateau_kernel(size, sigma_x, sigma_y, theta, float(rng.uniform(*betap)))
        else:
            kernel = kernels.gaussian_kernel(size, sigma_x, sigma_y, theta)
    return kernel, {"type": float(kind), "size": float(size), "sigma": kernels.gaussian_equivalent_sigma(kernel)}


def random_scale(rng: np.random.Generator, probs: tuple[float, float, float],
                 scale_range: tuple[float, float]) -> float:
    """Up: U(1, max); down: U(min, 1); keep: 1."""
    direction = _choose(rng, probs)
    if direction == 0:
        return float(rng.uniform(1.0, scale_range[1]))
    if direction == 1:
        return float(rng.uniform(scale_range[0], 1.0))
    return 1.0


def random_noise(image: torch.Tensor, rng: np.random.Generator, generator: torch.Generator,
                 gaussian_prob: float, sigma_range: tuple[float, float], poisson_range: tuple[float, float],
                 gray_prob: float) -> tuple[torch.Tensor, dict]:
    """Gaussian or Poisson noise field for ``image``; ``sigma`` is the field's measured std in levels."""
    gray = bool(rng.uniform() < gray_prob)
    if rng.uniform() < gaussian_prob:
        level = float(rng.uniform(*sigma_range))
        noise = gaussian_noise(tuple(image.shape), level, gray, generator)
        poisson = 0.0
    else:
        level = float(rng.uniform(*poisson_range))
        noise = poisson_noise(image, level, gray, generator)
        poisson = 1.0
    return noise, {"poisson": poisson, "gray": float(gray), "level": level, "sigma": float(noise.std()) * 255.0}


# --------------------------------------------------------------------------------------------
# Labels


def lr_blur_sigma(blur1: float, blur2: float, scale1: float, min_scale: float, scale: int) -> float:
    """σ_LR = √( (σ1² + (σ2/s1)²) / r² + c²·max(0, (1/(r·s_min))² − 1) ), c = 0.5, r = ``scale``.

    σ1 (HR pixels) and σ2 (pixels of the image resized by s1) are the blur kernels' Gaussian-equivalent
    σ, brought to LR pixels; the second term counts the detail lost when a resize went below LR size
    (s_min < 1/r): half an LR pixel of blur per unit of lost resolution.
    """
    optical = (blur1 ** 2 + (blur2 / scale1) ** 2) / scale ** 2
    lost = max(0.0, (1.0 / (scale * min_scale)) ** 2 - 1.0)
    return math.sqrt(optical + 0.25 * lost)


def severity(noise_sigma: float, blur_sigma: float, jpeg_quality: float) -> float:
    """s = ⅓·[ min(1, ln(1+σn)/ln(31)) + min(1, σb/2) + clamp((95 − q)/65, 0, 1) ] ∈ [0, 1].

    Noise counts in log levels (σn = 30 is the worst first-order draw), blur saturates at 2 LR pixels,
    JPEG is linear over the drawn quality range.
    """
    noise = min(1.0, math.log1p(max(noise_sigma, 0.0)) / math.log(31.0))
    blur = min(1.0, blur_sigma / 2.0)
    compression = min(1.0, max(0.0, (95.0 - jpeg_quality) / 65.0))
    return (noise + blur + compression) / 3.0


# --------------------------------------------------------------------------------------------
# The pipeline


class _Tracked:
    """The image together with the noise it has received so far, carried through the same linear steps.

    The noise's std at LR size is then measured, not guessed: blurs and resizes shrink it exactly as
    they shrink the noise inside the image (JPEG and clipping are left out, being non-linear).
    """

    def __init__(self, image: torch.Tensor):
        self.image = image
        self.noise: torch.Tensor | None = None

    def linear(self, op) -> None:
        self.image = op(self.image)
        if self.noise is not None:
            self.noise = op(self.noise)

    def add_noise(self, noise: torch.Tensor) -> None:
        self.image = (self.image + noise).clamp(0, 1)
        self.noise = noise if self.noise is None else self.noise + noise


def degrade(hr: torch.Tensor, config: DegradationConfig, seed: int) -> tuple[torch.Tensor, dict[str, float]]:
    """HR (3, H, W) in [0, 1], H and W multiples of ``config.scale`` → (LR, parameters). Deterministic in seed."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    height, width = hr.shape[-2:]
    lr_size = (height // config.scale, width // config.scale)
    params: dict[str, float] = {}
    state = _Tracked(hr.float())

    # First order
    kernel, info = random_kernel(rng, config, second=False)
    state.linear(lambda x: convolve(x, kernel))
    params.update({"kernel1_type": info["type"], "kernel1_size": info["size"], "blur1_sigma": info["sigma"]})
    scale1 = random_scale(rng, config.resize_probs, config.resize_range)
    size1 = (max(1, round(height * scale1)), max(1, round(width * scale1)))
    mode1 = int(rng.integers(len(RESIZE_MODES)))
    state.linear(lambda x: resize(x, size1, RESIZE_MODES[mode1]))
    params.update({"resize1_scale": scale1, "resize1_mode": float(mode1)})
    noise, info = random_noise(state.image, rng, generator, config.gaussian_noise_prob, config.noise_range,
                               config.poisson_scale_range, config.gray_noise_prob)
    state.add_noise(noise)
    params.update({f"noise1_{k}": v for k, v in info.items()})
    quality1 = int(rng.integers(config.jpeg_range[0], config.jpeg_range[1] + 1))
    state.image = jpeg(state.image, quality1)
    params["jpeg1_quality"] = float(quality1)

    # Second order
    second = bool(rng.uniform() < config.second_order_prob)
    params.update({"second_order": float(second), "blur2_sigma": 0.0, "resize2_scale": 1.0,
                   "noise2_poisson": 0.0, "noise2_gray": 0.0, "noise2_level": 0.0, "noise2_sigma": 0.0})
    min_scale = scale1
    if second:
        if rng.uniform() < config.second_blur_prob:
            kernel2, info = random_kernel(rng, config, second=True)
            state.linear(lambda x: convolve(x, kernel2))
            params["blur2_sigma"] = info["sigma"]
        scale2 = random_scale(rng, config.resize_probs2, config.resize_range2)
        size2 = (max(1, round(lr_size[0] * scale2)), max(1, round(lr_size[1] * scale2)))
        mode2 = int(rng.integers(len(RESIZE_MODES)))
        state.linear(lambda x: resize(x, size2, RESIZE_MODES[mode2]))
        params["resize2_scale"] = scale2
        min_scale = min(min_scale, scale2 / config.scale)
        noise, info = random_noise(state.image, rng, generator, config.gaussian_noise_prob2, config.noise_range2,
                                   config.poisson_scale_range2, config.gray_noise_prob2)
        state.add_noise(noise)
        params.update({f"noise2_{k}": v for k, v in info.items()})

    # Final stage: resize to LR + sinc, and JPEG, in random order.
    if rng.uniform() < config.final_sinc_prob:
        cutoff = float(rng.uniform(*config.final_sinc_cutoff))
        final_kernel = kernels.sinc_kernel(int(rng.choice(config.kernel_sizes)), cutoff)
    else:
        cutoff, final_kernel = 0.0, None
    mode3 = int(rng.integers(len(RESIZE_MODES)))
    quality2 = int(rng.integers(config.jpeg_range2[0], config.jpeg_range2[1] + 1))
    jpeg_first = bool(rng.uniform() < 0.5)

    def to_lr(x: torch.Tensor) -> torch.Tensor:
        x = resize(x, lr_size, RESIZE_MODES[mode3])
        return x if final_kernel is None else convolve(x, final_kernel)

    if jpeg_first:
        state.image = jpeg(state.image, quality2)
        state.linear(to_lr)
    else:
        state.linear(to_lr)
        state.image = jpeg(state.image, quality2)
    params.update({"final_sinc_cutoff": cutoff, "final_jpeg_first": float(jpeg_first),
                   "jpeg_quality": float(quality2)})

    lr = (state.image.clamp(0, 1) * 255.0).round() / 255.0
    noise_sigma = float(state.noise.std()) * 255.0 if state.noise is not None else 0.0
    blur_sigma = lr_blur_sigma(params["blur1_sigma"], params["blur2_sigma"], scale1, min_scale, config.scale)
    params.update({"noise_sigma": noise_sigma, "blur_sigma": blur_sigma,
                   "severity": severity(noise_sigma, blur_sigma, float(quality2))})
    return lr, params
