#!/usr/bin/env bash
# Errors a user can act on, through the kvbench binary (README: "Errors go to stderr as
# `kvbench: error: ...` naming the bad argument and its value, with exit status 2"): each
# bad input below must exit 2 with one such line naming the argument, file or JSON field,
# without "internal error", without echoing kilobytes of input, and without writing
# anything (no output file, no temporary file left behind).
# Usage: cli_errors.sh KVBENCH SOURCE_DIR SECTION
#   SECTION: parse | memory | report | gate | preflight | atomic
set -uo pipefail
kvbench=$1
src=$2
section=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
die() { echo "cli_errors: $*" >&2; failures=$((failures + 1)); }

# expect_error EXPECTED ARGS...: kvbench ARGS exits 2, its stderr's first line is
# "kvbench: error: " followed by a message containing EXPECTED (a fixed string), stdout is
# empty, and the message is short (no echoed input).
expect_error() {
  local expected=$1
  shift
  local rc=0
  "$kvbench" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
  local first
  first=$(head -n 1 "$tmp/err")
  if [ "$rc" -ne 2 ]; then
    die "kvbench $*: exit $rc, expected 2"; cat "$tmp/err" >&2; return
  fi
  case "$first" in
    "kvbench: error: "*) ;;
    *) die "kvbench $*: first stderr line lacks 'kvbench: error: ': $first"; return ;;
  esac
  grep -qF -e "$expected" <<<"$first" || die "kvbench $*: message lacks '$expected': $first"
  grep -q "internal error" "$tmp/err" && die "kvbench $*: an internal error: $first"
  [ "${#first}" -le 400 ] || die "kvbench $*: message of ${#first} characters (input echoed?)"
  [ -s "$tmp/out" ] && die "kvbench $*: wrote to stdout: $(head -c 200 "$tmp/out")"
  echo "ok: kvbench $* -> $first"
}

# expect_quick_error EXPECTED ARGS...: as expect_error, and the error is the only line on
# stderr: the command stopped before any work (bench and gate print progress as they go).
expect_quick_error() {
  expect_error "$@"
  local lines
  lines=$(wc -l <"$tmp/err")
  [ "$lines" -le 2 ] || die "kvbench ${*:2}: $lines lines on stderr: work started before the error"
}

# no_temporaries DIR: nothing named like an atomic write's temporary file under DIR.
no_temporaries() {
  local left
  left=$(find "$1" -name '.*.tmp.*' -o -name '*.tmp' | head -5)
  [ -z "$left" ] || die "temporary files left behind: $left"
}

mini_bench() {  # a small valid bench output
  cat <<'EOF'
{"context": {}, "benchmarks": [
 {"name": "generate/naive/T:16/manual_time", "real_time": 1.0, "cpu_time": 1.0, "time_unit": "ms"},
 {"name": "generate/naive/T:32/manual_time", "real_time": 4.0, "cpu_time": 4.0, "time_unit": "ms"},
 {"name": "generate/cpu_cached/T:16/manual_time", "real_time": 0.5, "cpu_time": 0.5, "time_unit": "ms"},
 {"name": "generate/cpu_cached/T:32/manual_time", "real_time": 1.0, "cpu_time": 1.0, "time_unit": "ms"}]}
EOF
}

