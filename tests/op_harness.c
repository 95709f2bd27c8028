/* tests/op_harness.c: reference, accumulation and finite-difference checks of ops (see
 * op_harness.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/safetensors.h"
#include "op_harness.h"

#define MAX_INPUTS 8
#define FD_POINTS 4

typedef struct ref_case {
    const ldm_safetensors *st;
    const char *name;
    const ldm_json *params;
    int n_in;
    const char *in_names[MAX_INPUTS];
    int wants_grad[MAX_INPUTS];
} ref_case;

typedef struct op_worst {
    char op[64];
    double out_err, grad_err, fd_err;
    double torch_out_err, torch_grad_err; /* PyTorch float32 on the same cases */
} op_worst;

/* The bar for a case: 1e-4, or twice PyTorch's own float32 error where that is larger. */
static double bar(const ref_case *c, const char *key) {
    const ldm_json *v = ldm_json_get(c->params, key);
    double torch_err = v && v->type == LDM_JSON_NUMBER ? v->number : 0.0;
    return torch_err * 2.0 > OP_REL_TOL ? torch_err * 2.0 : OP_REL_TOL;
}

double case_number(const ldm_json *params, const char *key) {
    const ldm_json *v = ldm_json_get(params, key);
    if (!v || v->type != LDM_JSON_NUMBER) fail_msg("case parameter '%s' missing", key);
    return v->number;
}

/* Loads "<case>.<suffix>" as floats; *shape/ndim receive its shape. */
static float *load(const ref_case *c, const char *suffix, int *ndim, int *shape) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", c->name, suffix);
    const ldm_st_tensor *t = ldm_safetensors_find(c->st, key);
    if (!t) fail_msg("reference tensor '%s' missing", key);
    float *data = malloc((t->numel ? t->numel : 1) * sizeof *data);
    assert_non_null(data);
    assert_status(ldm_safetensors_read_f32(c->st, t, data), LDM_OK);
    if (ndim) {
        *ndim = t->ndim;
        for (int i = 0; i < t->ndim; i++)
            shape[i] = (int)t->shape[i];
        if (t->ndim == 0) { /* a 0-d tensor is one element */
            *ndim = 1;
            shape[0] = 1;
        }
    }
    return data;
}

static double rel_error(const float *got, const float *want, size_t n, double factor) {
    double maxw = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        maxw = fmax(maxw, fabs(factor * want[i]));
    double floor = maxw > 0 ? 1e-3 * maxw : 1e-30;
    for (size_t i = 0; i < n; i++) {
        double w = factor * want[i];
        double e = fabs(got[i] - w) / fmax(fabs(w), floor);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            if (getenv("LDMCL_TEST_WORST") && *getenv("LDMCL_TEST_WORST"))
                printf("    worst so far: element %zu got %.9g want %.9g (max |want| %.3g)\n", i,
                       got[i], w, maxw);
        }
    }
    return worst;
}

/* A compiled graph of one case. */
typedef struct case_graph {
    ldm_graph *g;
    ldm_tensor *in[MAX_INPUTS], *out, *seed;
    float *in_data[MAX_INPUTS], *want_out, *dy;
} case_graph;

