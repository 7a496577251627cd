"""Hydra wiring of the curation run: the typed schema (``CurateConfig`` and every stage's
config) in the ConfigStore, presets in ``conf/curate/<preset>.yaml``. A misspelled key or a
wrong type fails at start, naming it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .pipeline import CurateConfig

ConfigStore.instance().store(name="curate_schema", node=CurateConfig)


# The repository's conf/ (as rexbert.config, without importing the model stack).
CONF_DIR = Path(os.environ.get("REXBERT_CONF_DIR", Path(__file__).resolve().parents[2] / "conf"))


def load_curate_config(overrides: Sequence[str] = (), preset: str = "ecommerce") -> CurateConfig:
    from hydra import compose, initialize_config_dir

    if not (CONF_DIR / "curate" / f"{preset}.yaml").is_file():
        presets = sorted(p.stem for p in (CONF_DIR / "curate").glob("*.yaml"))
        raise ValueError(f"no curation preset {preset!r} in {CONF_DIR / 'curate'}; presets: {presets}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name=f"curate/{preset}", overrides=list(overrides)))
