"""rexbert experiment: configs, run planning and the results page, without training (the reduced
end-to-end runs are in tests/integration/test_experiments.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from rexbert.eval.common import mean_ci95
from rexbert.experiment.config import ExperimentError, available_experiments, load_experiment, plain
from rexbert.experiment.results import main_table, render, scalar_table, verdicts, write_index
from rexbert.experiment.runner import plan_stages

EXPERIMENTS = ["domain_annealing", "masking_ratio", "matryoshka", "objective"]


def test_the_four_experiments_are_configured():
    assert available_experiments() == EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_config_loads_with_seeds_budget_and_claim(name):
    cfg = load_experiment(name)
    assert cfg.seeds == [0, 1, 2] and cfg.claim and cfg.paper and cfg.setting
    assert all(stage.steps > 0 for arm in cfg.arms for stage in arm.stages)
    # every arm gets the same number of training steps
    assert len({sum(s.steps for s in arm.stages) for arm in cfg.arms}) == 1
    assert cfg.expect and all(ex.metric in cfg.columns() for ex in cfg.expect)
    assert Path(cfg.output).name == name and Path(cfg.output).is_absolute()


def test_shared_evals_are_resolved_into_the_stored_config():
    cfg = load_experiment("objective")
    assert [ev.name for ev in cfg.evals] == ["masked", "sst2", "mrpc"]
    assert plain(cfg)["shared_evals"] == {} and str(Path(cfg.corpus_dir)) in cfg.evals[0].overrides[0]


def test_unknown_experiment_and_bad_override_name_the_problem():
    with pytest.raises(ExperimentError, match="choose from domain_annealing"):
        load_experiment("nope")
    with pytest.raises(ExperimentError, match="step_scal"):
        load_experiment("objective", ["step_scal=0.1"])
    with pytest.raises(ExperimentError, match="seeds"):
        load_experiment("objective", ["seeds=[1,1]"])
    with pytest.raises(ExperimentError, match="not a column"):
        load_experiment("objective", ["expect=[{metric: bogus, better: mlm, than: clm}]"])


def test_arms_that_begin_alike_share_their_first_stage():
    cfg = load_experiment("domain_annealing", ["step_scale=0.1"])
    general_only, anneal = (plan_stages(cfg, arm, seed=0) for arm in cfg.arms)
    assert general_only[0].run_dir == anneal[0].run_dir
    assert general_only[1].run_dir != anneal[1].run_dir
    assert plan_stages(cfg, cfg.arms[0], seed=1)[0].run_dir != general_only[0].run_dir
    # the second stage starts from the first and scales its schedule with its own steps
    assert f"trainer.load={anneal[0].run_dir}" in anneal[1].overrides
    assert anneal[0].steps == 150 and anneal[1].steps == 75
    assert "schedule.decay=75" in anneal[1].overrides and "data.anneal_end_sample=300" in anneal[1].overrides
    assert "model.seed=0" in anneal[1].overrides and "data.seed=0" in anneal[1].overrides


def test_switch_step_follows_the_scaled_budget():
    cfg = load_experiment("objective", ["step_scale=0.02"])
    (run,) = plan_stages(cfg, cfg.arm("clm25_mlm75"), seed=0)
    assert run.steps == 24 and "objective.switch_step=6" in run.overrides and "recipe=clm_to_mlm" in run.overrides


# ---- results: generated from the raw JSON ------------------------------------------------

def fake_raw(top1: dict[str, list[float]], grid_shift: float = 0.1) -> dict:
    """A results.json as write_results stores it: two arms, three seeds, a scalar and a grid eval."""
    exp = {"name": "toy", "title": "Toy", "paper": "P", "claim": "B beats A.", "setting": "S.", "caveat": "small.",
           "seeds": [0, 1, 2], "step_scale": 1.0,
           "arms": [{"name": "a", "label": "arm A", "stages": [{"name": "s", "steps": 10}]},
                    {"name": "b", "label": "arm B", "stages": [{"name": "s", "steps": 10}]}],
           "evals": [{"name": "masked", "task": "masked_tokens", "metrics": {"top-1": "128.top1"}, "grid": False},
                     {"name": "g", "task": "matryoshka", "metrics": {"ndcg": "grid"}, "grid": True}],
           "expect": [{"metric": "top-1", "better": "b", "than": "a"}]}
    runs = []
    for arm in ("a", "b"):
        for seed in (0, 1, 2):
            shift = grid_shift if arm == "b" else 0.0
            runs.append({"arm": arm, "seed": seed, "stages": [{"name": "s", "steps": 10, "seconds": 1.0,
                                                               "metrics_file": "/nonexistent"}],
                         "evals": {"masked": {"metrics": {"128": {"top1": top1[arm][seed]}}},
                                   "g": {"metrics": {"grid": {"L1_d8": 0.1 + shift, "L2_d8": 0.2 + shift}}}}})
    return {"experiment": exp, "runs": runs, "generated": "now",
            "machine": {"processor": "x", "cpus": 2, "torch_threads": 2, "torch": "t"}}


def test_table_cells_are_mean_and_ci_of_the_seeds():
    raw = fake_raw({"a": [0.10, 0.12, 0.11], "b": [0.20, 0.22, 0.21]})
    columns, values = scalar_table(raw)
    assert columns == ["top-1", "ndcg (grid mean)"]
    assert values["b"]["ndcg (grid mean)"] == pytest.approx([0.25, 0.25, 0.25])
    s = mean_ci95([0.20, 0.22, 0.21])
    assert f"| arm B | {s['mean']:.3f} ± {s['ci95']:.3f} | 0.250 ± 0.000 |" in main_table(raw)


@pytest.mark.parametrize("b, outcome", [([0.20, 0.22, 0.21], "agrees"), ([0.01, 0.02, 0.015], "disagrees"),
                                        ([0.05, 0.20, 0.11], "inconclusive")])
def test_verdict_is_the_paired_difference_interval(b, outcome):
    (v,) = verdicts(fake_raw({"a": [0.10, 0.12, 0.11], "b": b}))
    assert v["outcome"].startswith(outcome)
    d = mean_ci95([x - y for x, y in zip(b, [0.10, 0.12, 0.11])])
    assert v["difference"] == pytest.approx(d["mean"]) and v["ci95"] == pytest.approx(d["ci95"])


def test_page_and_index_are_regenerated_from_the_json(tmp_path):
    raw = fake_raw({"a": [0.10, 0.12, 0.11], "b": [0.20, 0.22, 0.21]})
    folder = tmp_path / "results" / "toy"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(raw))
    page = render(folder / "results.json").read_text()
    assert main_table(raw) in page and "**agrees** with the paper" in page
    assert (folder / "metrics.png").stat().st_size > 1000 and (folder / "grid_g_ndcg.png").is_file()
    index = write_index(tmp_path / "results.md", tmp_path / "results").read_text()
    assert "## [Toy](results/toy/README.md)" in index and main_table(raw) in index
    # change the raw numbers: the page follows, nothing is kept from the previous render
    raw["runs"][0]["evals"]["masked"]["metrics"]["128"]["top1"] = 0.9
    (folder / "results.json").write_text(json.dumps(raw))
    page = render(folder / "results.json").read_text()
    assert main_table(raw) in page and not math.isclose(scalar_table(raw)[1]["a"]["top-1"][0], 0.10)


# ---- the committed results ---------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMITTED = sorted(DOCS.glob("results/*/results.json"))


@pytest.mark.parametrize("raw_path", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_committed_pages_match_their_json_and_the_current_config(raw_path):
    """docs/results is generated: its tables are what the raw JSON gives, and the JSON came from
    the experiment as configured now (same arms, steps and seeds)."""
    raw = json.loads(raw_path.read_text())
    table = main_table(raw)
    assert table in (raw_path.parent / "README.md").read_text()
    assert table in (DOCS / "results.md").read_text()
    cfg = plain(load_experiment(raw_path.parent.name))
    for key in ("seeds", "arms", "evals", "expect", "step_scale", "base_train", "train"):
        # absolute corpus paths differ between checkouts; thread counts are run settings
        # (the experiment's num_threads), not results
        stored, now = (json.dumps(x).replace(root, "<corpus>") for x, root in
                       ((raw["experiment"][key], raw["experiment"]["corpus_dir"]), (cfg[key], cfg["corpus_dir"])))
        stored, now = (re.sub(r', "num_threads=\d+"', "", x) for x in (stored, now))
        assert stored == now, f"{raw_path} is stale for {key}: rerun `rexbert experiment {raw_path.parent.name}`"