static void build_case(ldm_ctx *ctx, const ref_case *c, const op_entry *op, int via_scale,
                       case_graph *cg) {
    memset(cg, 0, sizeof *cg);
    assert_status(ldm_graph_create(ctx, &cg->g), LDM_OK);
    ldm_tensor *args[MAX_INPUTS];
    for (int i = 0; i < c->n_in; i++) {
        int ndim, shape[LDM_MAX_DIMS];
        char suffix[128];
        snprintf(suffix, sizeof suffix, "in.%s", c->in_names[i]);
        cg->in_data[i] = load(c, suffix, &ndim, shape);
        cg->in[i] = ldm_graph_input(cg->g, c->in_names[i], ndim, shape);
        ldm_tensor_set_requires_grad(cg->in[i], c->wants_grad[i]);
        int scaled = via_scale && c->wants_grad[i] && !((op->keep_leaf >> i) & 1);
        args[i] = scaled ? ldm_scale(cg->g, cg->in[i], 1.0f) : cg->in[i];
    }
    cg->out = op->build(cg->g, args, c->n_in, c->params);
    if (!cg->out) fail_msg("case %s: recording failed: %s", c->name, ldm_graph_error(cg->g));
    ldm_tensor_keep(cg->out);
    int ndim, shape[LDM_MAX_DIMS];
    cg->want_out = load(c, "out", &ndim, shape);
    cg->dy = load(c, "dy", NULL, NULL);
    size_t want_numel = 1;
    for (int i = 0; i < ndim; i++)
        want_numel *= (size_t)shape[i];
    if (ldm_tensor_numel(cg->out) != want_numel)
        fail_msg("case %s: the op's result has %zu elements, the reference %zu", c->name,
                 ldm_tensor_numel(cg->out), want_numel);
    int any_grad = 0;
    for (int i = 0; i < c->n_in; i++)
        any_grad |= c->wants_grad[i];
    if (any_grad) {
        cg->seed = ldm_graph_input(cg->g, "dy", ndim, shape);
        assert_status(ldm_graph_backward_seeded(cg->g, cg->out, cg->seed), LDM_OK);
    }
    assert_status(ldm_graph_compile(cg->g), LDM_OK);
    for (int i = 0; i < c->n_in; i++)
        assert_status(ldm_tensor_write(cg->in[i], cg->in_data[i]), LDM_OK);
    if (cg->seed) assert_status(ldm_tensor_write(cg->seed, cg->dy), LDM_OK);
}

static void free_case(case_graph *cg, int n_in) {
    for (int i = 0; i < n_in; i++)
        free(cg->in_data[i]);
    free(cg->want_out);
    free(cg->dy);
    ldm_graph_destroy(cg->g);
}

/* sum(out * dy) in double after a run. */
static double fake_loss(case_graph *cg) {
    size_t n = ldm_tensor_numel(cg->out);
    float *y = malloc(n * sizeof *y);
    assert_non_null(y);
    assert_status(ldm_graph_run(cg->g), LDM_OK);
    assert_status(ldm_tensor_read(cg->out, y), LDM_OK);
    double l = 0.0;
    for (size_t i = 0; i < n; i++)
        l += (double)y[i] * cg->dy[i];
    free(y);
    return l;
}

/* Checks a few elements of each input gradient against central differences; returns the worst
 * |fd - analytic| / (|analytic| + mean|analytic| + 1e-3). */
static double finite_differences(const ref_case *c, case_graph *cg, float **grads) {
    double worst = 0.0;
    for (int i = 0; i < c->n_in; i++) {
        if (!c->wants_grad[i]) continue;
        size_t n = ldm_tensor_numel(cg->in[i]);
        double mean_abs = 0.0;
        for (size_t k = 0; k < n; k++)
            mean_abs += fabs(grads[i][k]) / 2.0 / (double)n;
        for (int p = 0; p < FD_POINTS && p < (int)n; p++) {
            size_t k = (size_t)p * (n - 1) / (FD_POINTS > 1 ? FD_POINTS - 1 : 1);
            float *x = cg->in_data[i], keep = x[k];
            float h = 1e-2f * fmaxf(1.0f, fabsf(keep));
            x[k] = keep + h;
            assert_status(ldm_tensor_write(cg->in[i], x), LDM_OK);
            double lp = fake_loss(cg);
            x[k] = keep - h;
            assert_status(ldm_tensor_write(cg->in[i], x), LDM_OK);
            double lm = fake_loss(cg);
            x[k] = keep;
            assert_status(ldm_tensor_write(cg->in[i], x), LDM_OK);
            double fd = (lp - lm) / (2.0 * h), an = grads[i][k] / 2.0; /* grads hold two runs */
            double e = fabs(fd - an) / (fabs(an) + mean_abs + 1e-3);
            if (e > 2e-2)
                fail_msg("case %s: d/d %s[%zu]: finite difference %.6g, backward %.6g", c->name,
                         c->in_names[i], k, fd, an);
            worst = fmax(worst, e);
        }
    }
    return worst;
}

