#include "core/compact_table.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace recsys::core {
namespace {

TEST(HalfTest, ExactValuesRoundTrip) {
  // Bit patterns from IEEE 754 binary16: 1, -2, the largest finite, the smallest normal and
  // subnormal, and a value with every mantissa bit.
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) {  // Every finite positive half.
    const uint16_t half = static_cast<uint16_t>(bits);
    ASSERT_EQ(FloatToHalf(HalfToFloat(half)), half) << bits;
    ASSERT_EQ(FloatToHalf(-HalfToFloat(half)), half | 0x8000) << bits;
  }
}

TEST(HalfTest, RoundsToNearestTiesToEven) {
  // Between 1 and the next half (1 + 2^-10): below the middle rounds down, above rounds up,
  // the middle goes to the even one (1). Between 1 + 2^-10 and 1 + 2^-9 the middle goes up.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) * 0.99f), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) * 1.01f), 0x3c01);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  // Subnormals: half of the smallest rounds to 0 (even), 1.5 of it to 2 of it.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);
}

TEST(HalfTest, OverflowAndNan) {
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e9f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
}

// Random rows of `width` halves; the float product computed from their exact float values.
struct Case {
  std::vector<uint16_t> table;
  std::vector<float> x, bias, expected;
};
Case RandomCase(int64_t rows, int64_t width) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  Case c;
  for (int64_t i = 0; i < rows * width; ++i) c.table.push_back(FloatToHalf(normal(rng)));
  for (int64_t j = 0; j < width; ++j) c.x.push_back(normal(rng));
  for (int64_t i = 0; i < rows; ++i) {
    c.bias.push_back(normal(rng));
    double sum = c.bias.back();
    for (int64_t j = 0; j < width; ++j) sum += double{HalfToFloat(c.table[i * width + j])} * c.x[j];
    c.expected.push_back(static_cast<float>(sum));
  }
  return c;
}

TEST(HalfMatVecTest, BothPathsComputeTheProductOfTheHalfRows) {
  for (int64_t width : {1, 7, 8, 9, 64, 82}) {  // Widths around the 8-lane vectors.
    Case c = RandomCase(37, width);
    std::vector<float> fast(37, -1.0f), portable(37, -1.0f);
    HalfMatVec(c.table.data(), width, c.x.data(), c.bias.data(), 0, 37, fast.data());
    HalfMatVecPortable(c.table.data(), width, c.x.data(), c.bias.data(), 0, 37, portable.data());
    for (int i = 0; i < 37; ++i) {
      EXPECT_NEAR(fast[i], c.expected[i], 1e-5f) << "width " << width << " row " << i;
      EXPECT_NEAR(portable[i], c.expected[i], 1e-5f) << "width " << width << " row " << i;
    }
  }
}

TEST(HalfMatVecTest, WritesOnlyTheRowsOfItsRange) {
  Case c = RandomCase(10, 9);
  std::vector<float> out(10, -7.0f);
  HalfMatVec(c.table.data(), 9, c.x.data(), c.bias.data(), 3, 6, out.data());
  for (int i = 0; i < 10; ++i) {
    if (i >= 3 && i < 6) {
      EXPECT_NEAR(out[i], c.expected[i], 1e-5f);
    } else {
      EXPECT_EQ(out[i], -7.0f) << i;
    }
  }
}

TEST(Int8MatVecTest, BothPathsComputeTheScaledProduct) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> entry(-127, 127);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t width : {1, 7, 8, 9, 64, 81}) {
    const int64_t rows = 23;
    std::vector<int8_t> table(rows * width);
    for (int8_t& q : table) q = static_cast<int8_t>(entry(rng));
    std::vector<float> x(width), scale(rows), bias(rows);
    for (float& v : x) v = normal(rng);
    for (int64_t i = 0; i < rows; ++i) {
      scale[i] = std::abs(normal(rng)) / 127.0f;
      bias[i] = normal(rng);
    }
    std::vector<float> fast(rows), portable(rows);
    Int8MatVec(table.data(), scale.data(), width, x.data(), bias.data(), 0, rows, fast.data());
    Int8MatVecPortable(table.data(), scale.data(), width, x.data(), bias.data(), 0, rows,
                       portable.data());
    for (int64_t i = 0; i < rows; ++i) {
      double sum = 0.0;
      for (int64_t j = 0; j < width; ++j) sum += static_cast<double>(table[i * width + j]) * x[j];
      const double expected = bias[i] + scale[i] * sum;
      EXPECT_NEAR(fast[i], expected, 1e-4 * (1.0 + std::abs(expected))) << width << "," << i;
      EXPECT_NEAR(portable[i], expected, 1e-4 * (1.0 + std::abs(expected))) << width << "," << i;
    }
  }
}

