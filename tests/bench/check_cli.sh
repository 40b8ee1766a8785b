#!/usr/bin/env bash
# The check before timing, end to end: kvbench bench with a correct implementation and the
# planted wrong ones (loaded as a plugin) exits 4, names each planted one as not timed,
# writes the correct one's benchmarks and the verdicts in the JSON context; --no-check times
# them all and the context says the check was skipped.
# Usage: check_cli.sh KVBENCH PLANTED_PLUGIN.so
set -euo pipefail
kvbench=$1
plugin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--plugin "$plugin" --tokens 16 --positions 16,600 --long-impls none --min-time 0.001
        --bandwidth-mib 8 --budget 5)
rc=0
"$kvbench" bench "${common[@]}" --impl cpu_cached,planted_fp16_as_fp32,planted_offset,planted_read_past \
  --out "$tmp/a.json" >"$tmp/a.out" 2>"$tmp/a.err" || rc=$?
fail() { echo "check_cli: $*"; cat "$tmp/a.err"; exit 1; }
[ "$rc" = 4 ] || fail "expected exit 4, got $rc"
for p in planted_fp16_as_fp32 planted_offset planted_read_past; do
  grep -q "^check failed: $p (threads 1): .* -- not timed$" "$tmp/a.err" || fail "no failure line for $p"
  ! grep -q "generate/$p/" "$tmp/a.json" || fail "$p was timed"
done
grep -q '^check cpu_cached (threads 1): pass at t = 600, 601' "$tmp/a.err" || fail "cpu_cached did not pass"
grep -q 'generate/cpu_cached/T:16' "$tmp/a.json" || fail "cpu_cached was not timed"
grep -q '"check": "FAILED (not timed): planted_fp16_as_fp32' "$tmp/a.json" || fail "context lacks the verdicts"

"$kvbench" bench "${common[@]}" --impl planted_fp16_as_fp32 --no-check --out "$tmp/b.json" \
  >"$tmp/b.out" 2>"$tmp/b.err" || fail "--no-check run failed"
grep -q '"check": "skipped (--no-check)"' "$tmp/b.json" || fail "--no-check not recorded"
grep -q 'generate/planted_fp16_as_fp32/T:16' "$tmp/b.json" || fail "--no-check did not time it"

"$kvbench" report "$tmp/a.json" --out "$tmp/report" >/dev/null
grep -q 'planted_offset (threads 1): FAIL' "$tmp/report/summary.md" || fail "summary.md lacks the check"
grep -q 'cpu_cached (threads 1): pass' "$tmp/report/report.html" || fail "report.html lacks the check"
echo "check cli: ok"