/* Runs one case in one mode; updates w. */
static void run_case(ldm_ctx *ctx, const ref_case *c, const op_entry *op, int via_scale, int do_fd,
                     op_worst *w) {
    case_graph cg;
    build_case(ctx, c, op, via_scale, &cg);
    assert_status(ldm_graph_zero_grads(cg.g), LDM_OK);
    assert_status(ldm_graph_run(cg.g), LDM_OK);
    assert_status(ldm_graph_run(cg.g), LDM_OK);
    size_t n = ldm_tensor_numel(cg.out);
    float *y = malloc(n * sizeof *y);
    assert_non_null(y);
    assert_status(ldm_tensor_read(cg.out, y), LDM_OK);
    double e = rel_error(y, cg.want_out, n, 1.0);
    if (e > bar(c, "torch_fp32_out_err"))
        fail_msg("case %s: result off by %.3g (relative; bar %.3g)", c->name, e,
                 bar(c, "torch_fp32_out_err"));
    w->out_err = fmax(w->out_err, e);
    free(y);
    float *grads[MAX_INPUTS] = {0};
    for (int i = 0; i < c->n_in; i++) {
        if (!c->wants_grad[i]) continue;
        size_t m = ldm_tensor_numel(cg.in[i]);
        grads[i] = malloc(m * sizeof *grads[i]);
        assert_non_null(grads[i]);
        assert_status(ldm_tensor_read(ldm_tensor_grad(cg.in[i]), grads[i]), LDM_OK);
        char suffix[128];
        snprintf(suffix, sizeof suffix, "grad.%s", c->in_names[i]);
        float *want = load(c, suffix, NULL, NULL);
        double ge = rel_error(grads[i], want, m, 2.0);
        if (ge > bar(c, "torch_fp32_grad_err"))
            fail_msg("case %s%s: gradient of %s off by %.3g (relative; bar %.3g)", c->name,
                     via_scale ? " (through x*1)" : "", c->in_names[i], ge,
                     bar(c, "torch_fp32_grad_err"));
        w->grad_err = fmax(w->grad_err, ge);
        free(want);
    }
    if (do_fd) w->fd_err = fmax(w->fd_err, finite_differences(c, &cg, grads));
    for (int i = 0; i < c->n_in; i++)
        free(grads[i]);
    free_case(&cg, c->n_in);
}

long op_simulator_budget(void) {
    const char *v = getenv("LDMCL_TEST_SIMULATOR");
    return v && *v ? strtol(v, NULL, 10) : 0;
}

/* The elements of a case's tensors (inputs, gradients, output, upstream gradient). */
static size_t case_elements(const ldm_safetensors *st, const char *name) {
    size_t len = strlen(name), total = 0;
    for (size_t t = 0; t < ldm_safetensors_count(st); t++) {
        const ldm_st_tensor *x = ldm_safetensors_at(st, t);
        if (!strncmp(x->name, name, len) && x->name[len] == '.') total += x->numel;
    }
    return total;
}

