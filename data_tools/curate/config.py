"""Hydra wiring of the curation run: the typed schema (``CurateConfig`` and every stage's
config) in the ConfigStore, presets in ``conf/curate/<preset>.yaml``. A misspelled key or a
wrong type fails at start, naming it."""

from __future__ import annotations

from typing import Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .pipeline import CurateConfig

ConfigStore.instance().store(name="curate_schema", node=CurateConfig)


def load_curate_config(overrides: Sequence[str] = (), preset: str = "ecommerce") -> CurateConfig:
    from rexbert.config import CONF_DIR, compose_config

    if not (CONF_DIR / "curate" / f"{preset}.yaml").is_file():
        presets = sorted(p.stem for p in (CONF_DIR / "curate").glob("*.yaml"))
        raise ValueError(f"no curation preset {preset!r} in {CONF_DIR / 'curate'}; presets: {presets}")
    return OmegaConf.to_object(compose_config(overrides, config_name=f"curate/{preset}"))
