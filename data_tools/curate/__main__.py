"""``python -m data_tools.curate [--preset NAME] [HYDRA_OVERRIDE ...]``: run the curation
stages of ``conf/curate/<NAME>.yaml`` (default ``ecommerce``) with overrides, e.g.

    python -m data_tools.curate inputs=[/data/finefineweb] output=/data/ecom label.model=Qwen2.5-72B-Instruct
    python -m data_tools.curate inputs=[...] output=... stages=[select,sample]    # some stages only

``python -m data_tools.curate.example`` builds a small corpus from the shipped sample text and
runs every stage on it (no model server needed: a keyword stand-in labels it).

Single stages also have their own command lines (plain options, no Hydra):
``python -m data_tools.curate {label,audit,distill,filter,clean,dedup,decontam} --help``.
"""

from __future__ import annotations

import sys


STAGE_COMMANDS = {"label": ".label.run", "audit": ".audit", "distill": ".classify.distill",
                  "filter": ".classify.filter", "clean": ".clean.pipeline", "dedup": ".dedup",
                  "decontam": ".decontam", "decontaminate": ".decontam"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if argv and argv[0] in STAGE_COMMANDS:
        import importlib

        module = importlib.import_module(STAGE_COMMANDS[argv[0]], __package__)
        return module.main(argv[1:])
    preset = "ecommerce"
    if argv[:1] == ["--preset"] and len(argv) > 1:
        preset, argv = argv[1], argv[2:]
    from .config import load_curate_config
    from .pipeline import run
    from .shards import CurationError

    try:
        config = load_curate_config(argv, preset)
        run(config)
    except CurationError as e:
        print(f"[curate] error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
