"""MinHash near-deduplication across every shard of a run (Broder 1997; LSH banding as in
Leskovec et al., "Mining of Massive Datasets", ch. 3), with datasketch's ``MinHash`` and
``MinHashLSH``.

A document's set is its word 5-grams (``shingle="word"``, ``shingle_size=5``: lower-cased
``\\w+`` words, so case and punctuation edits do not count) or character n-grams of the same
normalised text (``shingle="char"``); a document shorter than n words is one shingle, and
one with no words at all is not indexed (always kept).

Keep rule, independent of shard order and sharding: documents whose estimated Jaccard
similarity is ``>= threshold`` are linked, links are closed transitively (union-find), and of
each group the document whose id is smallest *as a string* survives (``"10" < "9"``); the others
are dropped as ``near_duplicate``. Ids are read as ``str(doc[id_field])``.

    pass 1  index:  signature per document → signature store + LSH index; documents with an
                    identical signature (estimated Jaccard 1) are linked at once, so exact
                    duplicates never reach LSH and cannot swell one bucket
            decide: every LSH bucket with 2+ members gives candidate pairs, verified with the
                    estimated Jaccard; groups → ``dedup.duplicates.jsonl`` (dropped id → survivor)
    pass 2  apply:  ``shards.run_stage("dedup", ...)`` drops the listed ids

Storage: ``memory`` (one process) or ``redis`` (datasketch's Redis storage plus our signature
hash, under ``<redis_basename>:*``), which lets several processes share one index. A multi-node
run (every node sees the same Redis and a shared out dir):

    1. once:           python -m data_tools.curate dedup --phase clear  --set storage=redis ...
    2. every node:     python -m data_tools.curate dedup --phase index  MY_SHARDS... -o OUT --set storage=redis ...
    3. once, after 2:  python -m data_tools.curate dedup --phase decide -o OUT --set storage=redis ...
    4. every node:     python -m data_tools.curate dedup --phase apply  MY_SHARDS... -o OUT

(``--phase all``, the default, does 1–4 in one process.) A document id must be unique across
the run; a repeated id is reported, and only its first occurrence (shards in name order) is kept
— per process: in a multi-node run each node keeps its own first occurrence.

Memory (bench/curate_clean_dedup.py, 2-core VM): ``memory`` storage holds ~5 KB per document,
mostly datasketch's per-bucket sets (80k documents: +420 MiB); with ``redis`` the client stays
flat and redis-server holds the index.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from .shards import (AtomicJsonlWriter, BadLine, CurationError, Document, Step, done_marker, output_shards,
                     read_documents, run_stage, shard_name, write_json_atomic)

DUPLICATES_FILE = "dedup.duplicates.jsonl"
INDEX_STATS_FILE = "dedup.index.json"
_WORDS = re.compile(r"\w+")
_BASENAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass
class DedupConfig:
    shingle: str = "word"  # "word" n-grams or "char" n-grams of the normalised text
    shingle_size: int = 5
    num_perm: int = 128
    # Pairs with estimated Jaccard >= threshold are near-duplicates.
    threshold: float = 0.8
    # The Jaccard the LSH bands are tuned for (datasketch's optimal b, r): below threshold,
    # so pairs just above it become candidates (banding tuned at 0.8 itself finds a pair at
    # 0.85 only ~69% of the time; at 0.7, ~97%: 1 - (1 - J^r)^b). Candidates are then
    # verified at threshold.
    lsh_threshold: float = 0.7
    seed: int = 1
    storage: str = "memory"  # "memory" | "redis"
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_db: int = 0
    redis_basename: str = "rexbert_dedup"  # keys live under "<basename>:"; one run per basename at a time
    batch_size: int = 5000  # documents per Redis pipeline (a flush reconnects every band's buffer)
    text_field: str = "text"
    id_field: str = "id"

    def __post_init__(self) -> None:
        if self.shingle not in ("word", "char"):
            raise ValueError(f"dedup.shingle={self.shingle!r} must be word or char")
        if self.shingle_size < 1:
            raise ValueError(f"dedup.shingle_size={self.shingle_size} must be >= 1")
        if self.num_perm < 16:
            raise ValueError(f"dedup.num_perm={self.num_perm} must be >= 16")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"dedup.threshold={self.threshold} must be in (0, 1)")
        if not 0.0 < self.lsh_threshold <= self.threshold:
            raise ValueError(f"dedup.lsh_threshold={self.lsh_threshold} must be in (0, threshold={self.threshold}]")
        if self.storage not in ("memory", "redis"):
            raise ValueError(f"dedup.storage={self.storage!r} must be memory or redis")
        if not _BASENAME.fullmatch(self.redis_basename):
            raise ValueError(f"dedup.redis_basename={self.redis_basename!r}: use letters, digits, _ . -")
        if self.batch_size < 1:
            raise ValueError(f"dedup.batch_size={self.batch_size} must be >= 1")


# --- signatures ---------------------------------------------------------------------------------

def shingles(text: str, config: DedupConfig) -> set[bytes]:
    """The document's set: word or character n-grams of its lower-cased words."""
    words = _WORDS.findall(text.lower())
    n = config.shingle_size
    if config.shingle == "char":
        norm = " ".join(words)
        return {norm[i:i + n].encode() for i in range(max(1, len(norm) - n + 1))} if norm else set()
    if len(words) <= n:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """The true Jaccard similarity of two shingle sets (for tests and reports)."""
    return len(a & b) / len(a | b) if a or b else 1.0


