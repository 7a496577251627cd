"""Hydra wiring: typed schemas in the ConfigStore, composing ``conf/`` strictly.

A typo or a wrong type in a YAML file or an override fails at start with the key named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rexbert.data.dataset import DataConfig
from rexbert.model.config import RexBertConfig
from rexbert.train.config import TrainerConfig
from rexbert.train.metrics import LoggingConfig
from rexbert.train.objectives import ObjectiveConfig
from rexbert.train.optim import OptimizerConfig
from rexbert.train.schedules import BatchSizeRampConfig, LRScheduleConfig

CONF_DIR = Path(os.environ.get("REXBERT_CONF_DIR", Path(__file__).resolve().parent.parent / "conf"))
MODEL_SIZES = ("tiny", "micro", "mini", "base", "large")


@dataclass
class RootConfig:
    """Everything one run needs; each part is documented where it is defined."""

    model: RexBertConfig = field(default_factory=RexBertConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: LRScheduleConfig = field(default_factory=LRScheduleConfig)
    batch_ramp: BatchSizeRampConfig = field(default_factory=BatchSizeRampConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="model", name="rexbert_model_schema", node=RexBertConfig)
    cs.store(group="data", name="rexbert_data_schema", node=DataConfig)
    cs.store(name="rexbert_root_schema", node=RootConfig)


register_configs()


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> Any:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides (``model=base``, …)."""
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"config directory {CONF_DIR} not found; set REXBERT_CONF_DIR")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def model_config_from_dict(node: Any) -> RexBertConfig:
    """An OmegaConf node (already validated against the schema) → ``RexBertConfig``."""
    typed = OmegaConf.merge(OmegaConf.structured(RexBertConfig), node)  # strict: unknown keys fail
    return OmegaConf.to_object(typed)


def load_run_config(overrides: Sequence[str] = ()) -> RootConfig:
    """The typed config of a run, e.g. ``load_run_config(["phase=phase1", "model=tiny"])``."""
    return OmegaConf.to_object(compose_config(overrides))


def data_config_from_dict(node: Any) -> DataConfig:
    """An OmegaConf node or dict → ``DataConfig``; unknown keys and wrong types fail."""
    typed = OmegaConf.merge(OmegaConf.structured(DataConfig), node)
    return OmegaConf.to_object(typed)


def load_model_config(size: str = "micro", overrides: Sequence[str] = ()) -> RexBertConfig:
    """The named size from ``conf/model/<size>.yaml`` with ``model.*`` overrides applied,
    e.g. ``load_model_config("tiny", ["model.vocab_size=512"])``."""
    cfg = compose_config([f"model={size}", *overrides])
    return model_config_from_dict(cfg.model)
