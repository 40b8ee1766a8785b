#include <iostream>
#include <memory>
#include <sstream>

#include "harness/cli/commands.h"
#include "harness/cli_validators.h"
#include "harness/config.h"
#include "harness/error.h"

namespace kvbench::cli {

namespace {
struct MemoryArgs {
  long long d_model = 0, heads = 0, kv_heads = 0, layers = 1, tokens = 0, batch = 1;
  long long block_size = 0;  // 0: not given (no paged figure)
  bool kv_heads_given = false;
  std::string dtype = "fp16";
};

// A size as a running product whose every step is checked: a product past 64 bits is an
// error naming the argument that took it there, never a wrapped number.
class CheckedProduct {
 public:
  explicit CheckedProduct(unsigned long long start, std::string formula)
      : value_(start), formula_(std::move(formula)) {}
  CheckedProduct& times(long long factor, const std::string& arg) {
    unsigned long long next = 0;
    if (__builtin_mul_overflow(value_, static_cast<unsigned long long>(factor), &next)) {
      fail(arg, " ", factor, ": the cache size ", formula_,
           " overflows 64 bits (more than 18446744073709551615 bytes)");
    }
    value_ = next;
    return *this;
  }
  unsigned long long value() const { return value_; }

 private:
  unsigned long long value_;
  std::string formula_;
};

void check_shape(const MemoryArgs& a, long long kv_heads) {
  require(a.d_model % a.heads == 0, "--d-model ", a.d_model, " is not a multiple of --heads ",
          a.heads, " (head_dim = d_model / heads must be a whole number)");
  require(kv_heads <= a.heads, "--kv-heads ", kv_heads, " is more than --heads ", a.heads,
          " (each KV head serves a group of query heads)");
  require(a.heads % kv_heads == 0, "--kv-heads ", kv_heads, " does not divide --heads ", a.heads,
          " (each KV head serves the same number of query heads)");
}

// The paged figure (impls/paged.cpp): a block holds block_size tokens of every layer's K
// and V; a sequence of T tokens holds ceil(T / B) blocks, so at most one partly filled
// block (B - 1 tokens) of slack per sequence.
void print_paged(std::ostream& out, const MemoryArgs& a, long long kv_heads, long long head_dim,
                 long long elem) {
  const long long B = a.block_size;
  const std::string formula = "2 x kv_heads x head_dim x block_size x bytes x layers";
  CheckedProduct block(2, formula);
  block.times(kv_heads, "--kv-heads").times(head_dim, "--d-model").times(B, "--block-size");
  block.times(elem, "--dtype").times(a.layers, "--layers");
  const unsigned long long per_block = block.value();
  const unsigned long long blocks = (static_cast<unsigned long long>(a.tokens) + B - 1) / B;
  const std::string held = "blocks per sequence x bytes per block x batch";
  CheckedProduct seq(per_block, held);
  const unsigned long long per_seq = seq.times(static_cast<long long>(blocks), "--tokens").value();
  const unsigned long long total = seq.times(a.batch, "--batch").value();
  // The bytes of the tokens themselves, and of the worst-case partial block (B - 1 tokens).
  CheckedProduct token(2, formula);
  token.times(kv_heads, "--kv-heads").times(head_dim, "--d-model").times(elem, "--dtype");
  const unsigned long long per_token = token.times(a.layers, "--layers").value();
  const unsigned long long slack = per_seq - per_token * static_cast<unsigned long long>(a.tokens);
  const unsigned long long worst = per_token * static_cast<unsigned long long>(B - 1);
  CheckedProduct worst_total(worst, "worst-case slack x batch");
  worst_total.times(a.batch, "--batch");
  out << "paged, block size " << B << ":\n";
  out << "  per block:    " << per_block << " bytes  (2 x " << kv_heads << " x " << head_dim
            << " x " << B << " x " << elem << " x " << a.layers << " layers)\n";
  out << "  per sequence: " << blocks << " blocks = " << per_seq << " bytes  (ceil("
            << a.tokens << " / " << B << "); slack " << slack << " bytes, "
            << static_cast<unsigned long long>(blocks) * B - static_cast<unsigned long long>(a.tokens)
            << " tokens)\n";
  out << "  total:        " << total << " bytes  (" << a.batch << " sequences, "
            << static_cast<double>(total) / (1024.0 * 1024.0) << " MiB)\n";
  out << "  worst-case slack: " << worst << " bytes per sequence (one partly filled block: "
            << B - 1 << " tokens), " << worst_total.value() << " bytes for " << a.batch
            << " sequences\n";
}

void print_memory(const MemoryArgs& a) {
  const long long kv_heads = a.kv_heads_given ? a.kv_heads : a.heads;
  check_shape(a, kv_heads);
  const DType dtype = for_option("--dtype", [&] { return parse_dtype(a.dtype); });
  const long long head_dim = a.d_model / a.heads;
  const long long elem = static_cast<long long>(dtype_size(dtype));
  const std::string formula = "2 x kv_heads x head_dim x tokens x bytes x layers x batch";
  CheckedProduct size(2, formula);
  size.times(kv_heads, "--kv-heads").times(head_dim, "--d-model").times(a.tokens, "--tokens");
  size.times(elem, "--dtype");
  const unsigned long long per_layer = size.value();
  const unsigned long long per_seq = size.times(a.layers, "--layers").value();
  const unsigned long long total = size.times(a.batch, "--batch").value();
  // Computed before anything is printed: an overflow there is an error with no output.
  std::ostringstream paged;
  if (a.block_size > 0) print_paged(paged, a, kv_heads, head_dim, elem);
  std::cout << "head_dim " << head_dim << ", kv_heads " << kv_heads << ", " << dtype_name(dtype)
            << " (" << elem << " bytes)\n";
  std::cout << "per layer:    " << per_layer << " bytes  (2 x " << kv_heads << " x " << head_dim
            << " x " << a.tokens << " x " << elem << ")\n";
  std::cout << "per sequence: " << per_seq << " bytes  (" << a.layers << " layers)\n";
  std::cout << "total:        " << total << " bytes  (" << a.batch << " sequences, "
            << static_cast<double>(total) / (1024.0 * 1024.0) << " MiB)\n";
  std::cout << paged.str();
}
}  // namespace

void add_memory_command(CLI::App& app) {
  auto args = std::make_shared<MemoryArgs>();
  auto* cmd = app.add_subcommand(
      "memory", "K/V cache size: 2 (K and V) x layers x kv_heads x head_dim x tokens x bytes");
  cmd->add_option("--d-model", args->d_model, "Model width d_model")
      ->required()
      ->check(integer_at_least(1));
  cmd->add_option("--heads", args->heads, "Query heads H (head_dim = d_model / H)")
      ->required()
      ->check(integer_at_least(1));
  cmd->add_option("--kv-heads", args->kv_heads, "Key/value heads H_kv, dividing H (default: H)")
      ->check(integer_at_least(1))
      ->each([args](const std::string&) { args->kv_heads_given = true; });
  cmd->add_option("--layers", args->layers, "Layers L")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--tokens", args->tokens, "Tokens per sequence T")
      ->required()
      ->check(integer_at_least(0));
  cmd->add_option("--batch", args->batch, "Sequences")
      ->capture_default_str()
      ->check(integer_at_least(1));
  cmd->add_option("--dtype", args->dtype, "Element type: fp16, bf16 or fp32")
      ->capture_default_str();
  cmd->add_option("--block-size", args->block_size,
                  "Also print the paged figure for blocks of this many tokens (bytes per "
                  "block, blocks per sequence, worst-case slack)")
      ->check(integer_at_least(1));
  cmd->callback([args] { print_memory(*args); });
}

}  // namespace kvbench::cli
