"""Pretraining data: documents from Megatron .bin/.idx, packing, blends, sampling, masking."""
