// The weight gradient of a stride-1 "SAME" 2-D convolution (NHWC input, HWIO kernel), for XLA:CPU, where XLA's own
// lowering of it runs on one core through a large-window Eigen convolution (BENCHMARKS.md, "The U-Net's training
// step against PyTorch"). Built by gen_jax/nn/native.py with the machine's C++ compiler; registered as the XLA FFI
// target "gen_jax_conv_weight_grad" and called by gen_jax/nn/cpu_conv.py.
//
//   dw[a, b, i, o] = sum_{n, h, w} x[n, h + a - K/2, w + b - K/2, i] * g[n, h, w, o]   (x read as zero outside)
//
// The batch is split into parts, one per thread of XLA's intra-op pool (partial sums, added in a fixed order, so the
// result does not depend on which thread ran which part). Each part walks one image at a time (its x and g stay in
// cache) and, per tap, accumulates a tile of IB input channels x OV vectors of output channels in registers.
#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

#if defined(__AVX512F__)
constexpr int VB = 16;  // floats per vector
#else
constexpr int VB = 8;
#endif
typedef float vf __attribute__((vector_size(VB * 4)));
typedef float vfu __attribute__((vector_size(VB * 4), aligned(4)));
constexpr int kMaxAcc = VB == 16 ? 24 : 12;  // accumulator vectors in a register tile (of 32 / 16 registers)

struct Shape {
  int64_t n, h, w, c, o, k;
};

template <int IB, int OV>
void Tile(const float* x, const float* g, float* dw, const Shape& s, int64_t n, int a, int b, int64_t i0,
          int64_t o0) {
  const int64_t pad = s.k / 2, H = s.h, W = s.w, C = s.c, O = s.o;
  float* d = dw + ((a * s.k + b) * C + i0) * O + o0;
  vf acc[IB][OV];
  for (int ii = 0; ii < IB; ++ii)
    for (int v = 0; v < OV; ++v) acc[ii][v] = *(const vfu*)(d + ii * O + v * VB);
  const int64_t h0 = std::max<int64_t>(0, pad - a), h1 = std::min<int64_t>(H, H + pad - a);
  const int64_t w0 = std::max<int64_t>(0, pad - b), w1 = std::min<int64_t>(W, W + pad - b);
  for (int64_t h = h0; h < h1; ++h) {
    const float* xr = x + ((n * H + h + a - pad) * W + (w0 + b - pad)) * C + i0;
    const float* gr = g + ((n * H + h) * W + w0) * O + o0;
    for (int64_t w = w0; w < w1; ++w, xr += C, gr += O) {
      vf gv[OV];
#pragma GCC unroll 8
      for (int v = 0; v < OV; ++v) gv[v] = *(const vfu*)(gr + v * VB);
#pragma GCC unroll 32
      for (int ii = 0; ii < IB; ++ii) {
        const float xs = xr[ii];
#pragma GCC unroll 8
        for (int v = 0; v < OV; ++v) acc[ii][v] += xs * gv[v];
      }
    }
  }
  for (int ii = 0; ii < IB; ++ii)
    for (int v = 0; v < OV; ++v) *(vfu*)(d + ii * O + v * VB) = acc[ii][v];
}

typedef void (*TileFn)(const float*, const float*, float*, const Shape&, int64_t, int, int, int64_t, int64_t);

template <int OV>
TileFn Pick(int ib) {
  switch (ib) {
    case 16: return Tile<16, OV>;
    case 12: return Tile<12, OV>;
    case 8: return Tile<8, OV>;
    case 6: return Tile<6, OV>;
    case 4: return Tile<4, OV>;
    case 2: return Tile<2, OV>;
    default: return Tile<1, OV>;
  }
}

// Adds the images [n0, n1) into dw (zeroed by the caller).
void Part(const float* x, const float* g, float* dw, const Shape& s, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n)
    for (int a = 0; a < s.k; ++a)
      for (int b = 0; b < s.k; ++b)
        for (int64_t o0 = 0; o0 < s.o;) {
          const int ov = (s.o - o0 >= 2 * VB) ? 2 : 1;
          const int ib_max = std::min(16, kMaxAcc / ov);
          for (int64_t i0 = 0; i0 < s.c;) {
            int ib = 1;
            for (int c : {16, 12, 8, 6, 4, 2, 1})
              if (c <= ib_max && c <= s.c - i0) {
                ib = c;
                break;
              }
            (ov == 2 ? Pick<2>(ib) : Pick<1>(ib))(x, g, dw, s, n, a, b, i0, o0);
            i0 += ib;
          }
          o0 += ov * VB;
        }
}

