"""The quality report, its wording, and how the prompt combines with the critique."""

import json
import random

import pytest

from qusr_cli.errors import QusrError
from qusr_cli.prior.report import LEVEL_TABLE, QualityReport, compose_prior_text, critique_from_report, level_for

CLEAN = dict(noise_sigma=0.5, blur_sigma=0.2, jpeg_quality=100, exposure=0.5, contrast=0.2)
BROKEN = dict(noise_sigma=30, blur_sigma=1.0, jpeg_quality=35, exposure=0.2, contrast=0.2)


def report(**changes) -> QualityReport:
    return QualityReport.from_values(**{**CLEAN, **changes})


def test_levels_follow_the_meaning_of_each_scale():
    assert report(noise_sigma=0).noise.level == "none"
    assert report(noise_sigma=30).noise.level == "heavy"
    assert report(blur_sigma=0).blur.level == "sharp"
    assert report(blur_sigma=4).blur.level == "very blurry"
    assert report(jpeg_quality=100).jpeg.level == "none"
    assert report(jpeg_quality=5).jpeg.level == "severe"
    assert report(exposure=0.02).exposure.level == "underexposed"
    assert report(exposure=0.5).exposure.level == "well exposed"
    assert report(exposure=0.98).exposure.level == "overexposed"
    assert report(contrast=0.0).contrast.level == "flat"
    assert report(contrast=0.5).contrast.level == "high"


@pytest.mark.parametrize("attribute", sorted(LEVEL_TABLE))
def test_every_level_is_reachable_and_bounds_belong_to_the_next_level(attribute):
    scale = LEVEL_TABLE[attribute]
    assert list(scale.bounds) == sorted(scale.bounds)
    assert scale.fine in scale.levels
    for index, bound in enumerate(scale.bounds[:-1]):
        assert level_for(attribute, bound - 1e-6) == scale.levels[index]
        assert level_for(attribute, bound) == scale.levels[index + 1]


def test_non_finite_values_are_rejected():
    with pytest.raises(ValueError):
        report(noise_sigma=float("nan"))


def test_to_dict_carries_value_unit_and_level_and_is_json_ready():
    data = QualityReport.from_values(**BROKEN).to_dict()
    assert set(data) == {"noise", "blur", "jpeg", "exposure", "contrast"}
    assert data["noise"] == {"value": 30.0, "unit": LEVEL_TABLE["noise"].unit, "level": "heavy"}
    assert json.loads(json.dumps(data)) == data


def test_clean_photo_gets_the_short_clean_phrase():
    assert critique_from_report(report()) == "a clean, sharp, well exposed photo"


def test_canonical_critique_names_only_what_is_wrong_then_an_overall_phrase():
    text = critique_from_report(QualityReport.from_values(**BROKEN))
    problems, overall = text.split("; ")
    assert problems == "heavy noise, slightly soft, strong JPEG blocking"
    assert "dim" in overall and "photo" in overall
    assert "contrast" not in text
    assert critique_from_report(QualityReport.from_values(**BROKEN)) == text


def test_single_problem_does_not_mention_fine_attributes():
    text = critique_from_report(report(jpeg_quality=10))
    assert "JPEG" in text
    for fine_word in ("noise", "blur", "soft", "contrast", "exposed"):
        assert fine_word not in text


def test_varied_wording_is_reproducible_and_actually_varies():
    broken = QualityReport.from_values(**BROKEN)
    first = [critique_from_report(broken, random.Random(seed)) for seed in range(40)]
    again = [critique_from_report(broken, random.Random(seed)) for seed in range(40)]
    assert first == again
    assert len(set(first)) > 20


def test_varied_wording_always_keeps_every_problem():
    broken = QualityReport.from_values(**BROKEN)
    rng = random.Random(7)
    for _ in range(100):
        text = critique_from_report(broken, rng).lower()
        assert "noise" in text or "grain" in text
        assert any(word in text for word in ("soft", "blur", "focus"))
        assert any(word in text for word in ("jpeg", "compression", "block"))


def test_varied_wording_sometimes_mentions_fine_attributes():
    blurry_only = report(blur_sigma=3.0)
    rng = random.Random(3)
    mentions = [
        any(word in critique_from_report(blurry_only, rng) for word in ("noise", "grain")) for _ in range(200)
    ]
    assert 0 < sum(mentions) < len(mentions)


def test_compose_extends_the_critique_with_the_prompt_by_default():
    critique = "heavy noise; a degraded photo"
    assert compose_prior_text(critique, "a red car") == "heavy noise; a degraded photo; a red car"
    assert compose_prior_text("heavy noise.", "  a red car ") == "heavy noise. a red car"


def test_compose_replace_uses_the_prompt_and_keeps_the_critique_without_one():
    assert compose_prior_text("heavy noise", "a red car", mode="replace") == "a red car"
    assert compose_prior_text("heavy noise", "  ", mode="replace") == "heavy noise"


def test_compose_gives_none_when_there_is_nothing_to_say():
    assert compose_prior_text(None, None) is None
    assert compose_prior_text(" ", "") is None
    assert compose_prior_text(None, "a red car") == "a red car"


def test_compose_rejects_an_unknown_mode():
    with pytest.raises(QusrError):
        compose_prior_text("heavy noise", "a red car", mode="append")
