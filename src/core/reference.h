/* src/core/reference.h: host reference computations that device results are checked against, in
 * double precision, shared by the self-test and the tests. */
#ifndef LDMCL_CORE_REFERENCE_H
#define LDMCL_CORE_REFERENCE_H

#include <stddef.h>

#include "ldmcl/gemm.h"

/* C = alpha op(A) op(B) + beta C on the host (row-major, as ldm_gemm). If bound is not NULL,
 * bound[i] receives sum_k |op(A)[m,k] op(B)[k,n]| for each element, the scale of its rounding
 * error. */
void ldm_ref_sgemm(const ldm_gemm_shape *s, float alpha, const float *A, const float *B, float beta,
                   float *C, double *bound);

/* Largest |got - want| / (tol_rel * scale[i] + tol_abs) over n elements (<= 1 means within
 * tolerance; scale NULL means |want|). *worst receives the index of the worst element. */
double ldm_ref_error_ratio(const float *got, const float *want, const double *scale, size_t n,
                           double tol_rel, double tol_abs, size_t *worst);

/* Fills x with values uniform in [lo, hi) from a fixed generator (splitmix64) seeded by seed. */
void ldm_ref_fill_uniform(float *x, size_t n, unsigned long long seed, float lo, float hi);

#endif
