// Scalar types the kernels handle, and exact conversions between them.
//
// Torch-free on purpose: both the host compiler (CPU kernels) and nvcc (CUDA
// kernels) include this header, so fp16/bf16 are carried as raw 16-bit
// patterns and converted here with round-to-nearest-even, bit for bit as
// c10::Half / c10::BFloat16 do.  On the device the conversions use the
// hardware instructions (cvt.f32.f16, cvt.rn.f16.f32, cvt.rn.bf16.f32 on
// sm_80+): the same round-to-nearest-even, the same bits for every non-NaN
// value (a NaN stays a NaN, its payload may differ).  The host versions are
// what the CPU kernels, the CPU tests and the CUDA emulation run.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define SGS_HD __host__ __device__ __forceinline__
#else
#define SGS_HD inline
#endif

namespace sgs {

// The dtype tag a tensor carries across the torch-free boundary.
enum class DType : int32_t { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

// Storage types for the 16-bit formats: the raw bits, nothing else.
struct half_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

// A storage type passed as a value: dispatch_dtype's argument.
template <typename T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with T the storage type of `dtype`: the one switch over
// dtypes, run by the CPU kernels per chunk and by the CUDA functors per block.
template <typename F>
SGS_HD void dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: f(TypeTag<float>{}); break;
    case DType::Float64: f(TypeTag<double>{}); break;
    case DType::Float16: f(TypeTag<half_t>{}); break;
    case DType::BFloat16: f(TypeTag<bf16_t>{}); break;
  }
}

SGS_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

SGS_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// bfloat16 is the top half of a float32.
SGS_HD float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }

SGS_HD uint16_t float_to_bf16(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                             // round to nearest even
  return uint16_t(u >> 16);
#endif
}

// IEEE half <-> float, the branch-free algorithm of the FP16 library that
// c10::Half also uses (exact in both directions, round to nearest even).
SGS_HD float half_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = bits_to_float((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized = bits_to_float((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = 1u << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? float_to_bits(denormalized) : float_to_bits(normalized));
  return bits_to_float(result);
#endif
}

SGS_HD uint16_t float_to_half(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  const uint32_t w = float_to_bits(f);
  const float abs_f = bits_to_float(w & 0x7fffffffu);
  float base = (abs_f * scale_to_inf) * scale_to_zero;
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = bits_to_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_to_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
#endif
}

// Compute type of each storage type: float64 stays float64, the rest
// are computed in float32.
template <typename T> struct ComputeType { using type = float; };
template <> struct ComputeType<double> { using type = double; };
template <typename T> using compute_t = typename ComputeType<T>::type;

template <typename T> SGS_HD compute_t<T> load(const T* p, int64_t i) { return p[i]; }
template <> SGS_HD float load<half_t>(const half_t* p, int64_t i) { return half_to_float(p[i].bits); }
template <> SGS_HD float load<bf16_t>(const bf16_t* p, int64_t i) { return bf16_to_float(p[i].bits); }

template <typename T> SGS_HD void store(T* p, int64_t i, compute_t<T> v) { p[i] = v; }
template <> SGS_HD void store<half_t>(half_t* p, int64_t i, float v) { p[i].bits = float_to_half(v); }
template <> SGS_HD void store<bf16_t>(bf16_t* p, int64_t i, float v) { p[i].bits = float_to_bf16(v); }

}  // namespace sgs
