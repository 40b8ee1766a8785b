// Host launch code of cuda_cached's kernels (kernels: impls/cuda_attention.cuh). Every
// launcher checks the grid limits it relies on and RETURNS the launch's cudaError_t; the
// caller (impls/cuda_cached.cpp) turns errors into kvbench::Error naming the kernel.
#include "impls/cuda_attention.cuh"
#include "impls/cuda_kernels.h"

namespace kvbench::cuda {

namespace {

// grid.y and grid.z may not exceed 65535; rows beyond that go in further launches.
constexpr int kMaxGridYZ = 65535;

template <typename T, int VEC, int CHUNKS, int GB>
cudaError_t launch_split(const AttentionLaunch& a, cudaStream_t stream) {
  const int group = a.cache.heads / a.cache.kv_heads;
  const int group_blocks = (group + GB - 1) / GB;
  const long long grid_y = static_cast<long long>(a.cache.kv_heads) * group_blocks;
  if (grid_y > kMaxGridYZ || a.max_splits < 1) return cudaErrorInvalidConfiguration;
  for (int base = 0; base < a.num_items; base += kMaxGridYZ) {
    const int count = (a.num_items - base < kMaxGridYZ) ? a.num_items - base : kMaxGridYZ;
    const dim3 grid(static_cast<unsigned>(a.max_splits), static_cast<unsigned>(grid_y),
                    static_cast<unsigned>(count));
    split_attention_kernel<T, VEC, CHUNKS, GB>
        <<<grid, kAttentionThreads, a.shape.shared_bytes, stream>>>(a, a.shape.lanes, base);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <typename T, int VEC, int CHUNKS>
cudaError_t launch_group(const AttentionLaunch& a, cudaStream_t stream) {
  switch (a.shape.group_per_block) {
    case 1: return launch_split<T, VEC, CHUNKS, 1>(a, stream);
    case 4: return launch_split<T, VEC, CHUNKS, 4>(a, stream);
    case 8: return launch_split<T, VEC, CHUNKS, 8>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t launch_typed(const AttentionLaunch& a, cudaStream_t stream) {
  constexpr int kVec = static_cast<int>(16 / sizeof(T));
  if (a.shape.vectorized) {
    if (a.shape.vec != kVec || a.shape.chunks != 1) return cudaErrorInvalidValue;
    return launch_group<T, kVec, 1>(a, stream);
  }
  if (a.shape.vec != 1 || a.shape.chunks != 8) return cudaErrorInvalidValue;
  return launch_group<T, 1, 8>(a, stream);
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
  switch (a.cache.dtype) {
    case DType::f32: return launch_typed<float>(a, stream);
    case DType::f16: return launch_typed<__half>(a, stream);
    case DType::bf16: return launch_typed<__nv_bfloat16>(a, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_merge(const MergeLaunch& a, cudaStream_t stream) {
  if (a.num_items <= 0) return cudaSuccess;
  if (a.heads > kMaxGridYZ) return cudaErrorInvalidConfiguration;
  const int threads = a.head_dim >= 128 ? 128 : ((a.head_dim + 31) / 32) * 32;
  const dim3 grid(static_cast<unsigned>(a.num_items), static_cast<unsigned>(a.heads));
  merge_splits_kernel<<<grid, threads, 0, stream>>>(a, 0);
  return cudaGetLastError();
}

cudaError_t probe_kernel_image() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, merge_splits_kernel);
}

cudaError_t launch_read_reduction(const void* data, std::size_t count_float4, float* block_sums,
                                  int blocks, cudaStream_t stream) {
  read_reduction_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      static_cast<const float4*>(data), count_float4, block_sums);
  return cudaGetLastError();
}

}  // namespace kvbench::cuda
