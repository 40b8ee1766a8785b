// The libFuzzer engine of `kvbench fuzz`: input bytes -> a narrow model and an operation
// sequence, run against one implementation with a shadow model of every sequence's exact
// token history, checked with the property suite's invariants against the float64
// reference.
//
// THE INPUT FORMAT (everything is a byte; a missing byte reads as 0, so every input is
// valid and the fuzzer never wastes an execution on a parse error):
//
//   header, kHeaderBytes:
//     [0] implementation: index into the selected list (KVBENCH_FUZZ_IMPLS), modulo its size
//     [1] L = 1 + b % 2            [2] H = 1 + b % 8     [3] H_kv = divisors(H)[b % count]
//     [4] d = 1 + b % 64           [5] d_model = 1 + b % 32
//     [6] capacity = 1 + b for b < 128, then 128 + 3 (b - 127) up to 512 (capacity_of):
//         every small capacity, and positions up to the token budget
//     [7] threads = 1 + b % 2 (when the implementation honours threads, else 1)
//     [8] [9] model and token seed, little-endian
//   then up to kMaxOps operation records of kOpBytes: [kind, a, b, c], kind = byte % 7:
//     0 create                      an empty sequence (at most kMaxLive live)
//     1 prefill  a: sequence, b: rows (b % 80, clamped to the room left; 0 rows is valid)
//     2 decode   a: mask of live sequences (bit i: the i-th live one; none set: all),
//                b: steps (1 + b % 4), c: seed of the order of ids within each step
//     3 fork     a: parent
//     4 truncate a: sequence, b: kept length (b % (length + 1))
//     5 drop     a: sequence
//     6 bad call a: which of kBadKinds, b and c: its arguments (see fuzz_case.cpp)
//   "sequence" bytes pick among the live sequences in creation order, modulo their count,
//   so removing an operation (the shrinker does) leaves every other one meaningful.
//
// Fixed-size records: a mutation of one record's kind keeps every other record in place.
// Work per input is bounded: at most kMaxTokens token rows are prefilled or decoded in all
// (naive's O(T^2) decode and the reference stay in the millisecond range).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness/registry.h"

namespace kvbench::fuzz {

inline constexpr std::size_t kHeaderBytes = 10;
inline constexpr std::size_t kOpBytes = 4;
inline constexpr std::size_t kMaxOps = 40;
inline constexpr std::size_t kMaxInputBytes = kHeaderBytes + kMaxOps * kOpBytes;  // 170
inline constexpr int kMaxTokens = 512;  // token rows prefilled + decoded per input
inline constexpr int kMaxLive = 8;      // live sequences (a decode mask is one byte)
inline constexpr int kMaxPrefill = 80;  // rows per prefill: past cpu_cached's 64-row tiles

enum class OpKind : std::uint8_t { create, prefill, decode, fork, truncate, drop, bad, count };

// The bad calls (op kind 6): each must raise kvbench::Error and change nothing.
enum class BadKind : std::uint8_t {
  prefill_width,       // a prompt that is not a multiple of d_model
  decode_width,        // decode rows of the wrong width
  decode_full,         // decode of a sequence at capacity
  prefill_capacity,    // a prefill past capacity
  unknown_id,          // dropped / never issued / negative id, on every operation
  truncate_length,     // truncate to a negative length or past the length
  duplicate_id,        // the same id twice in one decode
  non_finite,          // NaN / +Inf / -Inf in prefill or decode rows
  read_kv_range,       // read_kv of a bad layer or kv_head (K/V caches)
  count
};

struct Op {
  std::uint8_t kind = 0;  // OpKind after % OpKind::count
  std::uint8_t a = 0, b = 0, c = 0;
  bool operator==(const Op& o) const { return kind == o.kind && a == o.a && b == o.b && c == o.c; }
};

// One decoded input: the header bytes and the operation records, nothing interpreted yet.
struct Input {
  std::array<std::uint8_t, kHeaderBytes> header{};
  std::vector<Op> ops;  // <= kMaxOps
  bool operator==(const Input& o) const { return header == o.header && ops == o.ops; }
};

// RETURNS: the capacity header byte b stands for.
int capacity_of(std::uint8_t b);

// RETURNS: the input the bytes encode (missing bytes are 0, bytes past kMaxInputBytes and a
// trailing partial record beyond them are ignored). decode(encode(x)) == x.
Input decode(const std::uint8_t* data, std::size_t size);
std::vector<std::uint8_t> encode(const Input& input);

// The header fields, written as values (for hand-written inputs: seeds, tests).
struct Header {
  int impl = 0;       // index into the implementation list
  int layers = 1;     // 1..2
  int heads = 1;      // 1..8
  int kv_div = 0;     // index into the divisors of H, largest first (0: MHA)
  int head_dim = 1;   // 1..64
  int d_model = 1;    // 1..32
  int capacity = 16;  // 1..128, or 128 + 3k up to 512
  int threads = 1;    // 1..2
  int seed = 0;       // 0..65535
};
// REQUIRES: every field in its range. Throws Error naming the first field that is not.
Input make_input(const Header& h, std::vector<Op> ops);
Op op(OpKind kind, int a = 0, int b = 0, int c = 0);
Op bad(BadKind kind, int b = 0, int c = 0);

// What a run of one input found.
struct Report {
  bool failed = false;
  std::string impl;              // the implementation's name
  std::string config;            // the model, threads
  int records = 0;               // operation records in the input
  std::vector<std::string> ops;  // one line per record run (up to the failing one)
  int failing_op = -1;           // the record whose check failed; -1: a final check
  std::string check;             // the failing check, with its numbers
  std::string tag;               // "output", "read_kv", "bytes_held", ... (the shrinker keeps it)
  int executed_ops = 0;          // records that did something (not skipped)
  int tokens = 0;                // token rows prefilled and decoded
  std::array<int, static_cast<int>(OpKind::count)> op_kinds{};  // executed, per kind

