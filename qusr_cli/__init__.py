"""qusr: 4x upscaling of real-world photos with uncertainty-weighted residual-shift diffusion.

    from qusr_cli import load_upscaler, UpscaleOptions
    upscaler = load_upscaler()                      # the embedded default model, on the best device
    # or EngineOptions(device="cpu", critic="builtin").load(): the options the CLI and the bench use
    result = upscaler.upscale(lr, UpscaleOptions(steps=5, seed=0))   # lr: (1,3,H,W) in [0,1]
"""

from importlib import import_module

__version__ = "0.1.0"

__all__ = ["EngineOptions", "UpscaleOptions", "Upscaler", "load_upscaler", "__version__"]

_LAZY = {"Upscaler": "qusr_cli.upscaler", "UpscaleOptions": "qusr_cli.options", "load_upscaler": "qusr_cli.loading",
         "EngineOptions": "qusr_cli.options"}


def __getattr__(name: str):
    # Lazy, so `qusr --version` and importing a submodule do not load torch and transformers.
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
