"""``rexbert eval``: configs compose from conf/eval with key=value overrides, errors name the
key, and ``model=/path`` is a plain key even when the training configs (whose Hydra groups
include ``model``) are loaded in the same process."""

from __future__ import annotations

import pytest

import rexbert.config  # noqa: F401  (registers the training config groups, as in a real process)
from rexbert.eval.cli import load_task_config, main
from rexbert.eval.common import EvalError


def test_model_is_a_path_not_the_training_config_group(tmp_path):
    config = load_task_config("glue", [f"model={tmp_path}", "task=mrpc", "lrs=[1e-4,2e-4]", "seeds=[3]"])
    assert config.model == str(tmp_path) and config.task == "mrpc" and config.lrs == [1e-4, 2e-4]
    assert config.seeds == [3]


@pytest.mark.parametrize("override, named", [("tsk=sst2", "tsk"), ("epochs=many", "epochs"), ("lrs", "key=value")])
def test_a_bad_override_names_the_key(override, named):
    with pytest.raises(EvalError, match=named):
        load_task_config("glue", [override])


def test_unknown_task_and_missing_model_exit_2_with_a_message(tmp_path, capsys):
    assert main(["gleu"]) == 2
    assert "unknown evaluation task 'gleu'" in capsys.readouterr().err
    assert main(["glue", f"model={tmp_path / 'nope'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
