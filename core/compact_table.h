#ifndef RECSYS_CORE_HALF_TABLE_H_
#define RECSYS_CORE_HALF_TABLE_H_

// Item tables in IEEE 754 half precision (binary16): half the bytes of float, so half the
// memory and half the read bandwidth of the catalogue pass, which at large catalogues is
// memory-bound (docs/performance.md). A half keeps 11 significant bits (relative rounding error
// <= 2^-11), ample for embedding rows whose dot products are then summed in float.

#include <cstdint>

namespace recsys::core {

// The half nearest to `value` (ties to even; overflow to infinity; NaN stays NaN).
uint16_t FloatToHalf(float value);
// The float equal to `half` (every half is exactly a float).
float HalfToFloat(uint16_t half);

// out[i] = bias[i] + sum_j HalfToFloat(table[i * width + j]) * x[j], for rows i in
// [begin, end), the sum in float. Uses AVX2 + F16C + FMA when the CPU has them (checked once),
// else HalfMatVecPortable; the two differ only in the float summation order.
// REQUIRES: table holds at least end * width halves, x width floats, bias and out at least
// end floats. Thread-safe: rows are independent, so callers may split [0, N) across threads.
void HalfMatVec(const uint16_t* table, int64_t width, const float* x, const float* bias,
                int64_t begin, int64_t end, float* out);

// The same product in plain C++ (no vector instructions); exposed for tests and benchmarks.
void HalfMatVecPortable(const uint16_t* table, int64_t width, const float* x, const float* bias,
                        int64_t begin, int64_t end, float* out);

}  // namespace recsys::core

#endif  // RECSYS_CORE_HALF_TABLE_H_
