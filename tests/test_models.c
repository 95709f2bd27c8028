/* tests/test_models.c: small composite models recorded on a graph, planned and executed, against
 * PyTorch autograd (tests/ref/models.safetensors): the reference's residual block with a time
 * embedding, its self+cross attention block, and a down/up stack with a skip connection. The
 * loss and every parameter gradient must match, and so must the parameters after three
 * optimizer steps (Adam; AdamW with weight decay and gradient clipping for the attention block).
 * The bar is 1e-4 relative, or twice PyTorch's own float32 error where that is larger. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/optim.h"
#include "ldmcl/safetensors.h"
#include "op_harness.h"

static ldm_safetensors *g_st;

static ldm_tensor *P(ldm_graph *g, const char *name) {
    ldm_tensor *t = ldm_graph_find(g, name);
    if (!t) fail_msg("parameter '%s' missing", name);
    return t;
}

/* conv(silu(group_norm(x))) with the reference's Sequential names <prefix>.0 and <prefix>.2. */
static ldm_tensor *norm_silu_conv(ldm_graph *g, ldm_tensor *x, const char *prefix) {
    char gw[128], gb[128], cw[128], cb[128];
    snprintf(gw, sizeof gw, "%s.0.weight", prefix);
    snprintf(gb, sizeof gb, "%s.0.bias", prefix);
    snprintf(cw, sizeof cw, "%s.2.weight", prefix);
    snprintf(cb, sizeof cb, "%s.2.bias", prefix);
    ldm_tensor *h = ldm_silu(g, ldm_group_norm(g, x, 4, 1e-5f, P(g, gw), P(g, gb)));
    return ldm_conv2d(g, h, P(g, cw), P(g, cb), 1, 1);
}

static ldm_tensor *resblock(ldm_graph *g, ldm_tensor **in) {
    ldm_tensor *h = norm_silu_conv(g, in[0], "resnet_conv_first");
    ldm_tensor *te = ldm_linear(g, ldm_silu(g, in[1]), P(g, "t_emb_layers.1.weight"),
                                P(g, "t_emb_layers.1.bias"));
    h = norm_silu_conv(g, ldm_add_channels(g, h, te), "resnet_conv_second");
    return ldm_add(g, h,
                   ldm_conv2d(g, in[0], P(g, "residual_input_conv.weight"),
                              P(g, "residual_input_conv.bias"), 1, 0));
}

/* One attention sub-block: x + attention(GN(x) as tokens, context). */
static ldm_tensor *attention_sub(ldm_graph *g, ldm_tensor *x, ldm_tensor *ctx, const char *norm,
                                 const char *attn) {
    int n = ldm_tensor_dim(x, 0), c = ldm_tensor_dim(x, 1), h = ldm_tensor_dim(x, 2);
    int w = ldm_tensor_dim(x, 3);
    char nw[128], nb[128], iw[128], ib[128], ow[128], ob[128];
    snprintf(nw, sizeof nw, "%s.weight", norm);
    snprintf(nb, sizeof nb, "%s.bias", norm);
    snprintf(iw, sizeof iw, "%s.in_proj_weight", attn);
    snprintf(ib, sizeof ib, "%s.in_proj_bias", attn);
    snprintf(ow, sizeof ow, "%s.out_proj.weight", attn);
    snprintf(ob, sizeof ob, "%s.out_proj.bias", attn);
    ldm_tensor *a = ldm_reshape(g, x, LDM_SHAPE(n, c, h * w));
    a = ldm_transpose12(g, ldm_group_norm(g, a, 4, 1e-5f, P(g, nw), P(g, nb)));
    a = ldm_multihead_attention(g, a, ctx, P(g, iw), P(g, ib), P(g, ow), P(g, ob), 2, 0, NULL);
    a = ldm_reshape(g, ldm_transpose12(g, a), LDM_SHAPE(n, c, h, w));
    return ldm_add(g, x, a);
}

static ldm_tensor *attnblock(ldm_graph *g, ldm_tensor **in) {
    ldm_tensor *out = attention_sub(g, in[0], NULL, "attention_norm", "attention");
    ldm_tensor *ctx = ldm_linear(g, in[1], P(g, "context_proj.weight"), P(g, "context_proj.bias"));
    return attention_sub(g, out, ctx, "cross_attention_norm", "cross_attention");
}

