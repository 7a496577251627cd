"""Train: ``python -m rexbert.train phase=phase1 model=base data=sample trainer.max_steps=…``

Under torchrun / srun every rank runs this same command. Composes conf/ with Hydra
(a misspelled key or a wrong type fails here, naming it), resumes from the run directory's
newest complete checkpoint (or starts from ``trainer.load``), trains, saves, exports.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from rexbert.config import CONF_DIR


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from rexbert.train.trainer import Trainer

    run = OmegaConf.to_object(cfg)
    trainer = Trainer(run)
    how = trainer.maybe_resume()
    if trainer.is_rank0:
        print(f"[rexbert.train] {run.trainer.run_dir}: {how}; step {trainer.step} of {run.trainer.max_steps}", flush=True)
    result = trainer.fit()
    if trainer.is_rank0:
        summary = ", ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float))
        print(f"[rexbert.train] done at step {trainer.step}: {summary}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