class Signer:
    """text → MinHash (one permutation set, copied per document)."""

    def __init__(self, config: DedupConfig) -> None:
        from datasketch import MinHash

        self.config = config
        self._template = MinHash(num_perm=config.num_perm, seed=config.seed)

    def __call__(self, text: str):
        grams = shingles(text, self.config)
        if not grams:
            return None
        m = self._template.copy()
        m.update_batch(list(grams))
        return m


def estimated_jaccard(a: bytes, b: bytes) -> float:
    x, y = np.frombuffer(a, dtype=np.uint32), np.frombuffer(b, dtype=np.uint32)
    return float(np.count_nonzero(x == y)) / len(x)


# --- the index: LSH + signatures + exact-duplicate links, in memory or in Redis -----------------

class DedupIndex:
    def __init__(self, config: DedupConfig) -> None:
        from datasketch import MinHashLSH

        self.config = config
        self.redis = None
        storage: dict[str, Any] = {"type": "dict"}
        if config.storage == "redis":
            self.redis = connect_redis(config)
            self.prefix = f"{config.redis_basename}:"
            # Buffered inserts without MULTI/EXEC: each reply is parsed once, not twice.
            storage = {"type": "redis", "basename": self.prefix.encode(),
                       "redis": {"host": config.redis_host, "port": config.redis_port, "db": config.redis_db},
                       "redis_buffer": {"transaction": False}}
        self.lsh = MinHashLSH(threshold=config.lsh_threshold, num_perm=config.num_perm, storage_config=storage,
                              prepickle=False)
        self._signatures: dict[bytes, bytes] = {}
        self._exact: dict[bytes, bytes] = {}
        self._links: list[tuple[bytes, bytes]] = []

    def add(self, batch: list[tuple[bytes, Any]]) -> list[bytes]:
        """Index (id, MinHash) pairs; returns the ids already indexed (repeated ids)."""
        sigs = [(key, m.hashvalues.astype(np.uint32).tobytes()) for key, m in batch]
        digests = [hashlib.sha1(sig).digest() for _, sig in sigs]
        if self.redis is None:
            new_id = [self._signatures.setdefault(key, sig) is sig for key, sig in sigs]
            first = [self._exact.setdefault(d, key) if ok else None for (key, _), d, ok in zip(sigs, digests, new_id)]
        else:
            pipe = self.redis.pipeline(transaction=False)
            for (key, sig), d in zip(sigs, digests):
                pipe.hsetnx(self.prefix + "signatures", key, sig)
            new_id = [bool(r) for r in pipe.execute()]
            for (key, _), d, ok in zip(sigs, digests, new_id):
                if ok:
                    pipe.hsetnx(self.prefix + "exact", d, key)
                    pipe.hget(self.prefix + "exact", d)
            replies = iter(pipe.execute())
            first = []
            for ok in new_id:
                if ok:
                    next(replies)  # hsetnx's 0/1; hget's answer is the first id with this signature
                first.append(next(replies) if ok else None)
        repeated, to_lsh, links = [], [], []
        for (key, m), ok, rep in zip(batch, new_id, first):
            if not ok:
                repeated.append(key)
            elif rep != key:
                links.append((key, rep))
            else:
                to_lsh.append((key, m))
        self._store_links(links)
        if self.redis is None:
            for key, m in to_lsh:
                self.lsh.insert(key, m, check_duplication=False)
        else:
            with self.lsh.insertion_session(buffer_size=self.config.batch_size * 20) as session:
                for key, m in to_lsh:
                    session.insert(key, m, check_duplication=False)
        return repeated

    def _store_links(self, links: list[tuple[bytes, bytes]]) -> None:
        if self.redis is None:
            self._links += links
        elif links:
            self.redis.rpush(self.prefix + "links", *[a + b"\x00" + b for a, b in links])

    def links(self) -> list[tuple[bytes, bytes]]:
        if self.redis is None:
            return list(self._links)
        return [tuple(x.split(b"\x00", 1)) for x in self.redis.lrange(self.prefix + "links", 0, -1)]

    def buckets(self) -> Iterator[list[bytes]]:
        """Members of every LSH bucket holding two or more documents."""
        for table in self.lsh.hashtables:
            keys = list(table.keys())
            for start in range(0, len(keys), 10_000):
                for members in table.getmany(*keys[start:start + 10_000]):
                    if len(members) > 1:
                        yield sorted(members)

    def signatures(self, keys: Iterable[bytes]) -> dict[bytes, bytes]:
        keys = list(keys)
        if self.redis is None:
            return {k: self._signatures[k] for k in keys}
        found: dict[bytes, bytes] = {}
        for start in range(0, len(keys), 10_000):
            chunk = keys[start:start + 10_000]
            found.update(zip(chunk, self.redis.hmget(self.prefix + "signatures", chunk)))
        return found


