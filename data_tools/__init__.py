"""Corpus tools: curation, cleaning, span mining and tokenisation to Megatron .bin/.idx.

- `data_tools.preprocess`: jsonl/jsonl.gz/parquet/csv → megatron indexed datasets (token ids
  without special tokens, optional token-span side files), parallel, restartable; `merge`.

Arrives with issues #4 (tokenize/preprocess) and #7 (curation)."""