// ---- forward: y[n, h, w, o] = sum_{a, b, i} x[n, h + a - K/2, w + b - K/2, i] k[a, b, i, o] ------------------------
// Per image, x is copied into a zero-bordered buffer (cache-resident); each output row is cut into blocks of PW
// pixels whose PW x OV accumulator vectors stay in registers over every tap and input channel.
template <int PW, int OV>
void RowBlock(const float* xp, const float* k, float* y, const Shape& s, int64_t wp, int64_t h, int64_t w0,
              int64_t o0) {
  const int64_t C = s.c, O = s.o;
  vf acc[PW][OV];
  for (int p = 0; p < PW; ++p)
    for (int v = 0; v < OV; ++v) acc[p][v] = vf{};
  for (int a = 0; a < s.k; ++a)
    for (int b = 0; b < s.k; ++b) {
      const float* xr = xp + ((h + a) * wp + w0 + b) * C;
      const float* kr = k + ((a * s.k + b) * C) * O + o0;
      for (int64_t i = 0; i < C; ++i, kr += O) {
        vf kv[OV];
#pragma GCC unroll 8
        for (int v = 0; v < OV; ++v) kv[v] = *(const vfu*)(kr + v * VB);
#pragma GCC unroll 32
        for (int p = 0; p < PW; ++p) {
          const float xs = xr[p * C + i];
#pragma GCC unroll 8
          for (int v = 0; v < OV; ++v) acc[p][v] += xs * kv[v];
        }
      }
    }
  float* yr = y + (h * s.w + w0) * O + o0;
  for (int p = 0; p < PW; ++p)
    for (int v = 0; v < OV; ++v) *(vfu*)(yr + p * O + v * VB) = acc[p][v];
}

typedef void (*RowFn)(const float*, const float*, float*, const Shape&, int64_t, int64_t, int64_t, int64_t);

template <int OV>
RowFn PickRow(int pw) {
  switch (pw) {
    case 14: return RowBlock<14, OV>;
    case 12: return RowBlock<12, OV>;
    case 8: return RowBlock<8, OV>;
    case 7: return RowBlock<7, OV>;
    case 6: return RowBlock<6, OV>;
    case 4: return RowBlock<4, OV>;
    case 2: return RowBlock<2, OV>;
    default: return RowBlock<1, OV>;
  }
}


// Images [n0, n1) of y.
void ForwardPart(const float* x, const float* k, float* y, const Shape& s, int64_t n0, int64_t n1) {
  const int64_t pad = s.k / 2, hp = s.h + 2 * pad, wp = s.w + 2 * pad, C = s.c;
  std::vector<float> xp(hp * wp * C, 0.f);
  for (int64_t n = n0; n < n1; ++n) {
    const float* xn = x + n * s.h * s.w * C;
    for (int64_t h = 0; h < s.h; ++h)
      std::copy(xn + h * s.w * C, xn + (h + 1) * s.w * C, xp.data() + ((h + pad) * wp + pad) * C);
    float* yn = y + n * s.h * s.w * s.o;
    for (int64_t h = 0; h < s.h; ++h)
      for (int64_t o0 = 0; o0 < s.o;) {
        const int ov = s.o - o0 >= 2 * VB ? 2 : 1;
        for (int64_t w0 = 0; w0 < s.w;) {
          int pw = 1;
          for (int c : {14, 12, 8, 7, 6, 4, 2, 1})
            if (c * ov <= kMaxAcc && c <= s.w - w0) {
              pw = c;
              break;
            }
          (ov == 2 ? PickRow<2>(pw) : PickRow<1>(pw))(xp.data(), k, yn, s, wp, h, w0, o0);
          w0 += pw;
        }
        o0 += ov * VB;
      }
  }
}


