#include "core/half_table.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
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

bool HasAvx2F16c() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
                          __builtin_cpu_supports("fma");
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

}  // namespace recsys::core
