"""A small domain-labelled corpus in FineFineWeb's layout, built from the real text that
ships with rexbert (Abt-Buy product listings, Hamlet), with planted problems every stage
must catch: near-duplicates across shards, non-English documents, boilerplate, profanity,
documents that leak an evaluation set, and an unreadable line.

    <out>/raw/<domain>/<domain>_00000N.jsonl   records {"id", "text", "url"}; the domain is the folder
    <out>/eval/heldout_products.jsonl          the "evaluation set" to decontaminate against

Domains: ``fashion`` (taken whole), ``hobby`` and ``entertainment`` (products mixed with
Hamlet: relevance-filtered), ``literature`` (Hamlet: not selected).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

PLANTED = {
    "german": "Dieser Artikel ist ein hochwertiger Kopfhörer mit Geräuschunterdrückung, langer Akkulaufzeit und "
              "bequemen Ohrpolstern. Er wird mit einer Tragetasche und einem Ladekabel geliefert.",
    "french": "Ce téléviseur offre une image nette et des couleurs vives grâce à son écran haute définition. "
              "Il dispose de trois ports HDMI et d'un support mural inclus dans la boîte.",
    "boilerplate": "This website uses cookies to ensure you get the best experience. Accept cookies. "
                   "Privacy policy. Terms of use. Javascript is disabled in your browser. Lorem ipsum dolor sit amet.",
    "profane": "This shit speaker is fucking garbage, what a fucking piece of shit, damn it all to hell.",
}


def _perturb(text: str, rng: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        i = rng.randrange(len(words))
        words[i] = words[i].upper() if rng.random() < 0.5 else words[i] + "s"
    return " ".join(words)


def build_example_corpus(out: Path, seed: int = 0) -> dict[str, Any]:
    from rexbert.sample_data import load_sample

    rng = random.Random(seed)
    products = [r["text"] for r in load_sample("products")]
    hamlet = [r["text"] for r in load_sample("general")]
    rng.shuffle(products)
    heldout, products = products[:40], products[40:]
    domains: dict[str, list[str]] = {
        "fashion": products[:200],
        "hobby": products[200:500] + hamlet[:80],
        "entertainment": products[500:800] + hamlet[80:180],
        "literature": hamlet[180:],
    }
    # Planted problems in the domain taken whole, so that the relevance filter cannot hide
    # them from the stages that must catch them.
    # near-copies (one word changed) of the 30 longest fashion items: long enough that the
    # edit keeps their 5-word-shingle Jaccard above 0.8
    dupes = [_perturb(t, rng, 1) for t in sorted(products[:200], key=lambda t: -len(t.split()))[:30]]
    domains["fashion"] += dupes + heldout[:10]  # ... and leaks of the evaluation set
    domains["fashion"] += [PLANTED["german"], PLANTED["french"], PLANTED["boilerplate"], PLANTED["profane"]]
    raw = out / "raw"
    files = []
    for domain, texts in domains.items():
        rng.shuffle(texts)
        folder = raw / domain
        folder.mkdir(parents=True, exist_ok=True)
        half = (len(texts) + 1) // 2
        for k, chunk in enumerate((texts[:half], texts[half:])):
            path = folder / f"{domain}_{k:06d}.jsonl"
            with open(path, "w") as f:
                for i, text in enumerate(chunk):
                    f.write(json.dumps({"id": f"{domain}-{k}-{i:05d}", "text": text,
                                        "url": f"https://example.com/{domain}/{k}/{i}"}) + "\n")
                if domain == "fashion" and k == 0:
                    f.write('{"id": "broken", "text": \n')  # an unreadable line, counted and reported
            files.append(path)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    with open(out / "eval" / "heldout_products.jsonl", "w") as f:
        for i, text in enumerate(heldout):
            f.write(json.dumps({"id": f"eval-{i}", "text": text}) + "\n")
    return {"raw": raw, "eval": out / "eval" / "heldout_products.jsonl", "shards": files,
            "planted": {"near_duplicates": len(dupes), "eval_leaks": 10, "non_english": 2, "boilerplate": 1,
                        "profane": 1, "bad_lines": 1}}


def main(argv: list[str] | None = None) -> int:
    """Build the example corpus under --out and run every curation stage on it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m data_tools.curate.example", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/curate-example"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/curate/example.yaml")
    args = parser.parse_args(argv)
    from .config import load_curate_config
    from .pipeline import run

    built = build_example_corpus(args.out)
    print(f"[curate] example corpus: {len(built['shards'])} shards under {built['raw']}; planted: {built['planted']}")
    config = load_curate_config([f"output={args.out}", *args.overrides], preset="example")
    run(config)
    report = args.out / "report" / "report.md"
    print(report.read_text())
    print(f"[curate] report: {report} (figure: {report.with_name('domains.png')}); corpus for "
          f"data_tools.preprocess: {args.out / '10_mine'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