// ---- group norm (+ SiLU): y = act((x - mean_g) rstd_g scale_c + bias_c), statistics per image and group ----------
typedef int32_t vi __attribute__((vector_size(VB * 4)));

inline vf Splat(float v) { return vf{} + v; }

// exp for |x| < 88 (clamped), Cephes' single-precision polynomial: about 1 ulp.
inline vf Exp(vf x) {
  x = x < Splat(-87.3f) ? Splat(-87.3f) : x;
  x = x > Splat(88.3f) ? Splat(88.3f) : x;
  const vf magic = Splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vf k = (x * Splat(1.44269504088896341f) + magic) - magic;
  vf r = x - k * Splat(0.693359375f) - k * Splat(-2.12194440e-4f);
  vf p = Splat(1.9875691500e-4f);
  p = p * r + Splat(1.3981999507e-3f);
  p = p * r + Splat(8.3334519073e-3f);
  p = p * r + Splat(4.1665795894e-2f);
  p = p * r + Splat(1.6666665459e-1f);
  p = p * r + Splat(5.0000001201e-1f);
  p = p * r * r + r + Splat(1.0f);
  vi e = (__builtin_convertvector(k, vi) + 127) << 23;
  return p * (vf)e;
}

inline vf Sigmoid(vf z) { return Splat(1.0f) / (Splat(1.0f) + Exp(-z)); }

struct NormShape {
  int64_t n, hw, c, groups;
};

// Per-image statistics and the forward pass for images [n0, n1).
void NormForwardPart(const float* x, const float* scale, const float* bias, float* y, float* mean, float* rstd,
                     const NormShape& s, float eps, bool silu, int64_t n0, int64_t n1) {
  const int64_t C = s.c, G = s.groups, cg = C / G, HW = s.hw;
  std::vector<float> acc(C), meanc(C), a(C);
  std::vector<double> gsum(G);
  for (int64_t n = n0; n < n1; ++n) {
    const float* xn = x + n * HW * C;
    float* yn = y + n * HW * C;
    // sums of x minus the first pixel's value: small terms, so the mean keeps its precision at any offset
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t p = 1; p < HW; ++p)
      for (int64_t c = 0; c < C; c += VB) *(vfu*)&acc[c] += *(const vfu*)(xn + p * C + c) - *(const vfu*)(xn + c);
    std::fill(gsum.begin(), gsum.end(), 0.0);
    for (int64_t c = 0; c < C; ++c) gsum[c / cg] += static_cast<double>(xn[c]) + static_cast<double>(acc[c]) / HW;
    for (int64_t c = 0; c < C; ++c) meanc[c] = static_cast<float>(gsum[c / cg] / cg);
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t c = 0; c < C; c += VB) {
        vf d = *(const vfu*)(xn + p * C + c) - *(vfu*)&meanc[c];
        *(vfu*)&acc[c] += d * d;
      }
    std::fill(gsum.begin(), gsum.end(), 0.0);
    for (int64_t c = 0; c < C; ++c) gsum[c / cg] += acc[c];
    for (int64_t g = 0; g < G; ++g) {
      const float var = static_cast<float>(gsum[g] / (HW * cg));
      mean[n * G + g] = meanc[g * cg];
      rstd[n * G + g] = 1.0f / std::sqrt(var + eps);
    }
    for (int64_t c = 0; c < C; ++c) a[c] = rstd[n * G + c / cg] * scale[c];
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t c = 0; c < C; c += VB) {  // (x - mean) first: no cancellation where |mean| >> std
        vf z = (*(const vfu*)(xn + p * C + c) - *(vfu*)&meanc[c]) * *(vfu*)&a[c] + *(const vfu*)(bias + c);
        *(vfu*)(yn + p * C + c) = silu ? z * Sigmoid(z) : z;
      }
  }
}