case "$section" in
parse)
  # CLI11's own errors (105-109, its range text "0.000000 to 1.79e308") become kvbench errors.
  expect_error "--cases: 0 is not in 1..1000000" verify --cases 0
  expect_error "--cases: 'abc' is not a whole number (expected 1..1000000)" verify --cases abc
  expect_error "--cases: 99999999999999999999 is not in 1..1000000" verify --cases 99999999999999999999
  expect_error "--seed: -1 is not in 0..18446744073709551615" verify --seed -1
  expect_error "--max-tokens: 10 is not in 64..1048576" verify --max-tokens 10
  expect_error "--seconds: 0 is not > 0" fuzz --seconds 0
  expect_error "--seconds: nan is not a finite number" fuzz --seconds nan
  expect_error "--per-round: 0 is not in 1..1000000" fuzz --per-round 0
  expect_error "--seed: 18446744073709551616 is not in 0..18446744073709551615" fuzz --seed 18446744073709551616
  expect_error "--repetitions: 'x' is not a whole number (expected 1..1000)" bench --repetitions x
  expect_error "--repetitions: -3 is not in 1..1000" bench --repetitions -3
  expect_error "--min-time: -1 is not > 0" bench --min-time -1
  expect_error "--budget: 0 is not > 0" bench --budget 0
  expect_error "--prepare-budget: 'soon' is not a number (expected > 0)" bench --prepare-budget soon
  expect_error "--bandwidth-mib: 0 is not in 1..1048576" bench --bandwidth-mib 0
  expect_error "--block-size: 0 is not in 1..1048576" bench --block-size 0
  expect_error "--block-size: -4 is not in 1..1048576" bench --block-size -4
  expect_error "--kv-budget-bytes: -1 is not >= 0" bench --kv-budget-bytes -1
  expect_error "--serving: 'bogus' is not beam, prefix or none" bench --serving bogus --out "$tmp/never.json"
  expect_error "--serving: none leaves out both and stands alone, got 'none,beam'" \
    bench --serving none,beam --out "$tmp/never.json"
  expect_error "--kv-budget-bytes 100 cannot hold one block of 32768 bytes (--block-size 16 x 2048 bytes per token of shape 'default')" \
    bench --impl paged --kv-budget-bytes 100 --out "$tmp/never.json"
  expect_error "--jobs: 0 is not in 1..1024" gate --jobs 0
  expect_error "--time-repetitions: -1 is not in 0..1000" gate --time-repetitions -1
  expect_error "--time-min-effect: -0.5 is not >= 0" gate --time-min-effect -0.5
  expect_error "--tokens: -1 is not >= 0" memory --d-model 8 --heads 2 --tokens -1
  expect_error "The following argument was not expected: --bogus" verify --bogus
  expect_error "The following argument was not expected: --x" list --x
  expect_error "FILE is required" report
  expect_error "unknown command 'nosuch' (commands: list, verify, fuzz, bench, report, gate, memory)" nosuch
  expect_error "a command is required: list, verify" ;;

memory)
  # Overflow is an error naming the argument whose product passes 64 bits, not a wrapped
  # number; nonsense shapes are named errors.
  expect_error "--tokens 4294967296: the cache size 2 x kv_heads x head_dim x tokens x bytes x layers x batch overflows 64 bits" \
    memory --d-model 4294967296 --heads 1 --tokens 4294967296 --dtype fp16
  expect_error "--layers 100000000000: the cache size" \
    memory --d-model 4096 --heads 32 --tokens 65536 --layers 100000000000
  expect_error "--batch 1000000000000: the cache size" \
    memory --d-model 4096 --heads 32 --tokens 2048 --layers 80 --batch 1000000000000
  expect_error "--d-model: 99999999999999999999 is too large" memory --d-model 99999999999999999999 --heads 1 --tokens 1
  expect_error "--kv-heads: 0 is not >= 1" memory --d-model 4096 --heads 32 --kv-heads 0 --tokens 2048
  expect_error "--heads: 0 is not >= 1" memory --d-model 4096 --heads 0 --tokens 2048
  expect_error "--kv-heads 5 does not divide --heads 32" memory --d-model 4096 --heads 32 --kv-heads 5 --tokens 2048
  expect_error "--kv-heads 64 is more than --heads 32" memory --d-model 4096 --heads 32 --kv-heads 64 --tokens 2048
  expect_error "--d-model 4096 is not a multiple of --heads 33" memory --d-model 4096 --heads 33 --tokens 2048
  expect_error "--dtype: unknown dtype 'int4'" memory --d-model 4096 --heads 32 --tokens 2048 --dtype int4
  expect_error "--block-size: 0 is not >= 1" memory --d-model 4096 --heads 32 --tokens 2048 --block-size 0
  expect_error "--block-size: -16 is not >= 1" memory --d-model 4096 --heads 32 --tokens 2048 --block-size -16
  # The paged figure is checked like the rest, before anything is printed.
  expect_error "--block-size 9223372036854775807: the cache size 2 x kv_heads x head_dim x block_size x bytes x layers overflows 64 bits" \
    memory --d-model 4096 --heads 32 --tokens 1 --block-size 9223372036854775807
  out=$("$kvbench" memory --d-model 4096 --heads 32 --tokens 1 --block-size 9223372036854775807 2>/dev/null)
  [ -z "$out" ] || die "an overflowing paged figure printed before its error: $out"
  # The largest size that fits is printed exactly (2^63 bytes: no overflow at the edge).
  out=$("$kvbench" memory --d-model 1073741824 --heads 1 --tokens 1073741824 --dtype fp32) ||
    die "a size of 2^63 bytes was rejected"
  grep -q "^total: *9223372036854775808 bytes" <<<"$out" || die "2^63 printed wrong: $out" ;;

