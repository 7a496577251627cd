"""``python -m rexbert.train`` whose checkpoint save at step ``REXBERT_TEST_HANG_AT_STEP``
hangs after every shard and the metadata are written but before the checkpoint is marked
complete: it leaves ``SAVE_WRITTEN`` in ``iter_N.tmp/`` and sleeps, so a test can SIGKILL
the run in the middle of the save (test_resume.py, crash during save)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    from megatron.core import dist_checkpointing

    hang_dir = f"iter_{int(os.environ['REXBERT_TEST_HANG_AT_STEP']):07d}.tmp"
    real_save = dist_checkpointing.save

    def save(sharded_state_dict, checkpoint_dir, *args, **kwargs):
        result = real_save(sharded_state_dict, checkpoint_dir, *args, **kwargs)
        if Path(checkpoint_dir).name == hang_dir:
            (Path(checkpoint_dir) / "SAVE_WRITTEN").write_text("")
            time.sleep(600)
        return result

    dist_checkpointing.save = save  # rexbert.train.checkpoint looks it up at call time

    from rexbert.train.__main__ import main

    sys.exit(main())
