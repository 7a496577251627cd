"""Versioned labelling prompts (YAML) and parsing a model's reply into the label set.

A prompt file holds ``version``, ``labels`` (the first is the positive class), ``definition``
(what the labels mean), a ``system`` template (``{definition}`` and ``{labels}`` filled in)
and a ``user`` template with ``{text}`` exactly once. The document text is spliced in
verbatim, never through ``str.format``, so braces in web text are harmless.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..shards import CurationError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_REQUIRED = ("version", "labels", "definition", "system", "user")
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_JSON_RE = re.compile(r"\{[^{}]*\}", re.DOTALL)


@dataclass(frozen=True)
class Prompt:
    version: str
    labels: tuple[str, ...]
    definition: str
    system: str              # rendered: definition and labels filled in
    user_before: str         # the user template around {text}
    user_after: str
    source: str              # the file it came from
    content_sha256: str      # of everything a model reads; guards a version reused after edits

    @property
    def positive_label(self) -> str:
        return self.labels[0]

    def messages(self, text: str) -> list[dict[str, str]]:
        """Chat messages for one document."""
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user_before + text + self.user_after}]

    def parse(self, reply: str) -> Optional[str]:
        return parse_reply(reply, self.labels)


def resolve_prompt_path(name_or_path: str) -> Path:
    """A bare name means ``data_tools/curate/prompts/<name>.yaml``; anything else is a path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.parent != Path("."):
        return p
    return PROMPTS_DIR / f"{name_or_path}.yaml"


def load_prompt(name_or_path: str) -> Prompt:
    import yaml

    path = resolve_prompt_path(name_or_path)
    if not path.is_file():
        raise CurationError(f"label.prompt={name_or_path!r}: no prompt file {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise CurationError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise CurationError(f"{path}: expected a mapping with keys {', '.join(_REQUIRED)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CurationError(f"{path}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_REQUIRED))
    if unknown:
        raise CurationError(f"{path}: unknown key(s) {', '.join(unknown)}")
    for key in ("version", "definition", "system", "user"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise CurationError(f"{path}: key '{key}' must be a non-empty string")
    labels = raw["labels"]
    if (not isinstance(labels, list) or len(labels) < 2
            or not all(isinstance(x, str) and _LABEL_RE.match(x) for x in labels)):
        raise CurationError(f"{path}: key 'labels' must list at least two words "
                            "(letters, digits, underscores)")
    if len({x.lower() for x in labels}) != len(labels):
        raise CurationError(f"{path}: key 'labels' has duplicates")
    user = raw["user"]
    if user.count("{text}") != 1:
        raise CurationError(f"{path}: key 'user' must contain {{text}} exactly once")
    before, after = user.split("{text}")
    system = raw["system"].replace("{definition}", raw["definition"].strip()).replace(
        "{labels}", " or ".join(labels))
    content = json.dumps([raw["version"], labels, system, user], ensure_ascii=False)
    return Prompt(version=raw["version"].strip(), labels=tuple(labels), definition=raw["definition"],
                  system=system, user_before=before, user_after=after, source=str(path),
                  content_sha256=hashlib.sha256(content.encode("utf-8")).hexdigest())


def _label_pattern(labels: Sequence[str]) -> re.Pattern:
    # Longest first, so "not_relevant" wins over "relevant" at the same position; an
    # underscore may be written as a space or a hyphen ("not relevant").
    alternatives = []
    for label in sorted(labels, key=len, reverse=True):
        alternatives.append("[ _-]".join(re.escape(part) for part in label.split("_")))
    return re.compile(r"(?<![\w-])(" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)


def _canonical(word: str, labels: Sequence[str]) -> Optional[str]:
    key = re.sub(r"[ _-]+", "_", word.strip().lower())
    for label in labels:
        if label.lower() == key:
            return label
    return None


def parse_reply(reply: str, labels: Sequence[str]) -> Optional[str]:
    """The label a reply gives, or None when it names none: a json object's ``label`` if the
    reply holds one, else the first label word (case-insensitive, whole words; reasoning in
    ``<think>`` blocks ignored)."""
    if not isinstance(reply, str):
        return None
    text = _THINK_RE.sub(" ", reply)
    for match in _JSON_RE.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("label"), str):
            return _canonical(obj["label"], labels)
    found = _label_pattern(labels).search(text)
    return _canonical(found.group(1), labels) if found else None