report)
  # Bad bench outputs: each names the file, the JSON path and what was expected; nothing
  # is written (the --out directory is not even created).
  b=$tmp/in
  mkdir -p "$b/a_dir"
  mini_bench >"$b/good.json"
  sed 's/"name": "generate\/naive\/T:32\/manual_time"/"name": 7/' "$b/good.json" >"$b/numeric_name.json"
  sed 's/"real_time": 4.0/"real_time": "fast"/' "$b/good.json" >"$b/string_time.json"
  sed 's/"time_unit": "ms"}]}/"time_unit": "fortnights"}]}/' "$b/good.json" >"$b/unit.json"
  # Truncated inside a 4 KB string (nlohmann's own message would echo all of it).
  { printf '{"context": {}, "benchmarks": [{"label": "'; head -c 4000 /dev/zero | tr '\0' y; } >"$b/truncated.json"
  head -c 150 "$b/good.json" >"$b/cut.json"
  : >"$b/empty.json"
  printf '{"context": {"kvbench": "{\\"machine\\": {\\"cpu_model\\": 5}}"}, "benchmarks": []}' >"$b/context_type.json"
  printf '{"context": {"kvbench": "{\\"machine\\": "}, "benchmarks": []}' >"$b/context_json.json"
  printf '{"context": {}, "benchmarks": {"a": 1}}' >"$b/benchmarks_object.json"
  run_report() { expect_error "$1" report "$2" --out "$tmp/report_out"; [ -e "$tmp/report_out" ] && die "report $2 created its --out directory"; }
  run_report "bench output '$b/a_dir': is a directory, not a JSON file" "$b/a_dir"
  run_report "bench output '$b/missing.json': cannot read: No such file or directory" "$b/missing.json"
  # A file whose read fails (EIO): unreadable even for root, for whom chmod 000 is no bar.
  run_report "bench output '/proc/self/mem': cannot read: Input/output error" /proc/self/mem
  if [ "$(id -u)" -ne 0 ]; then
    cp "$b/good.json" "$b/no_access.json"; chmod 000 "$b/no_access.json"
    run_report "bench output '$b/no_access.json': cannot read: Permission denied" "$b/no_access.json"
  fi
  run_report "bench output '$b/numeric_name.json': benchmarks[1].name: expected a string, got the number 7" "$b/numeric_name.json"
  run_report "bench output '$b/string_time.json': benchmarks[1].real_time: expected a number, got the string \"fast\"" "$b/string_time.json"
  run_report "bench output '$b/unit.json': benchmarks[3].time_unit: expected a time unit: ns, us, ms or s, got the string \"fortnights\"" "$b/unit.json"
  run_report "bench output '$b/truncated.json': not valid JSON at line 1, column 4042 (the end of the input: truncated?): while parsing value - invalid string: missing closing quote; the input there: '...yyy" "$b/truncated.json"
  grep -q "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy" "$tmp/err" &&
    die "the truncated file's excerpt is longer than ~80 characters"
  run_report "bench output '$b/cut.json': not valid JSON at line 3, column" "$b/cut.json"
  run_report "bench output '$b/empty.json': is empty (expected a JSON document)" "$b/empty.json"
  run_report "bench output '$b/context_type.json': context.kvbench.machine.cpu_model: expected a string, got the number 5" "$b/context_type.json"
  run_report "bench output '$b/context_json.json': context.kvbench: not valid JSON at line 1, column 12" "$b/context_json.json"
  run_report "bench output '$b/benchmarks_object.json': benchmarks: expected an array, got an object" "$b/benchmarks_object.json"
  no_temporaries "$tmp" ;;

