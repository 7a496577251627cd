"""``python -m rexbert eval|experiment ...`` — the same as the ``rexbert`` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        from rexbert.eval.cli import main as eval_main

        return eval_main(argv[1:])
    if argv[:1] == ["experiment"]:
        from rexbert.experiment.cli import main as experiment_main

        return experiment_main(argv[1:])
    print("usage: rexbert eval <task|suite|report> [ARGS ...]   (rexbert eval --help)\n"
          "       rexbert experiment <name|--list|report|index> [ARGS ...]   (rexbert experiment --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
