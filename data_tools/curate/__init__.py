"""Curation: from a domain-labelled web corpus to a validated domain corpus.

Stages (each a CLI: ``python -m data_tools.curate <stage> --help``), each streaming jsonl
shards in and out with atomic writes, done markers (a rerun resumes) and per-shard stats:
select → sample → label → audit → distill → filter → clean → dedup → decontaminate → mine →
report. ``shards.py`` holds what every stage shares.
"""