static ldm_tensor *skipstack(ldm_graph *g, ldm_tensor **in) {
    ldm_tensor *s = ldm_conv2d(g, in[0], P(g, "conv_in.weight"), P(g, "conv_in.bias"), 1, 1);
    ldm_tensor *h = ldm_conv2d(g, s, P(g, "down.weight"), P(g, "down.bias"), 2, 1);
    h = ldm_silu(g, ldm_conv2d(g, h, P(g, "mid.weight"), P(g, "mid.bias"), 1, 1));
    h = ldm_conv_transpose2d(g, h, P(g, "up.weight"), P(g, "up.bias"), 2, 1);
    return ldm_conv2d(g, ldm_concat(g, h, s, 1), P(g, "conv_out.weight"), P(g, "conv_out.bias"), 1,
                      1);
}

static float *load(const char *key, int *ndim, int *shape) {
    const ldm_st_tensor *t = ldm_safetensors_find(g_st, key);
    if (!t) fail_msg("reference tensor '%s' missing", key);
    float *data = malloc(t->numel * sizeof *data);
    assert_non_null(data);
    assert_status(ldm_safetensors_read_f32(g_st, t, data), LDM_OK);
    if (ndim) {
        *ndim = t->ndim;
        for (int i = 0; i < t->ndim; i++)
            shape[i] = (int)t->shape[i];
    }
    return data;
}

/* |got - want| / max(|want|, 1e-3 max|want|) over the elements not skipped. */
static double rel_err(const float *got, const float *want, const float *skip, size_t n) {
    double top = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i] != 0.0f) continue;
        double e = fabs(got[i] - want[i]) / fmax(fabs(want[i]), top > 0 ? 1e-3 * top : 1e-30);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    return worst;
}

static double meta_number(const ldm_json *m, const char *key, double fallback) {
    const ldm_json *v = ldm_json_get(m, key);
    return v && v->type == LDM_JSON_NUMBER ? v->number : fallback;
}

static double bar(const ldm_json *m, const char *key) {
    return fmax(OP_REL_TOL, 2.0 * meta_number(m, key, 0.0));
}

