/* src/core/reference.c: host reference computations for checking device results. */
#include <math.h>

#include "reference.h"

void ldm_ref_sgemm(const ldm_gemm_shape *s, float alpha, const float *A, const float *B, float beta,
                   float *C, double *bound) {
    for (size_t m = 0; m < s->M; m++) {
        for (size_t n = 0; n < s->N; n++) {
            double acc = 0.0, mag = 0.0;
            for (size_t k = 0; k < s->K; k++) {
                double a = s->trans_a ? A[k * s->lda + m] : A[m * s->lda + k];
                double b = s->trans_b ? B[n * s->ldb + k] : B[k * s->ldb + n];
                acc += a * b;
                mag += fabs(a * b);
            }
            float *c = &C[m * s->ldc + n];
            double old = beta != 0.0f ? (double)beta * *c : 0.0;
            *c = (float)(alpha * acc + old);
            if (bound) bound[m * s->N + n] = fabs(alpha) * mag + fabs(old);
        }
    }
}

double ldm_ref_error_ratio(const float *got, const float *want, const double *scale, size_t n,
                           double tol_rel, double tol_abs, size_t *worst) {
    double max_ratio = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double sc = scale ? scale[i] : fabs((double)want[i]);
        double ratio = 0.0; /* both NaN: equal */
        if (!(isnan(got[i]) && isnan(want[i]))) {
            ratio = fabs((double)got[i] - (double)want[i]) / (tol_rel * sc + tol_abs);
            if (isnan(ratio)) ratio = INFINITY; /* a NaN where none belongs */
        }
        if (ratio > max_ratio) {
            max_ratio = ratio;
            at = i;
        }
    }
    if (worst) *worst = at;
    return max_ratio;
}

void ldm_ref_fill_uniform(float *x, size_t n, unsigned long long seed, float lo, float hi) {
    unsigned long long state = seed;
    for (size_t i = 0; i < n; i++) {
        unsigned long long z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        x[i] = lo + (hi - lo) * (float)((double)(z >> 40) / (double)(1ull << 24));
    }
}
