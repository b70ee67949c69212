"""Encoded critique texts kept on disk, so a run whose critique was seen before never loads the encoder.

Loading the text encoder (transformers and MiniLM) costs seconds; encoding one critique costs
milliseconds, and the built-in critic writes few distinct critiques. Entries are keyed by the text
and the encoder's revision, stored as safetensors (never pickle), written atomically, and the oldest
are removed beyond ``MAX_ENTRIES``. A damaged entry is ignored and written again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

log = logging.getLogger("qusr")

CACHE_ENV = "QUSR_CACHE"
MAX_ENTRIES = 256  # each (1, <=77, 384) fp32, so at most ~30 MB


def cache_root() -> Path:
    """$QUSR_CACHE, else $XDG_CACHE_HOME/qusr, else ~/.cache/qusr."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "qusr"


class TokenCache:
    def __init__(self, revision: str, max_tokens: int, folder: Path | None = None):
        self.revision = revision
        self.max_tokens = max_tokens
        self.folder = (folder or cache_root()) / "prior-tokens"

    def _path(self, text: str) -> Path:
        key = hashlib.sha256(f"{self.revision}\n{self.max_tokens}\n{text}".encode()).hexdigest()
        return self.folder / f"{key[:40]}.safetensors"

    def get(self, text: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self._path(text)
        try:
            stored = load_file(path)
            tokens, mask = stored["tokens"], stored["mask"].bool()
        except (OSError, SafetensorError, KeyError):
            return None
        os.utime(path)  # most recently used entries survive pruning
        return tokens, mask

    def put(self, text: str, tokens: torch.Tensor, mask: torch.Tensor) -> None:
        """Store quietly: a read-only or full cache folder only costs the next run its encoder load."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            os.close(handle)
            try:
                save_file({"tokens": tokens.detach().float().cpu().contiguous(),
                           "mask": mask.to(torch.uint8).cpu().contiguous()}, temp)
                os.replace(temp, self._path(text))
            finally:
                Path(temp).unlink(missing_ok=True)
            self._prune()
        except OSError as exc:
            log.debug("prior token cache not written: %s", exc)

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in entries[MAX_ENTRIES:]:
            stale.unlink(missing_ok=True)


class CachedTextEncoder:
    """``encode(text)`` like TextEncoder, but the encoder is built only on a miss of the on-disk cache.

    ``load_seconds`` says how long building it took (0 when every text was cached), so callers can
    report loading apart from work; ``on_load``, when set, is called just before the build (to say so).
    """

    def __init__(self, build, revision: str, max_tokens: int = 77, cache: TokenCache | None = None):
        self._build = build
        self._encoder = None
        self.cache = cache or TokenCache(revision, max_tokens)
        self.load_seconds = 0.0
        self.on_load: Callable[[], None] | None = None

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self.cache.get(text)
        if cached is not None:
            return cached
        if self._encoder is None:
            if self.on_load is not None:
                self.on_load()
            started = time.perf_counter()
            self._encoder = self._build()
            self.load_seconds += time.perf_counter() - started
        tokens, mask = self._encoder.encode(text)
        self.cache.put(text, tokens, mask)
        return tokens, mask