// The backward pass for images [n0, n1): dx, and this part's sums for dscale and dbias.
void NormBackwardPart(const float* x, const float* scale, const float* bias, const float* mean, const float* rstd,
                      const float* dy, float* dx, float* dscale, float* dbias, const NormShape& s, bool silu,
                      int64_t n0, int64_t n1) {
  const int64_t C = s.c, G = s.groups, cg = C / G, HW = s.hw;
  std::vector<float> s1(C), s2(C), meanc(C), rstdc(C), ac(C), bc(C);
  std::vector<double> ga(G), gb(G);
  for (int64_t n = n0; n < n1; ++n) {
    const float* xn = x + n * HW * C;
    const float* dyn = dy + n * HW * C;
    float* dxn = dx + n * HW * C;
    for (int64_t c = 0; c < C; ++c) {
      meanc[c] = mean[n * G + c / cg];
      rstdc[c] = rstd[n * G + c / cg];
    }
    std::fill(s1.begin(), s1.end(), 0.f);
    std::fill(s2.begin(), s2.end(), 0.f);
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t c = 0; c < C; c += VB) {
        const vf xhat = (*(const vfu*)(xn + p * C + c) - *(vfu*)&meanc[c]) * *(vfu*)&rstdc[c];
        vf dz = *(const vfu*)(dyn + p * C + c);
        if (silu) {
          const vf z = xhat * *(const vfu*)(scale + c) + *(const vfu*)(bias + c);
          const vf sg = Sigmoid(z);
          dz = dz * sg * (Splat(1.0f) + z * (Splat(1.0f) - sg));
        }
        *(vfu*)(dxn + p * C + c) = dz;  // kept for the second pass
        *(vfu*)&s1[c] += dz;
        *(vfu*)&s2[c] += dz * xhat;
      }
    std::fill(ga.begin(), ga.end(), 0.0);
    std::fill(gb.begin(), gb.end(), 0.0);
    for (int64_t c = 0; c < C; ++c) {
      dbias[c] += s1[c];
      dscale[c] += s2[c];
      ga[c / cg] += static_cast<double>(scale[c]) * s1[c];
      gb[c / cg] += static_cast<double>(scale[c]) * s2[c];
    }
    for (int64_t c = 0; c < C; ++c) {
      ac[c] = static_cast<float>(ga[c / cg] / (HW * cg));
      bc[c] = static_cast<float>(gb[c / cg] / (HW * cg));
    }
    for (int64_t p = 0; p < HW; ++p)
      for (int64_t c = 0; c < C; c += VB) {
        const vf xhat = (*(const vfu*)(xn + p * C + c) - *(vfu*)&meanc[c]) * *(vfu*)&rstdc[c];
        const vf dz = *(const vfu*)(dxn + p * C + c);
        *(vfu*)(dxn + p * C + c) =
            *(vfu*)&rstdc[c] * (*(const vfu*)(scale + c) * dz - *(vfu*)&ac[c] - xhat * *(vfu*)&bc[c]);
      }
  }
}

// Runs parts 0..parts-1 of a job on the calling thread and on XLA's intra-op pool: every thread claims parts until
// none is left, so the call finishes even where the pool's threads are busy (or it is the pool's thread itself).
// Late tasks find nothing to claim; the job is shared, so they never touch freed memory.
struct Job {
  std::function<void(int)> run;
  int parts = 1;
  std::atomic<int> next{0}, done{0};
  std::mutex mu;
  std::condition_variable cv;

  void Work() {
    for (int p; (p = next.fetch_add(1)) < parts;) {
      run(p);
      if (done.fetch_add(1) + 1 == parts) {
        std::lock_guard<std::mutex> lock(mu);
        cv.notify_all();
      }
    }
  }
};

void RunParts(ffi::ThreadPool& pool, int parts, std::function<void(int)> run) {
  auto job = std::make_shared<Job>();
  job->run = std::move(run);
  job->parts = parts;
  for (int t = 1; t < parts; ++t) pool.Schedule([job] { job->Work(); });
  job->Work();
  std::unique_lock<std::mutex> lock(job->mu);
  job->cv.wait(lock, [&] { return job->done.load() == job->parts; });
}

int NumParts(ffi::ThreadPool& pool, int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n, pool.num_threads())));
}

std::pair<int64_t, int64_t> Range(int64_t n, int parts, int p) {
  const int64_t per = (n + parts - 1) / parts;
  return {std::min(n, p * per), std::min(n, (p + 1) * per)};
}

