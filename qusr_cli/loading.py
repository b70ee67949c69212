"""From a model name to a ready ``Upscaler``: registry lookup, sha256 checks, devices, critic, encoder."""

from __future__ import annotations

import logging
from pathlib import Path

from qusr_cli.bundle import ModelBundle, load_bundle
from qusr_cli.devices import resolve_device, resolve_dtype, set_threads
from qusr_cli.errors import QusrError, WeightsError
from qusr_cli.options import ENGINE_CRITICS
from qusr_cli.prior.critic import make_critic
from qusr_cli.prior.token_cache import CachedTextEncoder
from qusr_cli.upscaler import Upscaler
from qusr_cli.weights import ModelSpec, load_registry, resolve_component, resolve_model_folder

log = logging.getLogger("qusr")


def load_model_files(model: str | None = None, weights: str | Path | None = None, *,
                     allow_download: bool = False) -> tuple[ModelSpec, dict[str, Path]]:
    """Resolve and verify every component of ``model`` (the default model when None)."""
    spec = load_registry(weights).model(model)
    files = {role: resolve_component(component, allow_download=allow_download)
             for role, component in spec.components.items()}
    # aux alone is a plain SR model (e.g. Real-ESRGAN from `qusr weights import-ncnn`): g(y) is the output.
    if "aux" not in files:
        raise WeightsError(f"model {spec.name} has no aux (SR net) checkpoint")
    return spec, files


def build_critic(kind: str, spec: ModelSpec, bundle: ModelBundle, device, *, allow_download: bool):
    """auto = the model's learned critic when it ships one, else builtin (image statistics); none for a plain
    SR model (it has no prior to write)."""
    if bundle.denoiser is None:
        return None
    if kind == "auto":
        kind = "learned" if bundle.critic_path is not None else "builtin"
    if kind == "learned":
        if bundle.critic_path is None:
            raise QusrError(f"model {spec.name} ships no learned critic; use --critic builtin")
        return make_critic("learned", weights=bundle.critic_path, device=device)
    if kind == "mllm":
        if spec.mllm is None:
            raise QusrError(f"model {spec.name} names no MLLM for --critic mllm (see `qusr weights list`)")
        folder = resolve_model_folder(spec.mllm, allow_download=allow_download)
        return make_critic("mllm", model=str(folder), device=device)
    return make_critic(kind)


def build_text_encoder(spec: ModelSpec, bundle: ModelBundle, device, *, allow_download: bool):
    """The encoder the denoiser was trained with, or None (null prior) when it is not installed.

    It is built on first use and only for a critique not already in the on-disk token cache.
    """
    if spec.text_encoder is None or bundle.denoiser is None:
        return None
    if spec.text_encoder.name != bundle.settings.text_encoder:
        raise WeightsError(f"model {spec.name}: its denoiser was trained with text encoder "
                           f"{bundle.settings.text_encoder!r}, but weights.toml names {spec.text_encoder.name!r}")
    try:
        folder = resolve_model_folder(spec.text_encoder, allow_download=allow_download)
    except WeightsError as exc:
        log.warning("%s; running without the text prior", exc)
        return None
    from qusr_cli.prior.text_encoder import TextEncoder

    return CachedTextEncoder(lambda: TextEncoder(str(folder), device=device), revision=spec.text_encoder.source)


def load_upscaler(model: str | None = None, *, weights: str | Path | None = None, device: str = "auto",
                  dtype: str = "auto", threads: int | None = None, critic: str = "auto",
                  allow_download: bool = False) -> Upscaler:
    if critic not in ENGINE_CRITICS:
        raise QusrError(f"unknown critic {critic!r}: choose one of {', '.join(ENGINE_CRITICS)}")
    set_threads(threads)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    spec, files = load_model_files(model, weights, allow_download=allow_download)
    bundle = load_bundle(spec.name, files)
    if bundle.placeholder:
        log.warning("model %s is a PLACEHOLDER with untrained weights: output is not a real upscale", spec.name)
    return Upscaler(
        bundle, device=torch_device, dtype=torch_dtype,
        critic=build_critic(critic, spec, bundle, torch_device, allow_download=allow_download),
        text_encoder=build_text_encoder(spec, bundle, torch_device, allow_download=allow_download),
    )