def connect_redis(config: DedupConfig):
    import redis

    client = redis.Redis(host=config.redis_host, port=config.redis_port, db=config.redis_db)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        raise CurationError(f"dedup.storage=redis: cannot reach Redis at {config.redis_host}:{config.redis_port} "
                            f"({e}); start redis-server or use dedup.storage=memory") from None
    return client


def clear_redis(config: DedupConfig) -> int:
    """Delete every key of this run's index (``<basename>:*``); returns how many."""
    client = connect_redis(config)
    keys = list(client.scan_iter(match=f"{config.redis_basename}:*", count=10_000))
    for start in range(0, len(keys), 10_000):
        client.unlink(*keys[start:start + 10_000])
    return len(keys)


# --- pass 1 -------------------------------------------------------------------------------------

def build_index(inputs: Sequence[Path], index: DedupIndex, config: DedupConfig) -> dict[str, Any]:
    """Sign and index every document of ``inputs`` (in shard-name order)."""
    signer = Signer(config)
    bad: list[BadLine] = []
    stats = {"documents": 0, "no_shingles": 0, "repeated_ids": []}
    batch: list[tuple[bytes, Any]] = []

    def flush() -> None:
        stats["repeated_ids"] += [k.decode() for k in index.add(batch)]
        batch.clear()

    for path in sorted(inputs, key=shard_name):
        for doc in read_documents(path, config.text_field, config.id_field, bad):
            stats["documents"] += 1
            m = signer(doc[config.text_field])
            if m is None:
                stats["no_shingles"] += 1
                continue
            batch.append((str(doc[config.id_field]).encode(), m))
            if len(batch) >= config.batch_size:
                flush()
    flush()
    stats["bad_lines"] = len(bad)
    if stats["repeated_ids"]:
        print(f"[dedup] {len(stats['repeated_ids'])} repeated document id(s), e.g. {stats['repeated_ids'][0]!r}: "
              "only the first occurrence is kept", file=sys.stderr)
    return stats


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[bytes, bytes] = {}

    def find(self, x: bytes) -> bytes:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: bytes, b: bytes) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller id becomes the root: it is the survivor
            # UTF-8 bytes sort like their strings (code point order), so no decode is needed.
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def decide(index: DedupIndex, config: DedupConfig) -> tuple[dict[str, str], dict[str, int]]:
    """(dropped id → surviving id, counts). Candidate pairs from shared LSH buckets are
    linked when their estimated Jaccard is >= threshold."""
    groups = _UnionFind()
    links = index.links()
    for a, b in links:
        groups.union(a, b)
    buckets = list(index.buckets())
    signatures = index.signatures({k for members in buckets for k in members})
    checked: set[tuple[bytes, bytes]] = set()
    candidate_pairs = verified = 0
    for members in buckets:
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if (a, b) in checked or groups.find(a) == groups.find(b):
                    continue
                checked.add((a, b))
                candidate_pairs += 1
                if estimated_jaccard(signatures[a], signatures[b]) >= config.threshold:
                    verified += 1
                    groups.union(a, b)
    dropped = {}
    for key in list(groups.parent):
        root = groups.find(key)
        if root != key:
            dropped[key.decode()] = root.decode()
    counts = {"exact_links": len(links), "candidate_pairs": candidate_pairs, "verified_pairs": verified,
              "groups": len({v for v in dropped.values()}), "dropped": len(dropped)}
    return dropped, counts


