"""The critic interface: something that looks at the input photo and says what is wrong with it.

Every critic returns a `CriticResult`. The built-in statistics are cheap, so critics that produce
free text (the multimodal LLM) run them alongside and `report` is always filled in by the critics
shipped here; code reading a result should still accept `report=None` from third-party critics.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from qusr_cli.errors import QusrError
from qusr_cli.prior.report import QualityReport


@dataclass
class CriticResult:
    """What a critic found: the structured report (if it has one), the critique text, who wrote it.

    `stats` holds extra numbers a critic measured that have no place in the report (for example the
    clipped fractions of the built-in critic), for verbose output and logs.
    """

    report: QualityReport | None
    critique: str
    source: str
    stats: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Critic(Protocol):
    name: str

    def assess(self, image: torch.Tensor) -> CriticResult:
        """Critique a (1, 3, H, W) float image in [0, 1]."""
        ...


# kind -> "module:factory": one vocabulary for the CLI, the engine and the bench (builtin = image
# statistics, learned = the trained CNN, mllm = a multimodal LLM; the engine adds "auto", the
# model's learned critic when it ships one, else builtin). Modules are imported only when their kind
# is asked for, so the built-in critic never imports the multimodal stack. A new kind is one line here.
CRITIC_FACTORIES: dict[str, str] = {
    "builtin": "qusr_cli.prior.builtin_critic:BuiltinCritic",
    "mllm": "qusr_cli.prior.mllm_critic:MLLMCritic",
    "learned": "qusr_cli.prior.learned_critic:LearnedCritic",
}
CRITIC_KINDS: tuple[str, ...] = (*CRITIC_FACTORIES, "none")


def make_critic(kind: str, **kwargs) -> Critic | None:
    """Build the critic of `kind` with `kwargs` passed to its constructor; None for kind "none"."""
    if kind == "none":
        return None
    if kind not in CRITIC_FACTORIES:
        raise QusrError(f"unknown critic '{kind}': choose one of {', '.join(CRITIC_KINDS)}")
    module_name, factory_name = CRITIC_FACTORIES[kind].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(**kwargs)
