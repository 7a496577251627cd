"""Extensions to megatron-core: CPU shims and the optional-GPU-library guard (compat)."""