// Runs f(part, first, end) for `parts` contiguous ranges of the n examples, in parallel (RunParts).
void OverBatch(ffi::ThreadPool& pool, int64_t n, int parts, const std::function<void(int, int64_t, int64_t)>& f) {
  RunParts(pool, parts, [&](int p) {
    auto [n0, n1] = Range(n, parts, p);
    f(p, n0, n1);
  });
}

// out[j] = sum over parts of partial[p][j], the parts added in order (the same result whichever thread ran each).
void SumParts(const std::vector<std::vector<float>>& partial, float* out) {
  for (size_t j = 0; j < partial[0].size(); ++j) {
    float sum = 0.f;
    for (const auto& part : partial) sum += part[j];
    out[j] = sum;
  }
}

ffi::Error ConvWeightGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g,
                              ffi::ResultBuffer<ffi::F32> dw) {
  auto xd = x.dimensions(), gd = g.dimensions(), wd = dw->dimensions();
  if (xd.size() != 4 || gd.size() != 4 || wd.size() != 4)
    return ffi::Error::InvalidArgument("conv weight gradient: x, g and dw must be 4-D (NHWC, NHWC, HWIO)");
  const Shape s{xd[0], xd[1], xd[2], xd[3], gd[3], wd[0]};
  if (gd[0] != s.n || gd[1] != s.h || gd[2] != s.w || wd[1] != s.k || wd[2] != s.c || wd[3] != s.o ||
      s.k % 2 != 1 || s.o % VB != 0)
    return ffi::Error::InvalidArgument("conv weight gradient: shapes do not match an odd square kernel with a "
                                       "multiple of the vector width of output channels");
  const int64_t size = s.k * s.k * s.c * s.o;
  const int parts = NumParts(pool, s.n);
  std::vector<std::vector<float>> partial(parts, std::vector<float>(size, 0.f));
  const float *xp = x.typed_data(), *gp = g.typed_data();
  OverBatch(pool, s.n, parts, [&](int p, int64_t n0, int64_t n1) { Part(xp, gp, partial[p].data(), s, n0, n1); });
  SumParts(partial, dw->typed_data());
  return ffi::Error::Success();
}

ffi::Error ConvForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                           ffi::ResultBuffer<ffi::F32> y) {
  auto xd = x.dimensions(), kd = k.dimensions(), yd = y->dimensions();
  if (xd.size() != 4 || kd.size() != 4 || yd.size() != 4)
    return ffi::Error::InvalidArgument("conv: x, kernel and y must be 4-D (NHWC, HWIO, NHWC)");
  const Shape s{xd[0], xd[1], xd[2], xd[3], kd[3], kd[0]};
  if (kd[1] != s.k || kd[2] != s.c || yd[0] != s.n || yd[1] != s.h || yd[2] != s.w || yd[3] != s.o ||
      s.k % 2 != 1 || s.o % VB != 0)
    return ffi::Error::InvalidArgument("conv: shapes do not match an odd square kernel with a multiple of the "
                                       "vector width of output channels");
  const int parts = NumParts(pool, s.n);
  const float *xp = x.typed_data(), *kp = k.typed_data();
  float* yp = y->typed_data();
  OverBatch(pool, s.n, parts, [&](int, int64_t n0, int64_t n1) { ForwardPart(xp, kp, yp, s, n0, n1); });
  return ffi::Error::Success();
}


ffi::Error CheckNorm(ffi::Span<const int64_t> xd, int64_t groups, NormShape* s) {
  if (xd.size() < 2) return ffi::Error::InvalidArgument("group norm: x must have a batch and a channel axis");
  int64_t hw = 1;
  for (size_t i = 1; i + 1 < xd.size(); ++i) hw *= xd[i];
  *s = NormShape{xd[0], hw, xd[xd.size() - 1], groups};
  if (groups <= 0 || s->c % groups != 0 || s->c % VB != 0)
    return ffi::Error::InvalidArgument("group norm: groups must divide the channels, a multiple of the vector width");
  return ffi::Error::Success();
}

