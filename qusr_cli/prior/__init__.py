"""The quality-aware prior: critics that say what is wrong with a photo, and the text encoder."""

from qusr_cli.prior.builtin_critic import BuiltinCritic, measure_quality
from qusr_cli.prior.critic import CRITIC_FACTORIES, CRITIC_KINDS, Critic, CriticResult, make_critic
from qusr_cli.prior.mllm_critic import CRITIC_PROMPT, MLLMCritic
from qusr_cli.prior.report import (
    LEVEL_TABLE,
    Measurement,
    QualityReport,
    compose_prior_text,
    critique_from_report,
    level_for,
)
from qusr_cli.prior.text_encoder import TextEncoder, resolve_text_encoder, text_encoder_available

__all__ = [
    "BuiltinCritic",
    "CRITIC_FACTORIES",
    "CRITIC_KINDS",
    "CRITIC_PROMPT",
    "Critic",
    "CriticResult",
    "LEVEL_TABLE",
    "MLLMCritic",
    "Measurement",
    "QualityReport",
    "TextEncoder",
    "compose_prior_text",
    "critique_from_report",
    "level_for",
    "make_critic",
    "measure_quality",
    "resolve_text_encoder",
    "text_encoder_available",
]