void run_ref_family(const char *family, const op_entry *ops, int n_ops) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.safetensors", LDMCL_TEST_REF_DIR, family);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    op_worst w[32];
    int n_w = 0, n_cases = 0, n_run = 0;
    long budget = op_simulator_budget();
    /* Cases are the metadata keys; walk the tensors and take each "<case>.out". */
    for (size_t t = 0; t < ldm_safetensors_count(st); t++) {
        const char *tname = ldm_safetensors_at(st, t)->name;
        size_t len = strlen(tname);
        if (len < 5 || strcmp(tname + len - 4, ".out") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 4), tname);
        n_cases++;
        if (budget > 0 && case_elements(st, name) > (size_t)budget) continue;
        n_run++;
        const char *meta = ldm_safetensors_metadata(st, name);
        if (!meta) fail_msg("%s: case %s has no metadata", path, name);
        char err[128];
        ldm_json *params = ldm_json_parse(meta, strlen(meta), err, sizeof err);
        if (!params) fail_msg("%s: case %s: bad metadata: %s", path, name, err);
        ref_case c = {st, name, params, 0, {0}, {0}};
        const ldm_json *ins = ldm_json_get(params, "inputs"), *gr = ldm_json_get(params, "grads");
        const ldm_json *op = ldm_json_get(params, "op");
        assert_true(ins && gr && op && ins->count <= MAX_INPUTS);
        c.n_in = (int)ins->count;
        for (int i = 0; i < c.n_in; i++) {
            c.in_names[i] = ins->items[i].string;
            for (size_t k = 0; k < gr->count; k++)
                if (strcmp(gr->items[k].string, c.in_names[i]) == 0) c.wants_grad[i] = 1;
        }
        const op_entry *entry = NULL;
        for (int k = 0; k < n_ops; k++)
            if (strcmp(ops[k].op, op->string) == 0) entry = &ops[k];
        if (!entry) fail_msg("%s: case %s: no builder for op '%s'", path, name, op->string);
        int slot = -1;
        for (int k = 0; k < n_w; k++)
            if (strcmp(w[k].op, op->string) == 0) slot = k;
        int first = slot < 0;
        if (first) {
            assert_true(n_w < 32);
            slot = n_w++;
            memset(&w[slot], 0, sizeof w[slot]);
            snprintf(w[slot].op, sizeof w[slot].op, "%s", op->string);
        }
        const ldm_json *to = ldm_json_get(params, "torch_fp32_out_err");
        const ldm_json *tg = ldm_json_get(params, "torch_fp32_grad_err");
        if (to) w[slot].torch_out_err = fmax(w[slot].torch_out_err, to->number);
        if (tg) w[slot].torch_grad_err = fmax(w[slot].torch_grad_err, tg->number);
        /* A case whose gradient is not its output's derivative (detach) says so. */
        const ldm_json *fd = ldm_json_get(params, "finite_differences");
        int fd_applies = !fd || fd->type != LDM_JSON_BOOL || fd->boolean;
        run_case(ctx, &c, entry, 0, first && fd_applies, &w[slot]);
        if (!budget) run_case(ctx, &c, entry, 1, 0, &w[slot]);
        ldm_json_free(params);
    }
    if (budget > 0) {
        printf("  simulator: %d of %d cases of %s within %ld elements (each once, without the x*1 "
               "pass)\n",
               n_run, n_cases, family, budget);
        for (int k = 0; k < n_ops; k++) {
            int ran = 0;
            for (int j = 0; j < n_w; j++)
                ran |= !strcmp(w[j].op, ops[k].op);
            if (!ran)
                fail_msg("simulator: no case of op %s within %ld elements", ops[k].op, budget);
        }
    }
    for (int k = 0; k < n_w; k++)
        printf("  %-18s worst relative error: result %.2e, gradients %.2e (PyTorch float32: "
               "%.2e, %.2e); finite differences %.2e\n",
               w[k].op, w[k].out_err, w[k].grad_err, w[k].torch_out_err, w[k].torch_grad_err,
               w[k].fd_err);
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(st);
}

void run_ref_family_gpu_tuned(const char *family, const op_entry *ops, int n_ops,
                              const char *tunables) {
    assert_int_equal(setenv("LDMCL_CPU_KERNELS", "0", 1), 0);
    assert_int_equal(setenv("LDMCL_TUNABLES", tunables, 1), 0);
    run_ref_family(family, ops, n_ops);
    assert_int_equal(unsetenv("LDMCL_TUNABLES"), 0);
    assert_int_equal(unsetenv("LDMCL_CPU_KERNELS"), 0);
}

void run_ref_family_both_layouts(const char *family, const op_entry *ops, int n_ops) {
    assert_int_equal(setenv("LDMCL_CPU_KERNELS", "1", 1), 0);
    if (!op_simulator_budget()) run_ref_family(family, ops, n_ops);
    assert_int_equal(setenv("LDMCL_CPU_KERNELS", "0", 1), 0);
    run_ref_family(family, ops, n_ops);
    assert_int_equal(unsetenv("LDMCL_CPU_KERNELS"), 0);
}