ffi::Error GroupNormForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                                ffi::Buffer<ffi::F32> bias, ffi::ResultBuffer<ffi::F32> y,
                                ffi::ResultBuffer<ffi::F32> mean, ffi::ResultBuffer<ffi::F32> rstd, int64_t groups,
                                float eps, int64_t silu) {
  NormShape s;
  if (auto e = CheckNorm(x.dimensions(), groups, &s); e.failure()) return e;
  const int parts = NumParts(pool, s.n);
  const float *xp = x.typed_data(), *sp = scale.typed_data(), *bp = bias.typed_data();
  float *yp = y->typed_data(), *mp = mean->typed_data(), *rp = rstd->typed_data();
  OverBatch(pool, s.n, parts, [&](int, int64_t n0, int64_t n1) {
    NormForwardPart(xp, sp, bp, yp, mp, rp, s, eps, silu != 0, n0, n1);
  });
  return ffi::Error::Success();
}

ffi::Error GroupNormBackwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                                 ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> mean, ffi::Buffer<ffi::F32> rstd,
                                 ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dx,
                                 ffi::ResultBuffer<ffi::F32> dscale, ffi::ResultBuffer<ffi::F32> dbias,
                                 int64_t groups, int64_t silu) {
  NormShape s;
  if (auto e = CheckNorm(x.dimensions(), groups, &s); e.failure()) return e;
  const int parts = NumParts(pool, s.n);
  std::vector<std::vector<float>> ps(parts, std::vector<float>(s.c, 0.f)), pb(parts, std::vector<float>(s.c, 0.f));
  OverBatch(pool, s.n, parts, [&](int p, int64_t n0, int64_t n1) {
    NormBackwardPart(x.typed_data(), scale.typed_data(), bias.typed_data(), mean.typed_data(), rstd.typed_data(),
                     dy.typed_data(), dx->typed_data(), ps[p].data(), pb[p].data(), s, silu != 0, n0, n1);
  });
  SumParts(ps, dscale->typed_data());
  SumParts(pb, dbias->typed_data());
  return ffi::Error::Success();
}


// ---- per-channel sums: out[c] = sum over every leading index of x[..., c] (a bias's gradient) ------------------------
ffi::Error ChannelSumImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> out) {
  auto xd = x.dimensions();
  if (xd.size() < 1) return ffi::Error::InvalidArgument("channel sum: x must have a channel axis");
  const int64_t C = xd[xd.size() - 1], M = C ? x.element_count() / C : 0;
  if (C % VB != 0) return ffi::Error::InvalidArgument("channel sum: channels must be a multiple of the vector width");
  const int parts = NumParts(pool, M / 256 + 1);  // a part sums at least 256 rows
  std::vector<std::vector<float>> partial(parts, std::vector<float>(C, 0.f));
  const float* xp = x.typed_data();
  OverBatch(pool, M, parts, [&](int p, int64_t m0, int64_t m1) {
    float* acc = partial[p].data();
    for (int64_t c = 0; c < C; c += VB) {
      vf a0{}, a1{}, a2{}, a3{};  // four rows at a time: independent chains
      int64_t m = m0;
      for (; m + 4 <= m1; m += 4) {
        a0 += *(const vfu*)(xp + m * C + c);
        a1 += *(const vfu*)(xp + (m + 1) * C + c);
        a2 += *(const vfu*)(xp + (m + 2) * C + c);
        a3 += *(const vfu*)(xp + (m + 3) * C + c);
      }
      for (; m < m1; ++m) a0 += *(const vfu*)(xp + m * C + c);
      *(vfu*)(acc + c) = (a0 + a1) + (a2 + a3);
    }
  });
  SumParts(partial, out->typed_data());
  return ffi::Error::Success();
}

}  // namespace

extern "C" int gen_jax_vector_width() { return VB; }

// (x, kernel) -> y and (x, g) -> dw: two f32 operands, one f32 result.
static auto TwoOperandsOneResult() {
  return ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<
      ffi::Buffer<ffi::F32>>();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxConvWeightGrad, ConvWeightGradImpl, TwoOperandsOneResult());
XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxConvForward, ConvForwardImpl, TwoOperandsOneResult());

XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxGroupNormForward, GroupNormForwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("groups")
                                  .Attr<float>("eps")
                                  .Attr<int64_t>("silu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxGroupNormBackward, GroupNormBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("groups")
                                  .Attr<int64_t>("silu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(GenJaxChannelSum, ChannelSumImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>());
