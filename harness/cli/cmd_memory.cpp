#include <iostream>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/cli_validators.h"
#include "harness/config.h"
#include "harness/error.h"

namespace kvbench::cli {

namespace {
struct MemoryArgs {
  long long d_model = 0, heads = 0, kv_heads = 0, layers = 1, tokens = 0, batch = 1;
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
  std::cout << "head_dim " << head_dim << ", kv_heads " << kv_heads << ", " << dtype_name(dtype)
            << " (" << elem << " bytes)\n";
  std::cout << "per layer:    " << per_layer << " bytes  (2 x " << kv_heads << " x " << head_dim
            << " x " << a.tokens << " x " << elem << ")\n";
  std::cout << "per sequence: " << per_seq << " bytes  (" << a.layers << " layers)\n";
  std::cout << "total:        " << total << " bytes  (" << a.batch << " sequences, "
            << static_cast<double>(total) / (1024.0 * 1024.0) << " MiB)\n";
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
  cmd->callback([args] { print_memory(*args); });
}

}  // namespace kvbench::cli