gate)
  # The gate's --baseline / --current go through the same reader.
  g=$tmp/g
  mkdir -p "$g/a_dir"
  cp "$src/ci/baseline.json" "$g/base.json"
  head -c 300 "$g/base.json" >"$g/cut.json"
  sed '0,/"kv_bytes_read": [0-9]*/s//"kv_bytes_read": "many"/' "$g/base.json" >"$g/string_count.json"
  sed '0,/"kv_bytes_read": [0-9]*/s//"kv_bytes_read": -5/' "$g/base.json" >"$g/negative_count.json"
  expect_error "gate measurement '$g/a_dir': is a directory, not a JSON file" gate --baseline "$g/a_dir" --current "$g/base.json"
  expect_error "gate measurement '$g/cut.json': not valid JSON at line" gate --baseline "$g/base.json" --current "$g/cut.json"
  expect_error "'$g/string_count.json' is not a usable gate measurement: field impls.cpu_cached.counters.kv_bytes_read is a string, expected a count (an integer >= 0)" \
    gate --baseline "$g/string_count.json" --current "$g/base.json"
  expect_error "field impls.cpu_cached.counters.kv_bytes_read is -5, expected a count (an integer >= 0)" \
    gate --baseline "$g/base.json" --current "$g/negative_count.json"
  no_temporaries "$tmp" ;;

preflight)
  # Outputs, plugins, shapes and sweeps are checked before any work: the error is the only
  # line on stderr (bench prints its command line, then progress, once it starts).
  common=(--impl cpu_cached --tokens 16 --positions 16 --long-impls none --no-check --min-time 0.001 --bandwidth-mib 1)
  echo x >"$tmp/a_file"
  expect_quick_error "--out: cannot write '/nonexistent/x.json': directory '/nonexistent' does not exist" bench "${common[@]}" --out /nonexistent/x.json
  expect_quick_error "--out: cannot write '$tmp': it is a directory" bench "${common[@]}" --out "$tmp"
  expect_quick_error "--out: cannot write '$tmp/a_file/x.json': '$tmp/a_file' is not a directory" bench "${common[@]}" --out "$tmp/a_file/x.json"
  expect_quick_error "--out: cannot write '/dev/null': it is not a regular file" bench "${common[@]}" --out /dev/null
  expect_quick_error "--plugin: plugin '/nonexistent/p.so': cannot load" bench "${common[@]}" --plugin /nonexistent/p.so --out "$tmp/b.json"
  expect_quick_error "--shape: unknown shape 'llama9' (known: default" bench "${common[@]}" --shape llama9 --out "$tmp/b.json"
  expect_quick_error "--dtype: unknown dtype 'int8'" bench "${common[@]}" --dtype int8 --out "$tmp/b.json"
  expect_quick_error "--impl: unknown implementation 'nope'" bench --impl nope --out "$tmp/b.json"
  expect_quick_error "--long-impls: unknown implementation 'nope'" bench --long-impls nope --out "$tmp/b.json"
  expect_quick_error "--tokens: sweep '16..x': item '16..x' has 'x' where a positive whole number belongs" bench --tokens 16..x --out "$tmp/b.json"
  expect_quick_error "--tokens: 131072 is past the capacity 65536 of shape 'default'" bench --tokens 131072 --out "$tmp/b.json"
  expect_quick_error "--positions: 65536 is past the last position 65535 of shape 'default'" bench --positions 65536 --out "$tmp/b.json"
  expect_quick_error "--long-positions: 99999999 is past the last position 32767 of shape 'gpt2'" bench "${common[@]}" --shape gpt2 --long-positions 99999999 --out "$tmp/b.json"
  expect_quick_error "--threads: sweep '0': item '0': value 0 is out of range" bench "${common[@]}" --threads 0 --out "$tmp/b.json"
  expect_quick_error "--threads: 5000 is more than 1024 threads" bench "${common[@]}" --threads 5000 --out "$tmp/b.json"
  [ -e "$tmp/b.json" ] && die "bench wrote its --out after an error"
  # verify --json (see also verify_cli), report --out, gate --out / --update.
  expect_quick_error "--json: cannot write '/nonexistent/v.json': directory '/nonexistent' does not exist" verify --impl cpu_cached --cases 1 --json /nonexistent/v.json
  mini_bench >"$tmp/good.json"
  expect_quick_error "--out: cannot create the output directory '$tmp/a_file/report'" report "$tmp/good.json" --out "$tmp/a_file/report"
  expect_quick_error "--out: cannot use '$tmp/a_file' as the output directory: it exists and is not a directory" report "$tmp/good.json" --out "$tmp/a_file"
  # Without --current the gate measures this build (minutes): the bad --out stops it first.
  expect_quick_error "--out: cannot write '/nonexistent/m.json'" gate --baseline "$src/ci/baseline.json" --out /nonexistent/m.json
  expect_quick_error "--baseline: cannot write '/nonexistent/b.json'" gate --baseline /nonexistent/b.json --update
  no_temporaries "$tmp" ;;

