#!/usr/bin/env bash
# `kvbench verify` end to end: each property line ends with the coverage it reached, a
# "coverage:" line precedes the closing "N passed, M failed" line (still the last line),
# --json FILE holds the same for machines (written whole, no temporary left behind), and
# an unwritable --json path is an error (exit 2) before anything runs.
# Usage: verify_cli.sh KVBENCH
set -euo pipefail
kvbench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
die() { echo "verify_cli: $*" >&2; exit 1; }

# 1. A passing run: the suffix, the coverage line, the closing line, the JSON.
echo "not json: must be replaced whole" >"$tmp/v.json"
"$kvbench" verify --impl cpu_cached --property decode_matches_reference --cases 5 --seed 1 \
  --json "$tmp/v.json" >"$tmp/v.out" 2>"$tmp/v.err" || { cat "$tmp/v.out" "$tmp/v.err"; die "verify failed"; }
cat "$tmp/v.out"
line_re='^PASS +decode_matches_reference +cpu_cached +5 cases +[0-9.]+ s  \[T≤[0-9]+ pos≤[0-9]+( prefill≤[0-9]+)? batch≤[0-9]+ L[0-9,-]+ H/Hkv [0-9,-]+ d≤[0-9]+ fp32 threads [0-9,-]+; ops: create [a-z_+ ]*decode[a-z_+ ]*\]$'
[ "$(wc -l <"$tmp/v.out")" -eq 3 ] || die "expected 3 lines (property, coverage, closing)"
sed -n 1p "$tmp/v.out" | grep -Eq "$line_re" || die "property line lacks the coverage suffix"
sed -n 2p "$tmp/v.out" | grep -Eq '^coverage: T≤[0-9]+ \(decode position ≤[0-9]+, prefill chunk ≤[0-9]+\), batch≤[0-9]+, L [0-9,-]+, .*fp32, threads [0-9,-]+; ops: create [0-9.k]+, .*rejected 0$' ||
  die "no coverage line before the closing line"
[ "$(tail -1 "$tmp/v.out")" = "1 passed, 0 failed" ] || die "the closing line is not last or changed"
ls -A "$tmp" | grep -q "\.tmp\." && die "a temporary file was left behind"
line_T=$(sed -n 1p "$tmp/v.out" | sed -E 's/.*\[T≤([0-9]+) .*/\1/')
"$python" - "$tmp/v.json" "$line_T" <<'EOF' || die "JSON check failed"
import json, sys
doc = json.load(open(sys.argv[1]))
line_T = int(sys.argv[2])
assert doc["command"] == "verify" and doc["seed"] == 1 and doc["cases_per_pair"] == 5, doc
[r] = doc["results"]
assert (r["property"], r["implementation"], r["verdict"], r["cases"]) == \
    ("decode_matches_reference", "cpu_cached", "passed", 5), r
assert isinstance(r["seconds"], float) and r["seconds"] > 0, r
c = r["coverage"]
for key in ("max_tokens", "max_decode_position", "max_prefill_chunk", "max_decode_batch",
            "layers", "group_sizes", "max_head_dim", "max_d_model", "dtypes", "threads", "ops"):
    assert key in c, key
assert c["max_tokens"] == line_T, (c["max_tokens"], line_T)  # text and JSON agree
assert c["max_decode_position"] < c["max_tokens"] and c["max_decode_batch"] >= 1, c
assert c["dtypes"] == ["fp32"] and set(c["layers"]) <= {1, 2, 3}, c
ops = c["ops"]
assert set(ops) == {"create", "prefill", "prefill_nonempty", "decode", "batched_decode", "fork",
                    "truncate", "drop", "read_kv", "rejected"}, ops
assert ops["create"] >= 5 and ops["decode"] >= 5 and ops["rejected"] == 0, ops
t = doc["totals"]
assert (t["passed"], t["failed"], t["skipped"], t["cases"]) == (1, 0, 0, 5), t
assert t["coverage"] == c, "one pair: the totals are that pair's coverage"
EOF

# 2. A skipped pair: its reason, no coverage.
"$kvbench" verify --impl naive --property cache_matches_reference --json "$tmp/s.json" \
  >"$tmp/s.out" 2>/dev/null || die "a skip-only run failed"
[ "$(tail -1 "$tmp/s.out")" = "0 passed, 0 failed, 1 skipped" ] || die "skip closing line"
"$python" -c '
import json, sys
[r] = json.load(open(sys.argv[1]))["results"]
assert r["verdict"] == "skipped" and "not applicable" in r["reason"] and r["coverage"] is None, r
' "$tmp/s.json" || die "skipped JSON check failed"

# 3. Unwritable paths: exit 2 with the named error, before the run starts (no "verify:"
#    header on stderr, nothing on stdout).
for bad in /nonexistent/dir/x.json "$tmp"; do
  rc=0
  "$kvbench" verify --impl cpu_cached --property decode_matches_reference --cases 5 \
    --json "$bad" >"$tmp/e.out" 2>"$tmp/e.err" || rc=$?
  [ "$rc" -eq 2 ] || die "--json $bad: exit $rc, expected 2"
  grep -q "^kvbench: error: --json: cannot write '$bad'" "$tmp/e.err" || { cat "$tmp/e.err"; die "--json $bad: no named error"; }
  grep -q '^verify:' "$tmp/e.err" && die "--json $bad: checked only after the run started"
  [ ! -s "$tmp/e.out" ] || die "--json $bad: something ran"
done
echo "verify cli: ok"
