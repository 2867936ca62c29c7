"""DiffusionConfig: JSON round trip, build with and without respacing, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.diffusion.config import DiffusionConfig
from models.diffusion.gaussian import ModelMeanType, ModelVarType
from models.diffusion.respace import SpacedDiffusion
from models.diffusion.schedules import get_named_beta_schedule


def test_json_round_trip_and_build() -> None:
    config = DiffusionConfig(schedule="linear", num_timesteps=200, mean_type="velocity", var_type="learned_range")
    again = DiffusionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    diffusion = again.build()
    assert diffusion.model_mean_type is ModelMeanType.VELOCITY
    assert diffusion.model_var_type is ModelVarType.LEARNED_RANGE
    np.testing.assert_array_equal(diffusion.betas, get_named_beta_schedule("linear", 200))
    spaced = again.build(respacing="10,10")
    assert isinstance(spaced, SpacedDiffusion) and spaced.num_timesteps == 20


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schedul": "cosine"}, "unknown diffusion config keys"),
        ({"schedule": "sqrt"}, "linear, cosine"),
        ({"mean_type": "eps"}, "epsilon, start_x, velocity"),
        ({"var_type": "learned"}, "learned_range"),
        ({"num_timesteps": 0}, "positive integer"),
    ],
)
def test_bad_configs_raise(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiffusionConfig.from_dict(data)
