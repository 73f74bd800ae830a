"""The pipeline's own pieces: schedules from scheduler configs (equal to the closed forms), the
shifted schedule behind diffusers' steps_offset, and bad folders."""

import json

import pytest
import torch

from fromscratch.diffusion.sde import DiscreteSchedule, linear_betas, scaled_linear_betas
from fromscratch.errors import UserError
from fromscratch.stable_diffusion.pipeline import (
    PIPELINE_FILES,
    StableDiffusion,
    schedule_from_config,
    shifted,
)


def test_schedule_from_config():
    sd = schedule_from_config({"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                               "beta_end": 0.012, "num_train_timesteps": 1000})
    assert torch.allclose(sd.betas, scaled_linear_betas(1000).float())
    assert torch.allclose(schedule_from_config({}).betas, linear_betas(1000).float())
    with pytest.raises(UserError, match="beta_schedule"):
        schedule_from_config({"beta_schedule": "sigmoid"})


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_shifted_schedule_reads_the_original_offset_places_later(offset):
    schedule = DiscreteSchedule(linear_betas(50))
    moved = shifted(schedule, offset)
    assert moved.num_train_timesteps == 50
    n = torch.arange(50 - offset)
    assert torch.allclose(moved.alphas_cumprod[n], schedule.alphas_cumprod[n + offset], rtol=1e-6)


def test_not_a_pipeline_folder(tmp_path):
    with pytest.raises(UserError, match="no model_index.json"):
        StableDiffusion.from_pretrained(tmp_path)
    for name in PIPELINE_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"prediction_type": "flow"}))
    with pytest.raises(UserError, match="prediction_type"):
        StableDiffusion.from_pretrained(tmp_path)
