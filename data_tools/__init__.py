"""Corpus tools: curation, cleaning, span mining and tokenisation to Megatron .bin/.idx.

Arrives with issues #4 (tokenize/preprocess) and #7 (curation)."""