def write_duplicates(path: Path, dropped: dict[str, str]) -> None:
    writer = AtomicJsonlWriter(path)
    for key in sorted(dropped):
        writer.write({"id": key, "survivor": dropped[key]})
    writer.commit()


def read_duplicates(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CurationError(f"{path}: no duplicates file; run the decide phase first")
    dropped = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                dropped[row["id"]] = row["survivor"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise CurationError(f"{path}:{number}: not a {{\"id\", \"survivor\"}} line") from None
    return dropped


# --- pass 2 -------------------------------------------------------------------------------------

def make_dedup_step(dropped: dict[str, str], config: DedupConfig, repeated_ids: Iterable[str] = (),
                    already_kept: Iterable[str] = ()) -> Step:
    """Drops listed ids (``near_duplicate``) and the second and later occurrences of a
    repeated id (``repeated_id``; ``already_kept``: those emitted by shards done earlier)."""
    repeated, emitted = set(repeated_ids), set(already_kept)

    def step(doc: Document) -> "Document | str":
        key = str(doc[config.id_field])
        if key in dropped:
            return "near_duplicate"
        if key in repeated:
            if key in emitted:
                return "repeated_id"
            emitted.add(key)
        return doc

    return step


def apply(inputs: Sequence[Path], out_dir: Path, dropped: dict[str, str], config: DedupConfig,
          repeated_ids: Sequence[str] = (), progress: bool = False) -> list[dict[str, Any]]:
    inputs = sorted(inputs, key=shard_name)
    already = []
    if repeated_ids:  # a resumed run: the repeated ids that finished shards already kept
        wanted = set(repeated_ids)
        done = {shard_name(p) for p in inputs if done_marker(out_dir, shard_name(p)).is_file()}
        for shard in output_shards(out_dir) if out_dir.is_dir() else []:
            if shard.name in done:
                already += [str(d[config.id_field]) for d in read_documents(shard, config.text_field, config.id_field)
                            if str(d[config.id_field]) in wanted]
    step = make_dedup_step(dropped, config, repeated_ids, already)
    return run_stage("dedup", inputs, out_dir, step, text_field=config.text_field, id_field=config.id_field,
                     progress=progress)


# --- one process, all phases --------------------------------------------------------------------

def fingerprint(inputs: Sequence[Path], config: DedupConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for p in sorted(inputs, key=shard_name):
        st = p.stat()
        h.update(f"{p.name}\x00{st.st_size}\x00{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def dedup(inputs: list[Path], out_dir: Path, config: DedupConfig, progress: bool = False) -> dict[str, Any]:
    """Both passes in this process. Pass 1's result is kept in ``out_dir`` under a fingerprint
    of the inputs and config, so a rerun after a crash in pass 2 resumes there. Returns (and
    writes to ``dedup.index.json``) the index counts plus pass 2's totals."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats_path, dup_path = out_dir / INDEX_STATS_FILE, out_dir / DUPLICATES_FILE
    key = fingerprint(inputs, config)
    previous = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    if previous.get("fingerprint") == key and dup_path.is_file():
        index_stats, dropped = previous, read_duplicates(dup_path)
    else:
        if config.storage == "redis":
            clear_redis(config)
        index = DedupIndex(config)
        index_stats = build_index(inputs, index, config)
        dropped, counts = decide(index, config)
        if config.storage == "redis":
            clear_redis(config)
        index_stats.update(counts, fingerprint=key, config=asdict(config))
        write_duplicates(dup_path, dropped)
        write_json_atomic(stats_path, index_stats)
    shard_stats = apply(inputs, out_dir, dropped, config, index_stats["repeated_ids"], progress)
    kept = sum(s["kept"] for s in shard_stats)
    return {**index_stats, "kept": kept, "shards": len(shard_stats)}


def main(argv: Optional[list[str]] = None) -> int:
    """``dedup [--phase all|clear|index|decide|apply] SHARDS... -o OUT_DIR [--set KEY=VALUE ...]``."""
    import argparse

    from .clean.config import apply_overrides
    from .shards import expand_inputs

    parser = argparse.ArgumentParser(prog="python -m data_tools.curate dedup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="jsonl shards, directories or globs (not for clear/decide)")
    parser.add_argument("-o", "--out-dir", type=Path, help="required except for --phase clear")
    parser.add_argument("--phase", choices=["all", "clear", "index", "decide", "apply"], default="all")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="DedupConfig overrides, e.g. threshold=0.85 storage=redis redis_host=node1")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = apply_overrides(DedupConfig(), args.overrides, prefix="dedup.")
    except ValueError as e:
        print(f"[dedup] error: {e}", file=sys.stderr)
        return 2
    try:
        summary = _run_phase(args, config, expand_inputs(args.inputs) if args.inputs else [])
    except CurationError as e:
        print(f"[dedup] error: {e}", file=sys.stderr)
        return 2
    print(f"[dedup] {args.phase}: {json.dumps(summary, sort_keys=True)}", file=sys.stderr)
    return 0


def _run_phase(args, config: DedupConfig, inputs: list[Path]) -> dict[str, Any]:
    if args.phase == "clear":
        if config.storage != "redis":
            raise CurationError("--phase clear is for dedup.storage=redis")
        return {"deleted_keys": clear_redis(config)}
    if args.out_dir is None:
        raise CurationError(f"--phase {args.phase} needs -o/--out-dir")
    if args.phase in ("all", "index", "apply") and not inputs:
        raise CurationError(f"--phase {args.phase} needs input shards")
    if args.phase in ("index", "decide") and config.storage != "redis":
        raise CurationError(f"--phase {args.phase} shares an index between processes: use dedup.storage=redis "
                            "(or --phase all)")
    if args.phase == "all":
        summary = dedup(inputs, args.out_dir, config, progress=not args.no_progress)
        return {k: v for k, v in summary.items() if k not in ("config", "repeated_ids", "fingerprint")}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.phase == "index":
        stats = build_index(inputs, DedupIndex(config), config)
        name = f"dedup.index.{hashlib.sha1(' '.join(sorted(p.name for p in inputs)).encode()).hexdigest()[:12]}.json"
        write_json_atomic(args.out_dir / name, stats)
        return {k: v for k, v in stats.items() if k != "repeated_ids"}
    if args.phase == "decide":
        dropped, counts = decide(DedupIndex(config), config)
        write_duplicates(args.out_dir / DUPLICATES_FILE, dropped)
        write_json_atomic(args.out_dir / INDEX_STATS_FILE, {**counts, "config": asdict(config)})
        return counts
    repeated = []
    for part in sorted(args.out_dir.glob("dedup.index.*.json")):
        repeated += json.loads(part.read_text()).get("repeated_ids", [])
    stats = apply(inputs, args.out_dir, read_duplicates(args.out_dir / DUPLICATES_FILE), config, repeated,
                  progress=not args.no_progress)
    return {"kept": sum(s["kept"] for s in stats), "documents_in": sum(s["documents_in"] for s in stats)}
