#include "core/compact_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace recsys::core {

namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,f16c,fma"))) void HalfMatVecAvx2(const uint16_t* table,
                                                             int64_t width, const float* x,
                                                             const float* bias, int64_t begin,
                                                             int64_t end, float* out) {
  const int64_t vectors = width / 8;
  for (int64_t i = begin; i < end; ++i) {
    const uint16_t* row = table + i * width;
    __m256 sum = _mm256_setzero_ps();
    for (int64_t v = 0; v < vectors; ++v) {
      __m256 h = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 8 * v)));
      sum = _mm256_fmadd_ps(h, _mm256_loadu_ps(x + 8 * v), sum);
    }
    __m128 quad = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    quad = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    quad = _mm_add_ss(quad, _mm_movehdup_ps(quad));
    float total = _mm_cvtss_f32(quad);
    for (int64_t j = 8 * vectors; j < width; ++j) total += _cvtsh_ss(row[j]) * x[j];
    out[i] = bias[i] + total;
  }
}

// The four sums of a, b, c, d's eight lanes each.
__attribute__((target("avx2,fma"))) __m128 FourSums(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a01+a23 b.. c.. d.. | the same of lanes 4-7
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

__attribute__((target("avx2,fma"))) __m256 Int8Lanes(const int8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// Four rows at a time: each x load serves four rows and one reduction gives four sums. One row
// at a time this kernel was bound by its instructions at one byte an entry (1M x 81: 5.1 ms
// against 3.9 ms, which is about one core's read bandwidth).
__attribute__((target("avx2,fma"))) void Int8MatVecAvx2(const int8_t* table,
                                                       const float* row_scale, int64_t width,
                                                       const float* x, const float* bias,
                                                       int64_t begin, int64_t end, float* out) {
  const int64_t vectors = width / 8;
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const int8_t* r = table + i * width;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t v = 0; v < vectors; ++v) {
      const __m256 xv = _mm256_loadu_ps(x + 8 * v);
      s0 = _mm256_fmadd_ps(Int8Lanes(r + 8 * v), xv, s0);
      s1 = _mm256_fmadd_ps(Int8Lanes(r + width + 8 * v), xv, s1);
      s2 = _mm256_fmadd_ps(Int8Lanes(r + 2 * width + 8 * v), xv, s2);
      s3 = _mm256_fmadd_ps(Int8Lanes(r + 3 * width + 8 * v), xv, s3);
    }
    alignas(16) float sums[4];
    _mm_store_ps(sums, FourSums(s0, s1, s2, s3));
    for (int64_t k = 0; k < 4; ++k) {
      const int8_t* row = r + k * width;
      for (int64_t j = 8 * vectors; j < width; ++j) sums[k] += static_cast<float>(row[j]) * x[j];
      out[i + k] = bias[i + k] + row_scale[i + k] * sums[k];
    }
  }
  Int8MatVecPortable(table, row_scale, width, x, bias, i, end, out);  // The last rows.
}

bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
bool HasAvx2F16c() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return HasAvx2Fma() && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  }();
  return has;
}
#endif

}  // namespace

uint16_t FloatToHalf(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // Infinity or NaN (a quiet NaN keeps a payload bit).
    return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x0200u : 0u);
  }
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // Rounds past 65504: infinity.
  if (magnitude < 0x38800000u) {  // Below 2^-14: a subnormal half (or 0).
    // Adding 0.5 moves the bits into place with the FPU's ties-to-even rounding.
    const float shifted = BitsFloat(magnitude) + 0.5f;
    return sign | static_cast<uint16_t>(FloatBits(shifted) - FloatBits(0.5f));
  }
  // A normal half: rebias the exponent (127 -> 15) and round the 13 dropped bits to even.
  const uint32_t odd = (magnitude >> 13) & 1u;
  const uint32_t rounded = magnitude + 0xc8000fffu + odd;  // - (112 << 23) + 0xfff + odd
  return sign | static_cast<uint16_t>(rounded >> 13);
}

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {  // Zero or subnormal: mantissa * 2^-24.
    const float value = static_cast<float>(mantissa) * BitsFloat(0x33800000u);
    return BitsFloat(FloatBits(value) | sign);
  }
  if (exponent == 0x1f) return BitsFloat(sign | 0x7f800000u | (mantissa << 13));
  return BitsFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

void HalfMatVecPortable(const uint16_t* table, int64_t width, const float* x, const float* bias,
                        int64_t begin, int64_t end, float* out) {
  for (int64_t i = begin; i < end; ++i) {
    const uint16_t* row = table + i * width;
    float total = 0.0f;
    for (int64_t j = 0; j < width; ++j) total += HalfToFloat(row[j]) * x[j];
    out[i] = bias[i] + total;
  }
}

void HalfMatVec(const uint16_t* table, int64_t width, const float* x, const float* bias,
                int64_t begin, int64_t end, float* out) {
#if defined(__x86_64__) || defined(__i386__)
  if (HasAvx2F16c()) return HalfMatVecAvx2(table, width, x, bias, begin, end, out);
#endif
  HalfMatVecPortable(table, width, x, bias, begin, end, out);
}

