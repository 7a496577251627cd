"""Command-line options generated from a config dataclass (``--field-name`` per field),
so the CLI and the Hydra config cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, Callable, Sequence

from ..shards import CurationError


def _pairs(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=NUMBER") from None


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of ``cls``; an option not given keeps the field's default."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} (defaults: the dataclass's)")
    for f in dataclasses.fields(cls):
        flag, hint = "--" + f.name.replace("_", "-"), hints[f.name]
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is list:
            kw.update(nargs="*", metavar="NAME")
        elif typing.get_origin(hint) is dict:
            kw.update(nargs="*", type=_pairs, metavar="KEY=VALUE")
        else:
            kw["type"] = hint
        group.add_argument(flag, **kw)


def config_from_args(cls: type, args: argparse.Namespace):
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    hints = typing.get_type_hints(cls)
    for name, value in given.items():
        if typing.get_origin(hints[name]) is dict:
            given[name] = dict(value)
    try:
        return cls(**given)
    except ValueError as e:  # a config check: say which key, without a traceback
        raise CurationError(str(e)) from None


def run(stage: str, body: Callable[[], int]) -> int:
    """Runs a CLI body: user errors (bad config, bad path) → one line and exit status 2."""
    try:
        return body()
    except CurationError as e:
        print(f"[{stage}] error: {e}", file=sys.stderr)
        return 2


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    return parser.parse_args(sys.argv[1:] if argv is None else list(argv))
