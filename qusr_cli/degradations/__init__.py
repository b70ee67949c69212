"""Synthetic degradations (Real-ESRGAN's model): clean HR photo → LR photo plus the parameters used.

Training draws its LR crops from here and the benchmark its synthetic evaluation pairs, so neither
imports the other.
"""

from qusr_cli.degradations.pipeline import LIGHT, DegradationConfig, degrade

__all__ = ["LIGHT", "DegradationConfig", "degrade"]