void Int8MatVecPortable(const int8_t* table, const float* row_scale, int64_t width,
                        const float* x, const float* bias, int64_t begin, int64_t end,
                        float* out) {
  for (int64_t i = begin; i < end; ++i) {
    const int8_t* row = table + i * width;
    float total = 0.0f;
    for (int64_t j = 0; j < width; ++j) total += static_cast<float>(row[j]) * x[j];
    out[i] = bias[i] + row_scale[i] * total;
  }
}

void Int8MatVec(const int8_t* table, const float* row_scale, int64_t width, const float* x,
                const float* bias, int64_t begin, int64_t end, float* out) {
#if defined(__x86_64__) || defined(__i386__)
  if (HasAvx2Fma()) return Int8MatVecAvx2(table, row_scale, width, x, bias, begin, end, out);
#endif
  Int8MatVecPortable(table, row_scale, width, x, bias, begin, end, out);
}

CompactTable CompactTable::Encode(TableEncoding encoding, const float* data, int64_t rows,
                                  int64_t width) {
  absl::StatusOr<CompactTable> table =
      Encode(encoding, rows, width, [&](int64_t begin, int64_t end, float* out) {
        std::copy(data + begin * width, data + end * width, out);
        return absl::OkStatus();
      });
  return *std::move(table);  // The reader never fails.
}

absl::StatusOr<CompactTable> CompactTable::Encode(TableEncoding encoding, int64_t rows,
                                                  int64_t width, const RowReader& read,
                                                  int64_t slice_rows) {
  CompactTable t;
  t.encoding_ = encoding;
  t.rows_ = rows;
  t.width_ = width;
  std::vector<float> slice;
  // visit(begin, end, rows [begin, end) of the table) for consecutive slices.
  auto for_each_slice = [&](const auto& visit) {
    for (int64_t begin = 0; begin < rows; begin += slice_rows) {
      const int64_t end = std::min(rows, begin + slice_rows);
      slice.resize((end - begin) * width);
      if (absl::Status s = read(begin, end, slice.data()); !s.ok()) return s;
      visit(begin, end, slice.data());
    }
    return absl::OkStatus();
  };
  if (encoding == TableEncoding::kHalf) {
    t.half_.resize(rows * width);
    absl::Status s = for_each_slice([&](int64_t begin, int64_t end, const float* values) {
      uint16_t* out = t.half_.data() + begin * width;
      for (int64_t k = 0; k < (end - begin) * width; ++k) out[k] = FloatToHalf(values[k]);
    });
    if (!s.ok()) return s;
    return t;
  }
  t.column_scale_.assign(width, 0.0f);
  absl::Status s = for_each_slice([&](int64_t begin, int64_t end, const float* values) {
    for (int64_t k = 0; k < (end - begin) * width; ++k) {
      float& c = t.column_scale_[k % width];
      c = std::max(c, std::abs(values[k]));
    }
  });
  if (!s.ok()) return s;
  for (float& c : t.column_scale_) c = c > 0.0f ? c : 1.0f;
  t.int8_.resize(rows * width);
  t.row_scale_.resize(rows);
  s = for_each_slice([&](int64_t begin, int64_t end, const float* values) {
    for (int64_t i = begin; i < end; ++i) t.EncodeInt8Row(i, values + (i - begin) * width);
  });
  if (!s.ok()) return s;
  return t;
}

void CompactTable::EncodeInt8Row(int64_t i, const float* row) {
  float most = 0.0f;  // Largest |entry| / column scale: in [0, 1].
  for (int64_t j = 0; j < width_; ++j) most = std::max(most, std::abs(row[j]) / column_scale_[j]);
  const float step = most > 0.0f ? most / 127.0f : 1.0f;
  row_scale_[i] = step;
  for (int64_t j = 0; j < width_; ++j) {
    const float q = std::nearbyint(row[j] / column_scale_[j] / step);
    int8_[i * width_ + j] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
  }
}

int64_t CompactTable::bytes() const {
  return static_cast<int64_t>(half_.size() * sizeof(uint16_t) + int8_.size() +
                              (row_scale_.size() + column_scale_.size()) * sizeof(float));
}

void CompactTable::Score(const float* x, const float* bias, int64_t begin, int64_t end,
                         float* out) const {
  if (encoding_ == TableEncoding::kHalf) {
    return HalfMatVec(half_.data(), width_, x, bias, begin, end, out);
  }
  std::vector<float> scaled(width_);  // x with the column scales folded in.
  for (int64_t j = 0; j < width_; ++j) scaled[j] = x[j] * column_scale_[j];
  Int8MatVec(int8_.data(), row_scale_.data(), width_, scaled.data(), bias, begin, end, out);
}

void CompactTable::Row(int64_t i, float* out) const {
  if (encoding_ == TableEncoding::kHalf) {
    for (int64_t j = 0; j < width_; ++j) out[j] = HalfToFloat(half_[i * width_ + j]);
    return;
  }
  for (int64_t j = 0; j < width_; ++j) {
    out[j] = static_cast<float>(int8_[i * width_ + j]) * row_scale_[i] * column_scale_[j];
  }
}

}  // namespace recsys::core