// A table like a model's: learned columns of size ~0.3 beside an item feature 1000x smaller
// and one 30x larger.
std::vector<float> ModelLikeTable(int64_t rows, int64_t width) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> t(rows * width);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < width; ++j) t[i * width + j] = normal(rng);
    t[i * width] *= 1e-3f;
    t[i * width + 1] = 10.0f * std::abs(t[i * width + 1]);
  }
  return t;
}

TEST(CompactTableTest, Int8RowsKeepEveryColumnToAFewPercentOfItsSize) {
  const int64_t rows = 200, width = 20;
  const std::vector<float> t = ModelLikeTable(rows, width);
  const CompactTable table = CompactTable::Encode(TableEncoding::kInt8, t.data(), rows, width);
  EXPECT_EQ(table.bytes(), rows * width + (rows + width) * 4);
  // Per column, the largest error against the column's largest entry: the column scales keep
  // the small feature column as exact as the others (a scale per row alone would round all of
  // it to 0).
  std::vector<float> decoded(width);
  std::vector<double> worst(width, 0.0), largest(width, 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    table.Row(i, decoded.data());
    for (int64_t j = 0; j < width; ++j) {
      worst[j] = std::max(worst[j], double{std::abs(decoded[j] - t[i * width + j])});
      largest[j] = std::max(largest[j], double{std::abs(t[i * width + j])});
    }
  }
  for (int64_t j = 0; j < width; ++j) EXPECT_LT(worst[j], 0.02 * largest[j]) << "column " << j;
}

TEST(CompactTableTest, Int8ScalesEachRowAndSurvivesZeroRowsAndColumns) {
  // Row 0 is 100x smaller than row 1; row 2 and column 3 are 0.
  const int64_t rows = 3, width = 4;
  const std::vector<float> t = {0.01f, -0.007f, 0.003f, 0.0f,  //
                                1.0f,  0.5f,    -0.3f,  0.0f,  //
                                0.0f,  0.0f,    0.0f,   0.0f};
  const CompactTable table = CompactTable::Encode(TableEncoding::kInt8, t.data(), rows, width);
  std::vector<float> decoded(width);
  for (int64_t i = 0; i < rows; ++i) {
    table.Row(i, decoded.data());
    float most = 0.0f;
    for (int64_t j = 0; j < width; ++j) most = std::max(most, std::abs(t[i * width + j]));
    for (int64_t j = 0; j < width; ++j) {
      ASSERT_TRUE(std::isfinite(decoded[j]));
      // Within a step of the row's own range (a scale per column alone would leave the small
      // row a step of 1/127 of the large one's: 100x this).
      EXPECT_LE(std::abs(decoded[j] - t[i * width + j]), most / 127.0f + 1e-9f) << i << "," << j;
    }
  }
}

TEST(Int8MatVecTest, WritesOnlyTheRowsOfItsRange) {
  const int64_t rows = 13, width = 9;
  std::vector<int8_t> table(rows * width, 3);
  std::vector<float> x(width, 1.0f), scale(rows, 0.5f), bias(rows, 1.0f);
  for (auto* product : {&Int8MatVec, &Int8MatVecPortable}) {
    std::vector<float> out(rows, -7.0f);
    product(table.data(), scale.data(), width, x.data(), bias.data(), 2, 11, out.data());
    for (int64_t i = 0; i < rows; ++i) {
      EXPECT_EQ(out[i], i >= 2 && i < 11 ? 1.0f + 0.5f * 27.0f : -7.0f) << i;
    }
  }
}

