#include <iostream>

#include "harness/cli/commands.h"
#include "harness/config.h"
#include "harness/error.h"

namespace kvbench::cli {

namespace {
struct MemoryArgs {
  long long d_model = 0, heads = 0, kv_heads = 0, layers = 1, tokens = 0, batch = 1;
  std::string dtype = "fp16";
};
}  // namespace

void add_memory_command(CLI::App& app) {
  auto* args = new MemoryArgs();
  auto* cmd = app.add_subcommand(
      "memory", "K/V cache size: 2 (K and V) x layers x kv_heads x head_dim x tokens x bytes");
  cmd->add_option("--d-model", args->d_model, "Model width d_model")->required();
  cmd->add_option("--heads", args->heads, "Query heads H (head_dim = d_model / H)")->required();
  cmd->add_option("--kv-heads", args->kv_heads, "Key/value heads H_kv (default: H)");
  cmd->add_option("--layers", args->layers, "Layers L")->capture_default_str();
  cmd->add_option("--tokens", args->tokens, "Tokens per sequence T")->required();
  cmd->add_option("--batch", args->batch, "Sequences")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "Element type: fp16, bf16 or fp32")
      ->capture_default_str();
  cmd->callback([args] {
    const MemoryArgs& a = *args;
    const long long kv_heads = a.kv_heads == 0 ? a.heads : a.kv_heads;
    require(a.d_model >= 1, "--d-model must be >= 1, got ", a.d_model);
    require(a.heads >= 1, "--heads must be >= 1, got ", a.heads);
    require(a.d_model % a.heads == 0, "--d-model ", a.d_model, " is not a multiple of --heads ",
            a.heads, " (head_dim = d_model / heads)");
    require(kv_heads >= 1 && a.heads % kv_heads == 0, "--kv-heads ", kv_heads,
            " must be >= 1 and divide --heads ", a.heads);
    require(a.layers >= 1, "--layers must be >= 1, got ", a.layers);
    require(a.tokens >= 0, "--tokens must be >= 0, got ", a.tokens);
    require(a.batch >= 1, "--batch must be >= 1, got ", a.batch);
    const DType dtype = parse_dtype(a.dtype);
    const long long head_dim = a.d_model / a.heads;
    const unsigned long long per_layer = 2ull * static_cast<unsigned long long>(kv_heads) *
                                         static_cast<unsigned long long>(head_dim) *
                                         static_cast<unsigned long long>(a.tokens) *
                                         dtype_size(dtype);
    const unsigned long long per_seq = per_layer * static_cast<unsigned long long>(a.layers);
    const unsigned long long total = per_seq * static_cast<unsigned long long>(a.batch);
    std::cout << "head_dim " << head_dim << ", kv_heads " << kv_heads << ", "
              << dtype_name(dtype) << " (" << dtype_size(dtype) << " bytes)\n";
    std::cout << "per layer:    " << per_layer << " bytes  (2 x " << kv_heads << " x " << head_dim
              << " x " << a.tokens << " x " << dtype_size(dtype) << ")\n";
    std::cout << "per sequence: " << per_seq << " bytes  (" << a.layers << " layers)\n";
    std::cout << "total:        " << total << " bytes  (" << a.batch << " sequences, "
              << static_cast<double>(total) / (1024.0 * 1024.0) << " MiB)\n";
  });
}

}  // namespace kvbench::cli
