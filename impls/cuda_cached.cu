// Host launch code of cuda_cached's kernels (kernels: impls/cuda_attention.cuh). Every
// launcher checks the grid limits it relies on and RETURNS the launch's cudaError_t; the
// caller (impls/cuda_cached.cpp) turns errors into kvbench::Error naming the kernel.
#include "impls/cuda_attention.cuh"
#include "impls/cuda_kernels.h"

namespace kvbench::cuda {

namespace {

// grid.y and grid.z may not exceed 65535; rows beyond that go in further launches.
constexpr int kMaxGridYZ = 65535;

using AttentionKernel = void (*)(AttentionLaunch, int, int);

template <typename T, int VEC, int CHUNKS>
AttentionKernel select_group(int group_per_block) {
  switch (group_per_block) {
    case 1: return split_attention_kernel<T, VEC, CHUNKS, 1>;
    case 4: return split_attention_kernel<T, VEC, CHUNKS, 4>;
    case 8: return split_attention_kernel<T, VEC, CHUNKS, 8>;
    default: return nullptr;
  }
}

template <typename T>
AttentionKernel select_typed(const AttentionShape& shape) {
  constexpr int kVec = static_cast<int>(16 / sizeof(T));
  if (shape.vectorized) {
    if (shape.vec != kVec || shape.chunks != 1) return nullptr;
    return select_group<T, kVec, 1>(shape.group_per_block);
  }
  if (shape.vec != 1 || shape.chunks != 8) return nullptr;
  return select_group<T, 1, 8>(shape.group_per_block);
}

// RETURNS: the split_attention_kernel instantiation for this storage type and shape, or null
// when the shape is not one plan_attention_shape produces.
AttentionKernel select_kernel(DType dtype, const AttentionShape& shape) {
  switch (dtype) {
    case DType::f32: return select_typed<float>(shape);
    case DType::f16: return select_typed<__half>(shape);
    case DType::bf16: return select_typed<__nv_bfloat16>(shape);
  }
  return nullptr;
}

template <typename T>
cudaError_t launch_append_typed(const AppendLaunch& a, cudaStream_t stream) {
  const int width = a.cache.kv_heads * a.cache.head_dim;
  const int threads = width >= 256 ? 256 : ((width + 31) / 32) * 32;
  append_kv_kernel<T><<<static_cast<unsigned>(a.num_items), threads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_append(const AppendLaunch& a, cudaStream_t stream) {
  if (a.num_items <= 0) return cudaSuccess;
  switch (a.cache.dtype) {
    case DType::f32: return launch_append_typed<float>(a, stream);
    case DType::f16: return launch_append_typed<__half>(a, stream);
    case DType::bf16: return launch_append_typed<__nv_bfloat16>(a, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_attention(const AttentionLaunch& a, cudaStream_t stream) {
  if (a.num_items <= 0) return cudaSuccess;
  const AttentionKernel kernel = select_kernel(a.cache.dtype, a.shape);
  if (kernel == nullptr) return cudaErrorInvalidValue;
  const long long grid_y = static_cast<long long>(a.cache.kv_heads) * a.shape.group_blocks;
  if (grid_y > kMaxGridYZ || a.max_splits < 1) return cudaErrorInvalidConfiguration;
  for (int base = 0; base < a.num_items; base += kMaxGridYZ) {
    const int count = (a.num_items - base < kMaxGridYZ) ? a.num_items - base : kMaxGridYZ;
    const dim3 grid(static_cast<unsigned>(a.max_splits), static_cast<unsigned>(grid_y),
                    static_cast<unsigned>(count));
    kernel<<<grid, kAttentionThreads, a.shape.shared_bytes, stream>>>(a, a.shape.lanes, base);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t attention_blocks_per_sm(DType dtype, const AttentionShape& shape, int* blocks) {
  const AttentionKernel kernel = select_kernel(dtype, shape);
  if (kernel == nullptr) return cudaErrorInvalidValue;
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, kernel, kAttentionThreads,
                                                       shape.shared_bytes);
}

cudaError_t probe_kernel_image() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, append_kv_kernel<float>);
}

cudaError_t launch_read_reduction(const void* data, std::size_t count_float4, float* block_sums,
                                  int blocks, cudaStream_t stream) {
  read_reduction_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      static_cast<const float4*>(data), count_float4, block_sums);
  return cudaGetLastError();
}

}  // namespace kvbench::cuda
