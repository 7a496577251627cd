"""Build the encoder for this rank's pipeline stage."""

from __future__ import annotations

from megatron.core import parallel_state

from rexbert.model.config import RexBertConfig, to_transformer_config
from rexbert.model.encoder import RexBertModel


def build_model(config: RexBertConfig) -> RexBertModel:
    """The model chunk this rank holds. Call after ``megatron_ext.parallel.init_parallel``
    with sizes equal to ``config.tensor/pipeline_model_parallel_size``."""
    tp = parallel_state.get_tensor_model_parallel_world_size()
    pp = parallel_state.get_pipeline_model_parallel_world_size()
    if (tp, pp) != (config.tensor_model_parallel_size, config.pipeline_model_parallel_size):
        raise ValueError(
            f"model.tensor_model_parallel_size={config.tensor_model_parallel_size} and "
            f"model.pipeline_model_parallel_size={config.pipeline_model_parallel_size} must match "
            f"the initialised process groups (TP={tp}, PP={pp})"
        )
    if config.num_layers % pp:
        raise ValueError(f"model.num_layers={config.num_layers} must divide by PP={pp}")
    return RexBertModel(
        config,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        transformer_config=to_transformer_config(config),
        pp_rank=parallel_state.get_pipeline_model_parallel_rank(),
    )
