"""Every experiment end to end at a reduced size (two seeds, ~1% of the steps, small eval sets),
on the shipped corpus: real training runs, real evaluations, the page and index generated from
the raw JSON. The Matryoshka one is killed in its second training run and rerun, which must
finish without redoing the first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rexbert.experiment.config import load_experiment
from rexbert.experiment.results import main_table
from rexbert.experiment.runner import COMPLETE, run_experiment

ROOT = Path(__file__).resolve().parents[2]
REDUCED = ["seeds=[0,1]", "step_scale=0.01",
           "eval_extra.masked_tokens=[limit=24]",
           "eval_extra.glue=['lrs=[1e-3]',epochs=1,max_train_examples=48,max_eval_examples=32]",
           "eval_extra.matryoshka=[limit=24,pairs_limit=24]"]


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    from rexbert.sample_data.corpus import prepare_sample_corpus

    root = tmp_path_factory.mktemp("experiments")
    prepare_sample_corpus(root / "corpus")
    return root


def reduced(space: Path, name: str) -> list[str]:
    return [*REDUCED, f"corpus_dir={space / 'corpus'}", f"work_dir={space / 'work' / name}",
            f"output={space / 'results' / name}", f"index={space / 'results.md'}"]


@pytest.fixture(scope="module")
def finished(space):
    """name → its results.json, each experiment run once per module."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in done:
            cfg = load_experiment(name, reduced(space, name))
            run_experiment(cfg)
            done[name] = json.loads((Path(cfg.output) / "results.json").read_text())
        return done[name]

    return get


def check_results(space: Path, name: str, raw: dict) -> None:
    cfg = raw["experiment"]
    assert {(r["arm"], r["seed"]) for r in raw["runs"]} == {(a["name"], s) for a in cfg["arms"] for s in (0, 1)}
    for run in raw["runs"]:
        assert set(run["evals"]) == {ev["name"] for ev in cfg["evals"]}
        for stage in run["stages"]:
            assert stage["steps"] >= 1 and Path(stage["run_dir"], "hf", "config.json").is_file()
    out = space / "results" / name
    page = (out / "README.md").read_text()
    assert main_table(raw) in page  # the table is the JSON's, generated
    assert (out / "metrics.png").stat().st_size > 1000 and (out / "loss.png").stat().st_size > 1000
    assert f"results/{name}/README.md" in (space / "results.md").read_text()


@pytest.mark.parametrize("name", ["domain_annealing", "objective", "masking_ratio"])
def test_reduced_experiment_writes_table_plots_and_raw_json(space, finished, name):
    raw = finished(name)
    check_results(space, name, raw)
    for run in raw["runs"]:
        top1 = run["evals"]["masked"]["metrics"]["128"]["top1"]
        assert 0.0 <= top1 <= 1.0 and run["evals"]["masked"]["metrics"]["128"]["positions"] > 0
        if name != "domain_annealing":
            assert 0.0 <= run["evals"]["sst2"]["metrics"]["accuracy"] <= 1.0


def test_domain_annealing_arms_share_the_general_phase(finished):
    raw = finished("domain_annealing")
    first = {(r["arm"], r["seed"]): r["stages"][0]["run_dir"] for r in raw["runs"]}
    assert first[("general_only", 0)] == first[("anneal", 0)] != first[("anneal", 1)]


def test_objective_arms_train_what_they_say(finished):
    raw = finished("objective")
    runs = {(r["arm"], r["seed"]): r["stages"][0] for r in raw["runs"]}
    assert "recipe=clm" in runs[("clm", 0)]["overrides"]
    assert "objective.switch_step=3" in runs[("clm25_mlm75", 0)]["overrides"]
    assert "objective.switch_step=6" in runs[("clm50_mlm50", 0)]["overrides"]


def test_killed_experiment_resumes_without_redoing_finished_runs(space, capsys):
    name = "matryoshka"
    cfg = load_experiment(name, reduced(space, name))
    log = space / "matryoshka_killed.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "rexbert", "experiment", name, *reduced(space, name)],
                                cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while "train 2/4" not in log.read_text() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert "train 2/4" in log.read_text(), log.read_text()[-3000:]
    markers = sorted((space / "work" / name / "stages").glob(f"*/seed*/{COMPLETE}"))
    assert len(markers) == 1, "killed in its second run: exactly the first is complete"
    before = (markers[0].read_text(), markers[0].stat().st_mtime_ns)
    assert not (Path(cfg.output) / "results.json").exists()

    run_experiment(cfg)
    out = capsys.readouterr().out
    assert "4 training runs (1 done)" in out and "train 1/4" not in out and "train 2/4" in out
    assert (markers[0].read_text(), markers[0].stat().st_mtime_ns) == before
    raw = json.loads((Path(cfg.output) / "results.json").read_text())
    check_results(space, name, raw)
    for ev in ("grid_mlm", "grid_retrieval"):
        grid = raw["runs"][0]["evals"][ev]["metrics"]["grid"]
        assert len(grid) == 16 and all(0.0 <= v <= 1.0 for v in grid.values())
        assert (Path(cfg.output) / f"grid_{ev}_{'masked_top_1' if ev == 'grid_mlm' else 'NDCG_10'}.png").is_file()
