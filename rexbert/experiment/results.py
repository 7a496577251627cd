"""An experiment's results: the raw JSON (every run's training record and eval result), and the
page generated from it alone — tables of mean ± 95% CI over seeds, the claim's verdict, PNG
plots — plus the index of all experiments (docs/results.md). Nothing here is edited by hand:
``rexbert experiment report <name>`` regenerates the page from ``results.json``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Optional

from rexbert.eval.common import mean_ci95
from rexbert.experiment.config import ExperimentError, plain

RAW = "results.json"
PAGE = "README.md"


def dig(metrics: dict[str, Any], path: str) -> Any:
    value: Any = metrics
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ExperimentError(f"metric path {path!r}: no {part!r} in the result's metrics")
        value = value[part]
    return value


def write_results(cfg, plans: dict) -> Path:
    """Gather the raw JSON from the work folder, then render the page and the index."""
    from rexbert.experiment.runner import COMPLETE, eval_path

    runs = []
    for (arm, seed), stages in plans.items():
        runs.append({
            "arm": arm, "seed": seed,
            "stages": [{**json.loads((s.run_dir / COMPLETE).read_text()), "run_dir": str(s.run_dir),
                        "metrics_file": str(s.run_dir / "metrics.jsonl")} for s in stages],
            "evals": {ev.name: json.loads(eval_path(cfg, arm, seed, ev).read_text()) for ev in cfg.evals},
        })
    raw = {"experiment": plain(cfg), "runs": runs, "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
           "machine": machine()}
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{RAW}.tmp"
    tmp.write_text(json.dumps(raw, indent=1, default=float))
    tmp.replace(out / RAW)
    page = render(out / RAW)
    if cfg.index:
        write_index(Path(cfg.index), out.parent)
    return page


PROSE = ("title", "paper", "claim", "setting", "caveat")


def refresh_prose(raw_path: Path, cfg) -> None:
    """Take the experiment's wording (title, claim, setting, caveat) from the current config into
    its results.json; the measured numbers and the run settings stay as they were."""
    raw = json.loads(Path(raw_path).read_text())
    raw["experiment"].update({key: getattr(cfg, key) for key in PROSE})
    tmp = Path(raw_path).with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=1, default=float))
    tmp.replace(raw_path)


def machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


# ---- tables -----------------------------------------------------------------------------

def scalar_table(raw: dict) -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """Columns, and arm → column → values over seeds (grids add their mean over cells)."""
    exp = raw["experiment"]
    columns = [f"{label} (grid mean)" if ev["grid"] else label for ev in exp["evals"] for label in ev["metrics"]]
    values: dict[str, dict[str, list[float]]] = {a["name"]: {c: [] for c in columns} for a in exp["arms"]}
    for run in sorted(raw["runs"], key=lambda r: r["seed"]):
        for ev in exp["evals"]:
            metrics = run["evals"][ev["name"]]["metrics"]
            for label, path in ev["metrics"].items():
                value = dig(metrics, path)
                if ev["grid"]:
                    cells = [v for v in value.values() if v is not None]
                    values[run["arm"]][f"{label} (grid mean)"].append(sum(cells) / len(cells))
                else:
                    values[run["arm"]][label].append(float(value) if value is not None else math.nan)
    return columns, values


def grid_values(raw: dict, ev: dict, label: str) -> dict[str, dict[str, list[float]]]:
    """arm → cell ("L2_d32") → values over seeds."""
    out: dict[str, dict[str, list[float]]] = {a["name"]: {} for a in raw["experiment"]["arms"]}
    for run in sorted(raw["runs"], key=lambda r: r["seed"]):
        for cell, v in dig(run["evals"][ev["name"]]["metrics"], ev["metrics"][label]).items():
            out[run["arm"]].setdefault(cell, []).append(math.nan if v is None else float(v))
    return out


def fmt(values: list[float]) -> str:
    s = mean_ci95(values)
    if math.isnan(s["mean"]):
        return "n/a"
    return f"{s['mean']:.3f}" if math.isnan(s["ci95"]) else f"{s['mean']:.3f} ± {s['ci95']:.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main_table(raw: dict) -> str:
    columns, values = scalar_table(raw)
    rows = [[arm["label"], *[fmt(values[arm["name"]][c]) for c in columns]] for arm in raw["experiment"]["arms"]]
    return markdown_table(["arm", *columns], rows)


def grid_tables(raw: dict) -> list[tuple[str, str]]:
    out = []
    arms = raw["experiment"]["arms"]
    for ev in raw["experiment"]["evals"]:
        if not ev["grid"]:
            continue
        for label in ev["metrics"]:
            grid = grid_values(raw, ev, label)
            cells = list(grid[arms[0]["name"]])
            rows = [[cell.replace("_d", ", dims ").replace("L", "layer "), *[fmt(grid[a["name"]][cell]) for a in arms]]
                    for cell in cells]
            out.append((f"{ev['name']}: {label} per (layer, leading dims)",
                        markdown_table(["cell", *[a["label"] for a in arms]], rows)))
    return out


def verdicts(raw: dict) -> list[dict[str, Any]]:
    """Each expected comparison on paired seeds: agrees when the 95% CI of the difference is
    above zero, disagrees when below, else inconclusive."""
    columns, values = scalar_table(raw)
    out = []
    for ex in raw["experiment"]["expect"]:
        if ex["metric"] not in columns:
            raise ExperimentError(f"expect.metric {ex['metric']!r} is not a column of the table {columns}")
        better, than = values[ex["better"]][ex["metric"]], values[ex["than"]][ex["metric"]]
        diff = mean_ci95([b - t for b, t in zip(better, than)])
        if math.isnan(diff["ci95"]):
            outcome = "agrees (one seed, no interval)" if diff["mean"] > 0 else "does not agree (one seed, no interval)"
        elif diff["mean"] - diff["ci95"] > 0:
            outcome = "agrees"
        elif diff["mean"] + diff["ci95"] < 0:
            outcome = "disagrees"
        else:
            outcome = "inconclusive (the interval spans zero)"
        wins = sum(b > t for b, t in zip(better, than))
        out.append({**ex, "difference": diff["mean"], "ci95": diff["ci95"], "n": diff["n"], "wins": wins,
                    "outcome": outcome})
    return out


def verdict_lines(raw: dict) -> list[str]:
    labels = {a["name"]: a["label"] for a in raw["experiment"]["arms"]}
    return [f"{labels[v['better']]} − {labels[v['than']]} on {v['metric']}: {v['difference']:+.4f}"
            + ("" if math.isnan(v["ci95"]) else f" ± {v['ci95']:.4f}") + f" (paired over {v['n']} seeds; ahead on {v['wins']} of {v['n']}): "
            f"**{v['outcome']}** with the paper." for v in verdicts(raw)]


def budget_lines(raw: dict) -> list[str]:
    exp = raw["experiment"]
    lines = []
    for arm in exp["arms"]:
        stages = ", then ".join(f"{s['name']} {max(1, round(s['steps'] * exp['step_scale']))} steps"
                                for s in arm["stages"])
        lines.append(f"- **{arm['label']}**: {stages}")
    return lines


# ---- the page ---------------------------------------------------------------------------

def render(raw_path: Path) -> Path:
    raw = json.loads(Path(raw_path).read_text())
    exp = raw["experiment"]
    out = Path(raw_path).parent
    plots = plot_all(raw, out)
    seconds = sum(s["seconds"] for r in raw["runs"] for s in r["stages"]) + sum(
        (e.get("seconds") or 0) for r in raw["runs"] for e in r["evals"].values())
    m = raw["machine"]
    parts = [
        f"# {exp['title']}",
        "",
        "<!-- generated by `rexbert experiment` from results.json; do not edit by hand -->",
        "",
        f"**Claim** ({exp['paper']}): {exp['claim']}",
        "",
        f"**Setting**: {exp['setting']} Seeds {exp['seeds']}; every arm gets the same budget:",
        "",
        *budget_lines(raw),
        "",
        "## Result (mean ± 95% CI over seeds)",
        "",
        main_table(raw),
        "",
        *[f"- {line}" for line in verdict_lines(raw)],
        "",
    ]
    if exp.get("caveat"):
        parts += [f"At this scale: {exp['caveat']}", ""]
    for title, table in grid_tables(raw):
        parts += [f"### {title}", "", table, ""]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    parts += [
        "## Reproduce",
        "",
        "```",
        f"rexbert experiment {exp['name']}",
        "```",
        "",
        f"Measured {raw['generated']} on {m['processor']} ({m['cpus']} CPUs, {m['torch_threads']} torch threads, "
        f"torch {m['torch']}); training and evaluation took {seconds / 60:.1f} min of compute in all. "
        f"Raw results: [{RAW}]({RAW}).",
        "",
    ]
    page = out / PAGE
    tmp = out / f"{PAGE}.tmp"
    tmp.write_text("\n".join(parts))
    tmp.replace(page)
    return page


def write_index(index: Path, results_root: Path) -> Path:
    """docs/results.md: every experiment under ``results_root`` — claim, setting, table, verdict."""
    parts = ["# Results: the papers' claims at toy scale", "",
             "<!-- generated by `rexbert experiment` from docs/results/*/results.json; do not edit by hand -->", "",
             "Each experiment trains several recipes with the same budget, seeds and data (the corpus "
             "shipped in `rexbert/sample_data`), evaluates every one with `rexbert eval`, and reports mean ± 95% CI "
             "over seeds. Rerun one with `rexbert experiment <name>`; the page beside each table has the plots "
             "and the raw JSON.", ""]
    for raw_path in sorted(results_root.glob(f"*/{RAW}")):
        raw = json.loads(raw_path.read_text())
        exp = raw["experiment"]
        link = os.path.relpath(raw_path.parent / PAGE, index.parent)
        parts += [f"## [{exp['title']}]({link})", "", f"**Claim** ({exp['paper']}): {exp['claim']}", "",
                  f"**Setting**: {exp['setting']} Seeds {exp['seeds']}; `rexbert experiment {exp['name']}`.", "",
                  main_table(raw), ""]
        parts += [f"- {line}" for line in verdict_lines(raw)]
        if exp.get("caveat"):
            parts += [f"- At this scale: {exp['caveat']}"]
        parts += [""]
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(index)
    return index


# ---- plots ------------------------------------------------------------------------------

def plot_all(raw: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    paths = [plot_bars(raw, out / "metrics.png"), plot_loss(raw, out / "loss.png")]
    for ev in raw["experiment"]["evals"]:
        if ev["grid"]:
            for label in ev["metrics"]:
                paths.append(plot_grids(raw, ev, label, out / f"grid_{ev['name']}_{_slug(label)}.png"))
    return [p for p in paths if p is not None]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def plot_bars(raw: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    columns, values = scalar_table(raw)
    arms = raw["experiment"]["arms"]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.2 + 2.4 * len(columns), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        for i, arm in enumerate(arms):
            v = values[arm["name"]][column]
            s = mean_ci95(v)
            ax.bar(i, s["mean"], yerr=None if math.isnan(s["ci95"]) else s["ci95"], capsize=4, color=f"C{i}", alpha=0.7)
            ax.plot([i] * len(v), v, "k.", ms=4)
        ax.set_xticks(range(len(arms)), [a["label"] for a in arms], rotation=30, ha="right", fontsize=8)
        ax.set_title(column, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{raw['experiment']['title']}: mean ± 95% CI, dots = seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss(raw: dict, path: Path) -> Optional[Path]:
    """Training loss of each arm (first seed), its stages end to end."""
    import matplotlib.pyplot as plt

    from rexbert.train.metrics import read_metrics

    seed = min(raw["experiment"]["seeds"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    drawn = False
    for i, arm in enumerate(raw["experiment"]["arms"]):
        run = next(r for r in raw["runs"] if r["arm"] == arm["name"] and r["seed"] == seed)
        offset, xs, ys = 0, [], []
        for stage in run["stages"]:
            f = Path(stage["metrics_file"])
            records = read_metrics(f) if f.is_file() else []
            points = [(offset + r["step"], r["loss"]) for r in records if "loss" in r]
            xs += [p[0] for p in points]
            ys += [p[1] for p in points]
            offset += stage["steps"]
        if xs:
            ax.plot(xs, ys, color=f"C{i}", label=arm["label"], lw=1.2)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step (stages end to end)")
    ax.set_ylabel("training loss")
    ax.set_title(f"training loss, seed {seed} (CLM and MLM losses are not comparable)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_grids(raw: dict, ev: dict, label: str, path: Path) -> Path:
    """One heat map per arm (mean over seeds), and the difference of the last arm from the first."""
    import matplotlib.pyplot as plt
    import numpy as np

    arms = raw["experiment"]["arms"]
    grid = grid_values(raw, ev, label)
    cells = list(grid[arms[0]["name"]])
    layers = sorted({int(c.split("_")[0][1:]) for c in cells})
    dims = sorted({int(c.split("_d")[1]) for c in cells})

    def matrix(arm: str) -> np.ndarray:
        return np.array([[np.nanmean(grid[arm].get(f"L{k}_d{d}", [np.nan])) for d in dims] for k in layers])

    panels = [(a["label"], matrix(a["name"])) for a in arms]
    panels.append((f"{arms[-1]['label']} − {arms[0]['label']}", panels[-1][1] - panels[0][1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 + 2.6 * len(panels), 1.4 + 0.45 * len(layers)), squeeze=False)
    for ax, (title, m) in zip(axes[0], panels):
        diff = "−" in title
        image = ax.imshow(m, cmap="RdBu" if diff else "viridis", aspect="auto",
                          **({"vmin": -np.nanmax(abs(m)), "vmax": np.nanmax(abs(m))} if diff and np.isfinite(m).any() else {}))
        ax.set_xticks(range(len(dims)), [str(d) for d in dims])
        ax.set_yticks(range(len(layers)), [str(k) for k in layers])
        ax.set_xlabel("leading dims")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
        for i in range(len(layers)):
            for j in range(len(dims)):
                ax.text(j, i, f"{m[i, j]:.3f}", ha="center", va="center", fontsize=7)
        fig.colorbar(image, ax=ax)
    fig.suptitle(f"{ev['name']}: {label} (mean over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
