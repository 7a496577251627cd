"""``rexbert experiment <name> [key=value ...]`` (also ``python -m rexbert experiment ...``).

    rexbert experiment --list                      # the experiments in conf/experiment/
    rexbert experiment domain_annealing            # train + evaluate what is not done, write docs/results/
    rexbert experiment objective 'seeds=[0,1]' step_scale=0.1 output=/tmp/objective
    rexbert experiment report domain_annealing     # the page again from docs/results/<name>/results.json
                                                   # (numbers from the JSON; claim/setting/caveat text from the config)
    rexbert experiment index                       # docs/results.md again, from every results.json

Rerunning an interrupted experiment picks up where it stopped: finished training runs and
finished evaluations are kept (see rexbert/experiment/runner.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from rexbert.experiment.config import ExperimentError, available_experiments, load_experiment


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("experiments:", ", ".join(available_experiments()))
        return 0
    try:
        if argv[0] == "--list":
            for name in available_experiments():
                cfg = load_experiment(name)
                print(f"{name:20s} {cfg.title} — {cfg.paper}")
            return 0
        if argv[0] == "report":
            from rexbert.experiment.results import RAW, refresh_prose, render, write_index

            cfg = load_experiment(argv[1], argv[2:]) if len(argv) > 1 else None
            if cfg is None:
                raise ExperimentError("usage: rexbert experiment report <name> [key=value ...]")
            raw = Path(cfg.output) / RAW
            if not raw.is_file():
                raise ExperimentError(f"{raw} does not exist: run `rexbert experiment {cfg.name}` first")
            refresh_prose(raw, cfg)
            print(render(raw))
            if cfg.index:
                print(write_index(Path(cfg.index), Path(cfg.output).parent))
            return 0
        if argv[0] == "index":
            from rexbert.experiment.results import write_index

            index = Path(argv[1] if len(argv) > 1 else "docs/results.md").resolve()
            print(write_index(index, index.parent / "results"))
            return 0
        from rexbert.experiment.runner import run_experiment

        run_experiment(load_experiment(argv[0], argv[1:]))
        return 0
    except ExperimentError as e:
        print(f"[rexbert experiment] error: {e}", file=sys.stderr)
        return 2
