"""The multimodal critic end to end on a tiny random LLaVA built and saved in the test (no download)."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from qusr_cli.errors import WeightsError
from qusr_cli.prior.critic import make_critic
from qusr_cli.prior.mllm_critic import CRITIC_PROMPT, MLLMCritic, to_pil
from qusr_cli.prior.report import critique_from_report

SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %} {% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def _tokenizer() -> PreTrainedTokenizerFast:
    # The prompt's own words are in the vocabulary, so an echoed prompt would decode visibly.
    corpus = [
        CRITIC_PROMPT,
        "user assistant : the sky is noisy and the street is blurry",
        "strong jpeg blocks on the wall , a dark photo of a cat",
    ]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def _save_tiny_llava(folder, chat_template: str | None) -> PreTrainedTokenizerFast:
    tokenizer = _tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    # A random model may pick a special token first and stop or decode to nothing; forbidding them
    # makes every generated token a visible word.
    model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return tokenizer


@pytest.fixture
def image():
    torch.manual_seed(1)
    return torch.rand(1, 3, 40, 56)


@pytest.mark.parametrize("chat_template", [CHAT_TEMPLATE, None], ids=["chat-template", "plain-prompt"])
def test_generates_new_text_without_echoing_the_prompt(tmp_path, image, chat_template):
    tokenizer = _save_tiny_llava(tmp_path, chat_template)
    critic = MLLMCritic(tmp_path, max_new_tokens=6)

    answer = critic.describe(image)

    # Re-encoding the answer recovers the generated words: some, at most max_new_tokens, all known.
    generated = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert 0 < len(generated) <= 6
    assert tokenizer.unk_token_id not in generated
    echoed_prompt = tokenizer.decode(tokenizer(CRITIC_PROMPT)["input_ids"], skip_special_tokens=True)
    assert echoed_prompt not in answer
    assert "assistant" not in answer


def test_assess_prefixes_the_statistics_critique_and_fills_the_report(tmp_path, image):
    _save_tiny_llava(tmp_path, CHAT_TEMPLATE)
    critic = make_critic("mllm", model=tmp_path, max_new_tokens=4)

    result = critic.assess(image)
    answer = critic.describe(image)

    assert result.report is not None
    assert result.critique == f"{critique_from_report(result.report)}. {answer}"
    assert result.source == f"mllm:{tmp_path}"


def test_large_images_are_downscaled_before_the_processor():
    picture = to_pil(torch.rand(1, 3, 300, 1000), max_side=128)
    assert picture.size == (128, 38)


def test_missing_model_is_a_one_line_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as error:
        MLLMCritic(tmp_path / "absent")
    assert "\n" not in str(error.value)
    assert "absent" in str(error.value)