TEST(CompactTableTest, ScoresAreTheDecodedRowsTimesX) {
  const int64_t rows = 50, width = 19;
  const std::vector<float> t = ModelLikeTable(rows, width);
  std::vector<float> x(width), bias(rows);
  for (int64_t j = 0; j < width; ++j) x[j] = 0.1f * static_cast<float>(j % 5) - 0.2f;
  for (int64_t i = 0; i < rows; ++i) bias[i] = 0.01f * static_cast<float>(i);
  for (TableEncoding encoding : {TableEncoding::kHalf, TableEncoding::kInt8}) {
    const CompactTable table = CompactTable::Encode(encoding, t.data(), rows, width);
    std::vector<float> scores(rows), decoded(width);
    table.Score(x.data(), bias.data(), 0, rows, scores.data());
    double off = 0.0;  // How far the compact scores are from the float ones.
    for (int64_t i = 0; i < rows; ++i) {
      table.Row(i, decoded.data());
      double from_rows = bias[i], exact = bias[i];
      for (int64_t j = 0; j < width; ++j) {
        from_rows += double{decoded[j]} * x[j];
        exact += double{t[i * width + j]} * x[j];
      }
      EXPECT_NEAR(scores[i], from_rows, 1e-5) << i;  // What re-scoring relies on.
      off = std::max(off, std::abs(from_rows - exact));
    }
    EXPECT_GT(off, 0.0);
    EXPECT_LT(off, encoding == TableEncoding::kHalf ? 2e-3 : 3e-2);
  }
}

TEST(CompactTableTest, SlicedReadsMakeTheWholeTableOneSliceAtATime) {
  const int64_t rows = 50, width = 7;
  std::vector<float> t = ModelLikeTable(rows, width);
  t[(rows - 1) * width + 2] = 40.0f;  // Column 2's scale comes from the last slice.
  for (TableEncoding encoding : {TableEncoding::kHalf, TableEncoding::kInt8}) {
    const CompactTable whole = CompactTable::Encode(encoding, t.data(), rows, width);
    for (int64_t slice_rows : {1, 7, 49, 64}) {
      std::vector<std::pair<int64_t, int64_t>> reads;
      const absl::StatusOr<CompactTable> read = CompactTable::Encode(
          encoding, rows, width,
          [&](int64_t begin, int64_t end, float* out) {
            reads.emplace_back(begin, end);
            std::copy(t.begin() + begin * width, t.begin() + end * width, out);
            return absl::OkStatus();
          },
          slice_rows);
      ASSERT_TRUE(read.ok()) << read.status();
      const CompactTable& sliced = *read;
      // Consecutive slices of at most slice_rows rows over the table, once for half and twice
      // for int8 (its column scales need every row first).
      const int passes = encoding == TableEncoding::kInt8 ? 2 : 1;
      int64_t next = 0, covered = 0;
      for (const auto& [begin, end] : reads) {
        EXPECT_EQ(begin, next % rows) << slice_rows;
        EXPECT_GT(end, begin);
        EXPECT_LE(end - begin, slice_rows);
        next = end;
        covered += end - begin;
      }
      EXPECT_EQ(covered, passes * rows) << slice_rows;
      std::vector<float> a(width), b(width);
      for (int64_t i = 0; i < rows; ++i) {
        whole.Row(i, a.data());
        sliced.Row(i, b.data());
        for (int64_t j = 0; j < width; ++j) {
          ASSERT_EQ(a[j], b[j]) << "slices of " << slice_rows << ", entry " << i << "," << j;
        }
      }
    }
  }
}

TEST(CompactTableTest, ASliceThatFailsStopsTheEncodingWithItsError) {
  for (TableEncoding encoding : {TableEncoding::kHalf, TableEncoding::kInt8}) {
    int reads = 0;
    const absl::StatusOr<CompactTable> table = CompactTable::Encode(
        encoding, 10, 3,
        [&](int64_t begin, int64_t end, float* out) {
          ++reads;
          std::fill(out, out + (end - begin) * 3, 1.0f);
          return begin == 4 ? absl::FailedPreconditionError("slice 4 is bad") : absl::OkStatus();
        },
        2);
    EXPECT_EQ(table.status(), absl::FailedPreconditionError("slice 4 is bad"));
    EXPECT_EQ(reads, 3);  // Rows 0-1, 2-3, then the failing 4-5; nothing after it.
  }
}

}  // namespace
}  // namespace recsys::core
