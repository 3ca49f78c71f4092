#ifndef RECSYS_CORE_COMPACT_TABLE_H_
#define RECSYS_CORE_COMPACT_TABLE_H_

// Item tables in fewer bytes than float, for the catalogue pass, which at large catalogues is
// memory-bound (docs/performance.md): IEEE 754 half precision (2 bytes an entry, 11
// significant bits) or int8 with a scale per row and per column (1 byte an entry). Dot
// products are summed in float. No LibTorch here.

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace recsys::core {

// The largest finite half.
inline constexpr float kLargestHalf = 65504.0f;

// The half nearest to `value` (ties to even; beyond kLargestHalf infinity; NaN stays NaN).
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
// The same product in plain C++ (no vector instructions); exposed for tests.
void HalfMatVecPortable(const uint16_t* table, int64_t width, const float* x, const float* bias,
                        int64_t begin, int64_t end, float* out);

// out[i] = bias[i] + row_scale[i] * sum_j table[i * width + j] * x[j] over int8 entries, for
// rows in [begin, end); AVX2 when the CPU has it, else Int8MatVecPortable. REQUIRES and
// thread-safety as HalfMatVec.
void Int8MatVec(const int8_t* table, const float* row_scale, int64_t width, const float* x,
                const float* bias, int64_t begin, int64_t end, float* out);
void Int8MatVecPortable(const int8_t* table, const float* row_scale, int64_t width,
                        const float* x, const float* bias, int64_t begin, int64_t end,
                        float* out);

enum class TableEncoding {
  // Each entry rounded to half: relative error <= 2^-11 for entries of size 2^-14 ..
  // kLargestHalf (below, half's subnormals: absolute error <= 2^-25).
  kHalf,
  // Entry (i, j) ~= q * row_scale[i] * column_scale[j] with q in [-127, 127]: the column
  // scales even out columns of different sizes (learned vectors beside item features), the
  // row scales let each row use the whole int8 range. Error <= half a step of its row.
  kInt8,
};

// An [N, H] float table held in a TableEncoding. Immutable once made; thread-safe.
class CompactTable {
 public:
  // REQUIRES: `data` holds rows * width floats, row-major, all finite (and, for kHalf, of
  // size <= kLargestHalf).
  static CompactTable Encode(TableEncoding encoding, const float* data, int64_t rows,
                             int64_t width);

  // Writes rows [begin, end) of a float table, row-major, into out[0, (end - begin) * width),
  // or fails.
  using RowReader = std::function<absl::Status(int64_t begin, int64_t end, float* out)>;
  // The same table read slice by slice, at most `slice_rows` rows at a time (twice over for
  // kInt8: its column scales first), so that the float table is never held whole: at 1M items
  // the float table a model returns in one piece is 4x the int8 one. REQUIRES: slice_rows >= 1;
  // `read` writes values as `data` above. Errors: the first that `read` returns (no slice is
  // read after it).
  static absl::StatusOr<CompactTable> Encode(TableEncoding encoding, int64_t rows, int64_t width,
                                             const RowReader& read,
                                             int64_t slice_rows = kSliceRows);
  static constexpr int64_t kSliceRows = 1 << 12;

  int64_t rows() const { return rows_; }
  int64_t width() const { return width_; }
  TableEncoding encoding() const { return encoding_; }
  // Bytes the table's entries and scales take.
  int64_t bytes() const;

  // out[i] = bias[i] + Row(i) . x for i in [begin, end) (the sum in float, in its own order).
  // REQUIRES: x has width() floats, bias and out rows(); 0 <= begin <= end <= rows().
  void Score(const float* x, const float* bias, int64_t begin, int64_t end, float* out) const;

  // The decoded row i (the values Score multiplies by) into out[0, width()).
  void Row(int64_t i, float* out) const;

 private:
  // Row i of int8_ and row_scale_ from the float row, with the column scales set.
  void EncodeInt8Row(int64_t i, const float* row);

  TableEncoding encoding_ = TableEncoding::kHalf;
  int64_t rows_ = 0, width_ = 0;
  std::vector<uint16_t> half_;         // kHalf: [rows * width].
  std::vector<int8_t> int8_;           // kInt8: [rows * width].
  std::vector<float> row_scale_;       // kInt8: [rows].
  std::vector<float> column_scale_;    // kInt8: [width].
};

}  // namespace recsys::core

#endif  // RECSYS_CORE_COMPACT_TABLE_H_
