"""Learning tests of the DQN family: each shipped CartPole config reaches a mean evaluation return
of at least 475 within 50 k env steps on its fixed seed (DESIGN.md section 7)."""

from pathlib import Path

import pytest

from drl_ros.core.config import load_train_config
from drl_ros.runtime.trainer import Trainer

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


@pytest.mark.parametrize("config_name", ["cartpole_dqn", "cartpole_dqn_combined", "cartpole_c51", "cartpole_qrdqn",
                                         "cartpole_iqn"])
def test_value_based_variant_solves_cartpole_within_50k_steps(tmp_path, config_name):
    config = load_train_config(CONFIG_DIR / f"{config_name}.yaml", ["stop.mean_return=475"])
    assert config.total_steps <= 50_000 and config.env.id == "CartPole-v1"
    with Trainer(config, tmp_path / "run", progress=False) as trainer:
        result = trainer.train()
    print(f"{config_name}: {result.steps} env steps, {result.final_eval.summary() if result.final_eval else ''}")
    assert result.steps <= 50_000
    assert result.final_eval is not None and result.final_eval.mean_return >= 475.0, result.final_eval.summary()