static void run_model(const char *name, ldm_tensor *(*build)(ldm_graph *, ldm_tensor **)) {
    const char *meta_text = ldm_safetensors_metadata(g_st, name);
    assert_non_null(meta_text);
    char err[128];
    ldm_json *meta = ldm_json_parse(meta_text, strlen(meta_text), err, sizeof err);
    assert_non_null(meta);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);

    /* Parameters, named as the PyTorch state_dict. */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.param.", name);
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < ldm_safetensors_count(g_st); i++) {
        const ldm_st_tensor *t = ldm_safetensors_at(g_st, i);
        if (strncmp(t->name, prefix, plen) != 0) continue;
        int shape[LDM_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            shape[d] = (int)t->shape[d];
        ldm_graph_param(g, t->name + plen, t->ndim, shape);
    }
    int n_in = (int)meta_number(meta, "n_inputs", 0);
    ldm_tensor *in[4];
    float *in_data[4];
    for (int i = 0; i < n_in; i++) {
        char key[64];
        int ndim, shape[LDM_MAX_DIMS];
        snprintf(key, sizeof key, "%s.in.%d", name, i);
        in_data[i] = load(key, &ndim, shape);
        in[i] = ldm_graph_input(g, key, ndim, shape);
    }
    int ndim, shape[LDM_MAX_DIMS];
    char key[256];
    snprintf(key, sizeof key, "%s.target", name);
    float *target_data = load(key, &ndim, shape);
    ldm_tensor *target = ldm_graph_input(g, "target", ndim, shape);
    ldm_tensor *loss = ldm_mse_loss(g, build(g, in), target);
    ldm_tensor_keep(loss);
    assert_status(ldm_graph_backward(g, loss), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    for (int i = 0; i < n_in; i++)
        assert_status(ldm_tensor_write(in[i], in_data[i]), LDM_OK);
    assert_status(ldm_tensor_write(target, target_data), LDM_OK);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s%s", prefix, ldm_tensor_name(p));
        float *v = load(key, NULL, NULL);
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);

    float got_loss, *want_loss;
    assert_status(ldm_tensor_read(loss, &got_loss), LDM_OK);
    snprintf(key, sizeof key, "%s.loss", name);
    want_loss = load(key, NULL, NULL);
    double loss_err = rel_err(&got_loss, want_loss, NULL, 1), grad_err = 0, after_err = 0;
    if (loss_err > bar(meta, "torch_fp32_loss_err"))
        fail_msg("%s: loss %.9g, PyTorch %.9g", name, got_loss, want_loss[0]);
    free(want_loss);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_status(ldm_tensor_read(ldm_tensor_grad(p), got), LDM_OK);
        snprintf(key, sizeof key, "%s.grad.%s", name, ldm_tensor_name(p));
        float *want = load(key, NULL, NULL);
        double e = rel_err(got, want, NULL, n);
        if (e > bar(meta, "torch_fp32_grad_err"))
            fail_msg("%s: gradient of %s off by %.3g", name, ldm_tensor_name(p), e);
        grad_err = fmax(grad_err, e);
        free(got);
        free(want);
    }

    /* Three optimizer steps, each from a fresh forward and backward pass. */
    ldm_adam_config cfg;
    ldm_adam_config_init(&cfg);
    cfg.lr = (float)meta_number(meta, "lr", 1e-3);
    cfg.decoupled = (int)meta_number(meta, "decoupled", 0);
    cfg.weight_decay = (float)meta_number(meta, "weight_decay", 0.0);
    cfg.max_grad_norm = (float)meta_number(meta, "max_grad_norm", 0.0);
    cfg.eps = (float)meta_number(meta, "eps", 1e-8);
    ldm_optimizer *opt;
    assert_status(ldm_adam_create(g, &cfg, &opt), LDM_OK);
    int steps = (int)meta_number(meta, "steps", 3);
    for (int s = 0; s < steps; s++) {
        assert_status(ldm_graph_zero_grads(g), LDM_OK);
        assert_status(ldm_graph_run(g), LDM_OK);
        assert_status(ldm_optimizer_step(opt), LDM_OK);
    }
    uint64_t done;
    assert_status(ldm_optimizer_steps(opt, &done), LDM_OK);
    assert_int_equal(done, (uint64_t)steps);
    int skipped = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        size_t n = ldm_tensor_numel(p);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_status(ldm_tensor_read(p, got), LDM_OK);
        snprintf(key, sizeof key, "%s.after.%s", name, ldm_tensor_name(p));
        float *want = load(key, NULL, NULL);
        snprintf(key, sizeof key, "%s.skip.%s", name, ldm_tensor_name(p));
        float *skip = ldm_safetensors_find(g_st, key) ? load(key, NULL, NULL) : NULL;
        for (size_t k = 0; skip && k < n; k++)
            skipped += skip[k] != 0.0f;
        double e = rel_err(got, want, skip, n);
        if (e > bar(meta, "torch_fp32_after_err"))
            fail_msg("%s: %s after %d steps off by %.3g", name, ldm_tensor_name(p), steps, e);
        after_err = fmax(after_err, e);
        free(got);
        free(want);
        free(skip);
    }
    ldm_graph_memory mem = ldm_graph_memory_report(g);
    printf("  %-10s loss %.2e, gradients %.2e, parameters after %d steps %.2e (PyTorch float32: "
           "%.2e, %.2e, %.2e; %d zero-gradient elements skipped); %zu nodes, %zu launches, "
           "activations %llu of %llu bytes\n",
           name, loss_err, grad_err, steps, after_err, meta_number(meta, "torch_fp32_loss_err", 0),
           meta_number(meta, "torch_fp32_grad_err", 0),
           meta_number(meta, "torch_fp32_after_err", 0), skipped, mem.n_nodes, mem.n_launches,
           (unsigned long long)mem.activation_bytes, (unsigned long long)mem.activation_total);
    ldm_optimizer_destroy(opt);
    for (int i = 0; i < n_in; i++)
        free(in_data[i]);
    free(target_data);
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    ldm_json_free(meta);
}

static void resblock_matches_pytorch(void **state) {
    (void)state;
    run_model("resblock", resblock);
}

static void attention_block_matches_pytorch(void **state) {
    (void)state;
    run_model("attnblock", attnblock);
}

static void skip_stack_matches_pytorch(void **state) {
    (void)state;
    run_model("skipstack", skipstack);
}

static int setup(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/models.safetensors", LDMCL_TEST_REF_DIR);
    assert_status(ldm_safetensors_open(path, &g_st), LDM_OK);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_safetensors_close(g_st);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resblock_matches_pytorch),
        cmocka_unit_test(attention_block_matches_pytorch),
        cmocka_unit_test(skip_stack_matches_pytorch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
