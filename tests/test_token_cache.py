"""The on-disk cache of encoded critiques: a hit never builds the encoder; text and revision are the key."""

from __future__ import annotations

import torch

from qusr_cli.prior.token_cache import MAX_ENTRIES, CachedTextEncoder, TokenCache


class CountingEncoder:
    builds = 0

    def __init__(self):
        CountingEncoder.builds += 1

    def encode(self, text: str):
        tokens = torch.full((1, len(text.split()), 4), float(len(text)))
        return tokens, torch.ones(1, tokens.shape[1], dtype=torch.bool)


def encoder(folder, revision="repo@abc"):
    return CachedTextEncoder(CountingEncoder, revision, cache=TokenCache(revision, 77, folder))


def test_a_cached_text_never_builds_the_encoder(tmp_path):
    CountingEncoder.builds = 0
    first = encoder(tmp_path)
    tokens, mask = first.encode("slight noise, mild blur")
    assert CountingEncoder.builds == 1 and first.loaded and first.load_seconds > 0
    second = encoder(tmp_path)  # a new process, as far as the cache can tell
    again, again_mask = second.encode("slight noise, mild blur")
    assert CountingEncoder.builds == 1 and not second.loaded and second.load_seconds == 0
    assert torch.equal(again, tokens) and torch.equal(again_mask, mask) and again_mask.dtype == torch.bool
    second.encode("heavy JPEG artefacts")
    assert CountingEncoder.builds == 2


def test_another_encoder_revision_does_not_share_entries(tmp_path):
    CountingEncoder.builds = 0
    encoder(tmp_path, "repo@abc").encode("noise")
    encoder(tmp_path, "repo@def").encode("noise")
    assert CountingEncoder.builds == 2


def test_a_damaged_entry_is_encoded_again(tmp_path):
    CountingEncoder.builds = 0
    encoder(tmp_path).encode("noise")
    for entry in (tmp_path / "prior-tokens").glob("*.safetensors"):
        entry.write_bytes(b"garbage")
    tokens, _ = encoder(tmp_path).encode("noise")
    assert CountingEncoder.builds == 2 and tokens.shape == (1, 1, 4)


def test_the_cache_stays_small(tmp_path, monkeypatch):
    monkeypatch.setattr("qusr_cli.prior.token_cache.MAX_ENTRIES", 3)
    cached = encoder(tmp_path)
    for index in range(6):
        cached.encode(f"text {index}")
    assert len(list((tmp_path / "prior-tokens").glob("*.safetensors"))) == 3
    assert MAX_ENTRIES >= 64
