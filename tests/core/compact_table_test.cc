#include "core/half_table.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

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

}  // namespace
}  // namespace recsys::core
