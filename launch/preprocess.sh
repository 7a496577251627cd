#!/usr/bin/env bash
# Preprocess a sharded corpus on Slurm: one array task per input shard, then a merge job
# (afterok on the whole array) that concatenates the shards, in the order given, into one
# Megatron dataset OUT_DIR/NAME (.bin/.idx, plus NAME_spans with --spans-field).
#
#   launch/preprocess.sh -o OUT_DIR -n NAME SHARD [SHARD ...] [-- PREPROCESS_OPTION ...]
#   launch/preprocess.sh -o data/ecom -n products raw/products-*.jsonl.gz -- --fields title text --spans-field spans
#
# Options after `--` go to every `python -m data_tools.preprocess` call; shard i is written to
# OUT_DIR/shards/NAME/<i> and kept for inspection (rejects, stats). Environment:
# REXBERT_PYTHON (default python), REXBERT_SBATCH_ARGS (extra sbatch options for both jobs),
# SBATCH_PARTITION / SBATCH_ACCOUNT / ... as for every sbatch. Prints "<array id> <merge id>".
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '5,6p' "$0" >&2; exit 2; }
out="" name=""
while getopts "o:n:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    n) name=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
shards=() options=()
while (($#)); do
  if [[ $1 == -- ]]; then shift; options=("$@"); break; fi
  shards+=("$1"); shift
done
[[ -n $out && -n $name && ${#shards[@]} -gt 0 ]] || usage

work=$out/shards/$name
mkdir -p "$work"
list=$work/inputs.txt
: >"$list.tmp"
for shard in "${shards[@]}"; do
  [[ -f $shard ]] || { echo "launch/preprocess.sh: no such shard: $shard" >&2; exit 2; }
  realpath "$shard" >>"$list.tmp"
done
mv "$list.tmp" "$list"
printf '%s\n' "${options[@]+"${options[@]}"}" >"$work/options.txt"

read -r -a sbatch_args <<<"${REXBERT_SBATCH_ARGS:-}"
array=$(sbatch --parsable "${sbatch_args[@]}" --array="0-$((${#shards[@]} - 1))" \
  launch/preprocess_shard.sh "$work")
array=${array%%;*}
merge=$(sbatch --parsable "${sbatch_args[@]}" --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  launch/preprocess_merge.sh "$work" "$out/$name")
merge=${merge%%;*}
echo "$array $merge"
