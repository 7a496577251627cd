"""A readable report over evaluation results: every result JSON under one or more folders
(as ``write_result`` writes them), grouped by task and dataset, models side by side.

- one markdown table per (task, dataset): a row per model, a column per metric (nested
  metrics flattened as ``128/top1``; ``mean ± ci95`` where a metric has them);
- ``masked_tokens``: top-k against block size, a line per model and k (PNG);
- ``matryoshka``: a heat map of the grid per model (PNG);
- any other task: a bar chart of its headline metric per model (PNG).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from rexbert.eval.common import EvalError

# The metric a task is judged by (the bar charts), first match wins.
HEADLINE = {"relevance": ("spearman",), "glue": ("accuracy", "spearman", "pearson"), "ner": ("f1",),
            "qa": ("f1", "exact_match"), "retrieval": ("ndcg@10",)}


def collect(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    results = []
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise EvalError(f"results folder {folder} does not exist")
        for path in sorted(folder.rglob("*.json")) if folder.is_dir() else [folder]:
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and {"task", "model", "metrics"} <= data.keys():
                data["_path"] = str(path)
                results.append(data)
    if not results:
        raise EvalError(f"no evaluation results (JSON with task/model/metrics) under {list(map(str, folders))}")
    return results


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and {"mean", "ci95"} <= value.keys():
            flat[name] = value
        elif isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None:
            flat[name] = value
    return flat


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        ci = value.get("ci95")
        return f"{value['mean']:.3f} ± {ci:.3f}" if isinstance(ci, float) and ci == ci else f"{value['mean']:.3f}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _scalar(value: Any) -> float:
    return float(value["mean"]) if isinstance(value, dict) else float(value)


def build_report(folders: Sequence[str | Path], out_dir: str | Path, title: str = "Evaluation report") -> Path:
    """Write ``out_dir/report.md`` and its PNGs; returns the markdown path."""
    results = collect(folders)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        dataset = str(r.get("dataset", ""))
        groups[(r["task"], Path(dataset).name if "/" in dataset else dataset)].append(r)
    models = sorted({r.get("model_name") or Path(r["model"]).name for r in results})
    lines = [f"# {title}", "", f"Models: {', '.join(f'`{m}`' for m in models)}.", ""]
    for (task, dataset), rows in sorted(groups.items()):
        lines += [f"## {task}" + (f" — {dataset}" if dataset else ""), ""]
        flat = [(r.get("model_name") or Path(r["model"]).name, flatten(r["metrics"])) for r in rows]
        columns = sorted({k for _, m in flat for k in m})
        lines += ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for name, metrics in flat:
            lines.append(f"| `{name}` | " + " | ".join(_cell(metrics[c]) if c in metrics else "—" for c in columns) + " |")
        lines.append("")
        figure = _plot(task, dataset, rows, out)
        if figure is not None:
            lines += [f"![{task} {dataset}]({figure.name})", ""]
    md = out / "report.md"
    md.write_text("\n".join(lines))
    return md


def _plot(task: str, dataset: str, rows: list[dict], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slug = "".join(c if c.isalnum() else "_" for c in f"{task}_{dataset}").strip("_")
    path = out / f"{slug}.png"
    if task == "matryoshka":
        return _plot_matryoshka(rows, path)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    if task == "masked_tokens":
        for r in rows:
            name = r.get("model_name") or Path(r["model"]).name
            blocks = sorted((k for k, v in r["metrics"].items() if k.isdigit() and isinstance(v, dict)), key=int)
            for k in ("top1", "top5"):
                ys = [r["metrics"][b].get(k) for b in blocks]
                if blocks and all(y is not None for y in ys):
                    ax.plot([int(b) for b in blocks], ys, "o-", label=f"{name} {k}")
        ax.set_xlabel("block size (tokens)")
        ax.set_ylabel("masked-token accuracy")
        ax.set_xscale("log", base=2)
    else:
        keys = HEADLINE.get(task, ())
        names, values = [], []
        for r in rows:
            flat = flatten(r["metrics"])
            key = next((k for k in keys if k in flat), next(iter(sorted(flat)), None))
            if key is None:
                continue
            names.append(r.get("model_name") or Path(r["model"]).name)
            values.append(_scalar(flat[key]))
        if not names:
            plt.close(fig)
            return None
        ax.bar(names, values, color="#4C72B0")
        ax.set_ylabel(key)
    ax.set_title(f"{task} {dataset}".strip())
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_matryoshka(rows: list[dict], path: Path) -> Path | None:
    import matplotlib.pyplot as plt
    import numpy as np

    grids = [r for r in rows if isinstance(r["metrics"].get("grid"), dict)]
    if not grids:
        return None
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 3.6), squeeze=False)
    for ax, r in zip(axes[0], grids):
        layers, dims = r["metrics"]["layers"], r["metrics"]["dims"]
        values = np.array([[r["metrics"]["grid"].get(f"L{l}_d{d}", np.nan) for d in dims] for l in layers], float)
        im = ax.imshow(values, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(dims)), [str(d) for d in dims])
        ax.set_yticks(range(len(layers)), [str(l) for l in layers])
        ax.set_xlabel("dims")
        ax.set_ylabel("layer")
        ax.set_title(r.get("model_name") or Path(r["model"]).name, fontsize=9)
        for i in range(len(layers)):
            for j in range(len(dims)):
                if values[i, j] == values[i, j]:
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="w", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
