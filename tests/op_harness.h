/* tests/op_harness.h: one harness for every op test. It reads a reference file written by
 * tools/refgen/make_refs.py (tests/ref/<family>.safetensors) and, for each case:
 *   1. records the op on a graph whose inputs come from the file, generates the backward pass
 *      seeded with the file's upstream gradient, runs it twice without zeroing, and checks the
 *      result against the reference and every gradient against twice the reference (leaf
 *      gradients accumulate: the op's backward adds into an existing gradient);
 *   2. does the same with each input passed through x * 1 first, so that the op's backward
 *      overwrites a planned (reused, dirty) gradient buffer instead of adding to a leaf's;
 *   3. for the first case of each op, checks a few gradient elements against central finite
 *      differences of sum(out * dy) computed from the op's own forward pass (unless the case's
 *      metadata says "finite_differences": false: a gradient that is not the output's
 *      derivative by design, as through detach).
 * Relative error of an element: |got - want| / max(|want|, 1e-3 * max|want|); the bar is 1e-4,
 * except where PyTorch's own float32 computation of the same case (measured by make_refs.py
 * against float64) misses it: there the bar is twice PyTorch's float32 error. The worst error of
 * each op is printed beside PyTorch's. */
#ifndef LDMCL_TEST_OP_HARNESS_H
#define LDMCL_TEST_OP_HARNESS_H

#include "json.h"
#include "test_util.h"

/* Records the op of a case: in[] holds the case's inputs in the file's order. */
typedef ldm_tensor *(*op_builder)(ldm_graph *g, ldm_tensor **in, int n_in, const ldm_json *params);

typedef struct op_entry {
    const char *op; /* the "op" value of the cases it builds */
    op_builder build;
    unsigned keep_leaf; /* bit i: input i stays a leaf in step 2 (an op that views its rows) */
} op_entry;

#define OP_REL_TOL 1e-4

/* Runs every case of tests/ref/<family>.safetensors; fails the test on any mismatch or on a
 * case whose op has no entry. Under a GPU simulator ($LDMCL_TEST_SIMULATOR = a number of
 * elements, tests/sim/run.sh) only the cases whose tensors hold at most that many elements run,
 * each once (without step 2), and every op must have one; both_layouts runs the GPU layout only. */
void run_ref_family(const char *family, const op_entry *ops, int n_ops);
/* run_ref_family twice: with the kernels laid out for CPUs and with those for GPUs
 * (LDMCL_CPU_KERNELS=1, then 0), so both are checked on any test device. */
void run_ref_family_both_layouts(const char *family, const op_entry *ops, int n_ops);
/* run_ref_family with the GPU layout and $LDMCL_TUNABLES set to `tunables` (a variant of a
 * family's GPU kernels that its default tunables do not choose on the test device). */
void run_ref_family_gpu_tuned(const char *family, const op_entry *ops, int n_ops,
                              const char *tunables);
/* $LDMCL_TEST_SIMULATOR as a number (0 when unset). */
long op_simulator_budget(void);

/* Number parameter of a case (fails the test when missing). */
double case_number(const ldm_json *params, const char *key);

#endif
