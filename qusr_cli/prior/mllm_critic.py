"""A critic that asks a multimodal LLM (any transformers image-text-to-text model) about the photo.

Design: the built-in statistics always run alongside (they cost well under a second), so the
result carries a QualityReport like every other critic. The critique is the statistics' canonical
sentence followed by the model's free text: the first part is exactly the vocabulary training
captions use, it survives the text encoder's token limit because it comes first, and it anchors the
prior when the model's answer is vague or off. `prefix_statistics=False` gives the model text alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from qusr_cli.errors import WeightsError, first_line
from qusr_cli.prior.builtin_critic import measure_quality
from qusr_cli.prior.critic import CriticResult
from qusr_cli.prior.report import critique_from_report
from qusr_cli.weights.hub import is_offline

CRITIC_PROMPT = (
    "Describe the quality problems of this photo briefly, region by region: noise or grain, blur or "
    "softness, JPEG compression artifacts, and under- or overexposure. Then say in a few words what "
    "the clean photo shows."
)
# Vision towers see a few hundred pixels; a larger input only costs processor time and memory.
DEFAULT_MAX_SIDE = 768
_LOAD_ERRORS = (OSError, ValueError, KeyError, ImportError, RuntimeError)


def to_pil(image: torch.Tensor, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """A (1, 3, H, W) [0, 1] tensor as an 8-bit RGB image whose long side is at most max_side."""
    rgb = image.detach().reshape(-1, *image.shape[-3:])[0][:3].float().clamp(0.0, 1.0)
    array = (rgb * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(array)
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return picture


class MLLMCritic:
    """Critique written by an image-text-to-text model loaded from a Hub id or a local folder."""

    name = "mllm"

    def __init__(
        self,
        model: str | Path,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_new_tokens: int = 80,
        max_side: int = DEFAULT_MAX_SIDE,
        prefix_statistics: bool = True,
    ):
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its per-tensor bar would clutter qusr's stderr

        self.model_id = str(model)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.max_side = max_side
        self.prefix_statistics = prefix_statistics
        options = {"revision": revision, "local_files_only": is_offline()}
        try:
            self._processor = AutoProcessor.from_pretrained(self.model_id, **options)
            self._model = AutoModelForImageTextToText.from_pretrained(self.model_id, dtype=dtype, **options)
        except _LOAD_ERRORS as error:
            raise WeightsError(f"cannot load multimodal critic '{self.model_id}': {first_line(error)}") from error
        self._model.to(self.device).eval()

    def _prompt(self) -> str:
        if getattr(self._processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": CRITIC_PROMPT}]}]
            return self._processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        image_token = getattr(self._processor, "image_token", None) or "<image>"
        return f"{image_token}\n{CRITIC_PROMPT}"

    def _to_device(self, value):
        if not isinstance(value, torch.Tensor):
            return value
        if torch.is_floating_point(value):
            return value.to(self.device, self.dtype)
        return value.to(self.device)

    def describe(self, image: torch.Tensor) -> str:
        """The model's own answer to CRITIC_PROMPT about `image` (greedy decoding, new tokens only)."""
        inputs = self._processor(images=[to_pil(image, self.max_side)], text=self._prompt(), return_tensors="pt")
        inputs = {key: self._to_device(value) for key, value in inputs.items()}
        with torch.no_grad():
            output = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self._processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()

    def assess(self, image: torch.Tensor) -> CriticResult:
        report, stats = measure_quality(image)
        answer = self.describe(image)
        statistics = critique_from_report(report)
        if not answer:
            critique = statistics
        elif self.prefix_statistics:
            critique = f"{statistics}. {answer}"
        else:
            critique = answer
        return CriticResult(report=report, critique=critique, source=f"{self.name}:{self.model_id}", stats=stats)
