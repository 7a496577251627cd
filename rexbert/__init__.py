"""rexbert: raw web text to domain-specialized ModernBERT-style encoders on megatron-core."""

__version__ = "0.1.0"
