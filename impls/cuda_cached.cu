// STUB: kernels come with the cuda_cached issue.
