#ifndef RECSYS_CORE_TORCH_MODEL_RUNNER_H_
#define RECSYS_CORE_TORCH_MODEL_RUNNER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model_runner.h"

namespace recsys::core {

// Checks that `device` ("cpu" or "cuda:N") can run models in this process: a malformed name is
// INVALID_ARGUMENT, CUDA where it is unavailable (a CPU-only LibTorch, no GPU, N out of range)
// is FAILED_PRECONDITION. Never falls back to another device.
absl::Status CheckTorchDevice(const std::string& device);

// Sets LibTorch's intra-op and inter-op thread counts, and OpenBLAS's thread count (when the
// BLAS is OpenBLAS) to intra_op. Call once, before any model loads. Errors: FAILED_PRECONDITION
// when LibTorch refuses (a second call in the process, or parallel work has already started).
absl::Status SetTorchThreads(int intra_op, int inter_op);

// Makes glibc's malloc keep freed blocks of up to 32 MiB, and up to 64 MiB of free memory at
// the top of each heap, for reuse. LibTorch frees each tensor as soon as it is dead, and glibc
// gives freed memory back to the system eagerly: blocks over its mmap threshold (adaptive, from
// 128 KiB) are unmapped, and free memory at the top of a heap (worker threads each have their
// own) beyond a trim threshold of a few hundred KiB is released. A batch of a few MB
// (KernelSHAP's or LIME's coalitions) then pays page faults and zeroing on every request
// (measured: KernelSHAP with 256 coalitions, 44 -> 11 ms of explain time; no change at the
// default 128). Each heap may hold up to 64 MiB more than before. Call once, at the start of
// main. Errors: FAILED_PRECONDITION when the C library refuses a setting; a no-op (OK) where
// it is not glibc.
absl::Status KeepFreedMemoryForReuse();

// OpenBLAS's thread count, or -1 when the BLAS is not OpenBLAS.
int BlasThreads();

// How a model's item table is held for the catalogue pass on CPU (core/compact_table.h).
// kHalf: IEEE half precision, half the memory and bytes read per request, entries within
// 2^-11 relative; kInt8: a quarter, int8 with row and column scales; kFloat: the module's float
// values. With kHalf and kInt8 the input embedding of a module that exports
// release_item_table() is kept in half too. On CUDA tables stay float.
enum class ItemTablePrecision { kFloat, kHalf, kInt8 };
// What the server and the tools use unless told otherwise.
inline constexpr ItemTablePrecision kDefaultItemTablePrecision = ItemTablePrecision::kInt8;

// "half", "int8" or "float"; anything else is INVALID_ARGUMENT listing them.
absl::StatusOr<ItemTablePrecision> ParseItemTablePrecision(const std::string& name);
// The name ParseItemTablePrecision reads.
std::string ItemTablePrecisionName(ItemTablePrecision precision);

// A ModelLoader for TorchScript files on `device`: loads the module, checks that it has
// embed / encode / item_table / item_bias, and runs a warm-up request to check every shape
// against the bundle (items [1,L], event features [1,L,E], mask [1,L], context [1,C] ->
// item_table [N,H], item_bias [N], encode [1,H]). A wrong model is an error naming the file
// and the mismatch. A module that also exports prefix_sequences and user_vectors (see
// tools/recsys_models.py) gets a one-pass ScorePrefixes, after a check against encode() on
// every prefix of a made-up history and on rows with side-features of their own or an event
// left out (a mismatch refuses the model); those rows ride in the same pass when its
// prefix_sequences takes a batch, else one pass each. On a CUDA device it
// switches cuDNN off for the process (cuDNN's RNN cannot run the attribution backward pass in
// eval mode); LibTorch's native CUDA kernels run instead. The runner holds item_table() at
// `precision` (every score and attribution uses those values); a module that exports
// release_item_table(half: bool) is then asked to free its own copies (tools/recsys_models.py).
// A table or bias with a NaN or infinity is FAILED_PRECONDITION, so is a kHalf table with an
// entry beyond kLargestHalf.
ModelLoader TorchScriptLoader(const std::string& device,
                              ItemTablePrecision precision = kDefaultItemTablePrecision);

}  // namespace recsys::core

#endif  // RECSYS_CORE_TORCH_MODEL_RUNNER_H_