  // The case and the failure, for a person: "impl ...; case ...\n  #0 create -> id 0 ...".
  std::string describe() const;
};

// Runs `input` against `impl` (which must be available and support fp32) and checks:
//   - every valid call returns without an exception; every bad call raises kvbench::Error
//     whose message names the problem, and leaves ids, lengths, counters, bytes and every
//     cached K/V row bitwise as they were;
//   - after every operation: the live ids and lengths match the shadow model; for K/V
//     caches bytes_held == 2*L*H_kv*d*sizeof(fp32)*sum(T) <= bytes_reserved;
//   - per decode call: qk_dot_products grows by L*H*sum(t+1), kv_projection_rows by L*batch
//     (K/V cache) or L*sum(t+1) (none), kv_bytes_read by exactly
//     L*sum(t+1)*2*d*sizeof(fp32)*caps.kv_row_reads(H, H_kv) when the implementation
//     declares its read model (as op_counts), else (K/V caches) within one read per KV
//     head .. per query head; create/fork/truncate/drop compute nothing (both counters
//     unchanged);
//   - fork copies, and truncate keeps, the cached K/V rows bitwise;
//   - at the end: every output row ever returned within the suite's tolerance
//     (properties/tolerance.h) of the float64 reference of the exact history it was
//     computed from, and every live sequence's read_kv rows within kv_tolerances of the
//     reference K/V projections.
// Stops at the first failing check.
Report run(const ImplInfo& impl, const Input& input);

// Greedy shrinking: removes operation records one at a time, then lowers header and
// argument bytes (to 0, then halving), keeping each change that still fails with the same
// tag, until nothing changes or `max_runs` runs were made. The header's implementation
// byte is kept. RETURNS: the smallest failing input found (the original if none smaller).
Input shrink(const std::function<Report(const Input&)>& run_one, const Input& failing,
             int max_runs = 2000, int* runs_made = nullptr);

// The implementations the fuzzer picks from: `list` as Registry::select reads it ("all" is
// every non-planted one; planted ones by name), minus those unavailable here or without
// fp32 storage (an explicitly named one of those is an Error naming it).
std::vector<const ImplInfo*> select_impls(const Registry& registry, const std::string& list);

// The implementation that header[0] picks from `impls`.
const ImplInfo& pick_impl(const std::vector<const ImplInfo*>& impls, const Input& input);

// The committed seed corpus (properties/libfuzzer/corpus/), one input per name: small
// cases that between them execute every operation and bad-call kind.
struct Seed {
  std::string name;
  Input input;
};
std::vector<Seed> seed_inputs();

}  // namespace kvbench::fuzz
