"""The checkpoint header's typed sections: what training writes, loading reads back; wrong types are refused."""

import pytest

from qusr_cli.errors import WeightsError
from qusr_cli.weights.header import DenoiserSources, DiffusionSettings, TrainingData, TrainingRun, is_placeholder


def test_sections_round_trip_through_their_info():
    settings = DiffusionSettings(schedule={"kappa": 2.0, "prediction_type": "blend"}, floor=0.3, psi_max=0.1,
                                 text_encoder="minilm")
    assert DiffusionSettings.from_info(settings.to_info()) == settings
    without_text = settings.to_info(text=False)
    assert "text_encoder" not in without_text["diffusion"]
    data = TrainingData(data="../shared/data/train", crop=256, images=46, hr_scales=[1.0, 0.5], min_detail=6.0,
                        degradation={"scale": 4}, light_share=0.5, light_degradation={"scale": 4})
    assert TrainingData.from_info(data.to_info()) == data
    assert "light_degradation" not in TrainingData(data="x", crop=32, images=1).to_info()
    run = TrainingRun(task={}, loop={"steps": 3}, steps_done=3, wall_time_s=1.5, hardware={}, git_commit=None,
                      validation=None)
    assert TrainingRun.from_info({**run.to_info(), **data.to_info()}) == run
    sources = DenoiserSources(aux="runs/aux/aux.safetensors", critic=None, text_prior=False)
    assert DenoiserSources.from_info(sources.to_info()) == sources


@pytest.mark.parametrize("info, where", [
    ({"diffusion": {"floor": "0.4"}}, "diffusion.floor"),
    ({"diffusion": {"psi_max": True}}, "diffusion.psi_max"),
    ({"diffusion": {"text_encoder": 3}}, "diffusion.text_encoder"),
    ({"scheduler": {"kappa": [2.5]}}, "scheduler.kappa"),
    ({"scheduler": {"prediction_type": 1}}, "scheduler.prediction_type"),
    ({"scheduler": "ddim"}, "scheduler"),
])
def test_mistyped_diffusion_entries_are_named(info, where):
    with pytest.raises(WeightsError, match=where.replace(".", r"\.")):
        DiffusionSettings.from_info(info)


def test_other_mistyped_entries_are_named():
    with pytest.raises(WeightsError, match="info.placeholder"):
        is_placeholder({"placeholder": "yes"})
    assert is_placeholder({"placeholder": True}) and not is_placeholder({})
    with pytest.raises(WeightsError, match="info.crop"):
        TrainingData.from_info({"data": "x", "crop": 32.5, "images": 1})
    with pytest.raises(WeightsError, match="no training record"):
        TrainingRun.from_info({"task": {}})
