"""``python -m data_tools.curate [--preset NAME] [HYDRA_OVERRIDE ...]``: run the curation
stages of ``conf/curate/<NAME>.yaml`` (default ``ecommerce``) with overrides, e.g.

    python -m data_tools.curate inputs=[/data/finefineweb] output=/data/ecom label.model=Qwen2.5-72B-Instruct
    python -m data_tools.curate inputs=[...] output=... stages=[select,sample]    # some stages only

``python -m data_tools.curate.example`` builds a small corpus from the shipped sample text and
runs every stage on it (no model server needed: a keyword stand-in labels it).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
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
