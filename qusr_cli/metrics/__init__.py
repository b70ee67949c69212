"""Image-quality metrics as SR papers report them: PSNR/SSIM on Y (full reference) and NIQE (blind)."""

from qusr_cli.metrics.fidelity import psnr_y, ssim_y
from qusr_cli.metrics.niqe import niqe_score

__all__ = ["niqe_score", "psnr_y", "ssim_y"]