atomic)
  # A write failing part-way (a file size limit stands in for a full disk; SIGXFSZ ignored
  # so that the write fails with EFBIG instead of killing the process) leaves the old file
  # as it was and no temporary file.
  limited() {  # limited BLOCKS ARGS...: kvbench ARGS with files limited to BLOCKS KiB
    local blocks=$1
    shift
    (trap '' XFSZ; ulimit -f "$blocks"; exec "$kvbench" "$@")
  }
  expect_limited_error() {  # expect_limited_error BLOCKS EXPECTED ARGS...
    local blocks=$1 expected=$2
    shift 2
    local rc=0 err
    # Its output through a pipe (no file size limit applies to pipes or /dev/null): the
    # progress lines alone pass a 1 KiB limit, which would swallow the error message.
    err=$(limited "$blocks" "$@" 2>&1 >/dev/null) || rc=$?
    printf '%s\n' "$err" >"$tmp/err"
    [ "$rc" -eq 2 ] || { die "limited kvbench $*: exit $rc, expected 2"; cat "$tmp/err" >&2; }
    grep -qF -e "kvbench: error: $expected" "$tmp/err" || die "limited kvbench $*: no '$expected': $(cat "$tmp/err")"
    echo "ok: limited kvbench $* -> $(grep 'kvbench: error' "$tmp/err")"
  }
  out=$tmp/out_dir
  mkdir -p "$out"
  # gate --out and --update
  echo "the old measurement" >"$out/m.json"
  cp "$src/ci/baseline.json" "$out/baseline.json"
  expect_limited_error 1 "cannot write '$out/m.json': File too large" \
    gate --baseline "$src/ci/baseline.json" --current "$src/ci/baseline.json" --out "$out/m.json"
  [ "$(cat "$out/m.json")" = "the old measurement" ] || die "gate --out: the old file was changed"
  expect_limited_error 1 "cannot write '$out/baseline.json': File too large" \
    gate --baseline "$out/baseline.json" --current "$src/ci/baseline.json" --update
  cmp -s "$out/baseline.json" "$src/ci/baseline.json" || die "gate --update: the old baseline was changed"
  # verify --json
  echo "the old results" >"$out/v.json"
  expect_limited_error 1 "--json: cannot write '$out/v.json': File too large" \
    verify --impl cpu_cached --property decode_matches_reference --cases 2 --seed 1 --json "$out/v.json"
  [ "$(cat "$out/v.json")" = "the old results" ] || die "verify --json: the old file was changed"
  # bench --out (a 1-position sweep: the JSON is several KiB)
  echo "the old bench output" >"$out/b.json"
  expect_limited_error 1 "--out: cannot write '$out/b.json': File too large" \
    bench --impl cpu_cached --tokens 16 --positions 16 --long-impls none --no-check \
    --min-time 0.001 --bandwidth-mib 1 --out "$out/b.json"
  [ "$(cat "$out/b.json")" = "the old bench output" ] || die "bench --out: the old file was changed"
  # report: a complete report, then a second one cut short (gnuplot exits 0 on a failed
  # write, so a plot cut short must be caught by its missing end marker).
  if command -v gnuplot >/dev/null; then
    mini_bench >"$tmp/good.json"
    "$kvbench" report "$tmp/good.json" --out "$out/report" >/dev/null || die "a good report failed"
    (cd "$out/report" && md5sum ./*.* >"$tmp/sums")
    sed 's/"real_time": 4.0/"real_time": 3.0/' "$tmp/good.json" >"$tmp/changed.json"
    expect_limited_error 16 "report: gnuplot wrote an incomplete $out/report/scaling.svg" \
      report "$tmp/changed.json" --out "$out/report"
    (cd "$out/report" && md5sum -c --quiet "$tmp/sums") || die "report: an old file was changed"
    expect_limited_error 1 "--out: cannot write '$out/report/data/" report "$tmp/changed.json" --out "$out/report"
    (cd "$out/report" && md5sum -c --quiet "$tmp/sums") || die "report: an old file was changed"
  else
    echo "gnuplot not found: the report part of this test is skipped"
  fi
  no_temporaries "$tmp" ;;

*)
  echo "usage: $0 KVBENCH SOURCE_DIR parse|memory|report|gate|preflight|atomic" >&2
  exit 2 ;;
esac

if [ "$failures" -ne 0 ]; then
  echo "cli_errors $section: $failures failure(s)" >&2
  exit 1
fi
echo "cli_errors $section: ok"
