/* tests/test_ae_train.c: the autoencoder training step against PyTorch
 * (tests/ref/ae_train.safetensors, written by tools/refgen/make_refs.py ae_train from
 * tools/refgen/ae_torch.py): a one-channel VQ-VAE and a three-channel KL-VAE with the PatchGAN
 * discriminator and LPIPS (random weights, loaded from a file as the trainer requires). One
 * generator step and one discriminator step: every loss term (1e-4 relative), the reconstruction
 * and every parameter gradient (1e-4 norm-wise), then one Adam step of each optimizer (each
 * parameter's change 1e-4 norm-wise; the discriminator's BatchNorm running statistics after its
 * three passes 1e-4 element-wise); or twice PyTorch's own float32 error where that is larger. Then
 * the trainer's bookkeeping: gradient accumulation, disc_start, the LPIPS requirement, save and
 * load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ldmcl/ae_train.h"
#include "ldmcl/safetensors.h"
#include "op_harness.h"

static ldm_safetensors *g_st;

static double meta_number(const ldm_json *m, const char *key) {
    const ldm_json *v = ldm_json_get(m, key);
    if (!v || v->type != LDM_JSON_NUMBER) fail_msg("metadata key '%s' missing", key);
    return v->number;
}

static double bar(const ldm_json *m, const char *key) {
    return fmax(OP_REL_TOL, 2.0 * meta_number(m, key));
}

static int ints(const ldm_json *o, const char *key, int *out, int max) {
    const ldm_json *v = ldm_json_get(o, key);
    assert_true(v && v->type == LDM_JSON_ARRAY && (int)v->count <= max);
    for (size_t i = 0; i < v->count; i++)
        out[i] = v->items[i].type == LDM_JSON_BOOL ? v->items[i].boolean : (int)v->items[i].number;
    return (int)v->count;
}

/* The training configuration of a reference case. */
static void config_from(const ldm_json *meta, ldm_ae_train_config *c) {
    const ldm_json *m = ldm_json_get(meta, "config"), *tr = ldm_json_get(meta, "train");
    assert_true(m && tr);
    ldm_autoencoder_config ae = {0};
    const ldm_json *kind = ldm_json_get(m, "kind");
    ae.kind = strcmp(kind->string, "vae") == 0 ? LDM_AE_VAE : LDM_AE_VQVAE;
    ae.im_channels = (int)meta_number(m, "im_channels");
    ae.z_channels = (int)meta_number(m, "z_channels");
    ae.codebook_size = (int)meta_number(m, "codebook_size");
    ae.n_down = ints(m, "down_channels", ae.down_channels, LDM_AE_MAX_LEVELS);
    ae.n_mid = ints(m, "mid_channels", ae.mid_channels, LDM_AE_MAX_LEVELS);
    ints(m, "down_sample", ae.down_sample, LDM_AE_MAX_LEVELS);
    ints(m, "attn_down", ae.attn_down, LDM_AE_MAX_LEVELS);
    ae.norm_channels = (int)meta_number(m, "norm_channels");
    ae.num_heads = (int)meta_number(m, "num_heads");
    ae.num_down_layers = (int)meta_number(m, "num_down_layers");
    ae.num_mid_layers = (int)meta_number(m, "num_mid_layers");
    ae.num_up_layers = (int)meta_number(m, "num_up_layers");
    ldm_ae_train_config_init(c, &ae);
    c->disc.n_conv = ints(meta, "disc_channels", c->disc.conv_channels, LDM_DISC_MAX_LAYERS);
    ints(meta, "lpips_widths", c->lpips.channels, 5);
    c->batch = 2;
    c->height = c->width = 16;
    c->acc_steps = (int)meta_number(tr, "acc_steps");
    c->disc_weight = (float)meta_number(tr, "disc_weight");
    c->codebook_weight = (float)meta_number(tr, "codebook_weight");
    c->commitment_beta = (float)meta_number(tr, "commitment_beta");
    c->perceptual_weight = (float)meta_number(tr, "perceptual_weight");
    c->kl_weight = (float)meta_number(tr, "kl_weight");
    c->lr = (float)meta_number(tr, "lr");
    c->disc_start = (int)meta_number(tr, "disc_start");
    c->external_noise = 1;
}

/* Writes the case's "<name>.param.lpips.*" tensors to an LPIPS file of their own. */
static void write_lpips_file(const char *name, const char *path) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.param.lpips.", name);
    size_t plen = strlen(prefix), n = 0;
    ldm_st_entry e[64];
    float *data[64];
    int64_t shapes[64][LDM_MAX_DIMS];
    for (size_t i = 0; i < ldm_safetensors_count(g_st); i++) {
        const ldm_st_tensor *t = ldm_safetensors_at(g_st, i);
        if (strncmp(t->name, prefix, plen) != 0) continue;
        assert_true(n < 64);
        data[n] = test_st_load(g_st, t->name, NULL, NULL);
        for (int d = 0; d < t->ndim; d++)
            shapes[n][d] = t->shape[d];
        e[n] = (ldm_st_entry){t->name + plen, t->ndim, shapes[n], data[n]};
        n++;
    }
    assert_int_equal(n, 31); /* 13 convs with biases, 5 linear layers */
    assert_status(ldm_safetensors_write(path, e, n, NULL), LDM_OK);
    for (size_t i = 0; i < n; i++)
        free(data[i]);
}

/* The discriminator's graph of the case being run: its parameters are entries of the generator
 * graph's store too, checked as the discriminator's. */
static ldm_graph *g_dg;

/* Whether parameter pn of g is another model's: LPIPS's, or, in the generator graph, the
 * discriminator's. */
static int other_model(ldm_graph *g, const char *pn) {
    return !strncmp(pn, "lpips.", 6) || (g_dg && g != g_dg && ldm_graph_find(g_dg, pn));
}

/* Writes "<name>.<kind>.<param>" into each parameter of g (names without the graph prefix). */
static void write_params(ldm_graph *g, const char *name, const char *kind) {
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        const char *pn = ldm_tensor_name(p);
        if (other_model(g, pn)) continue;
        char key[256];
        snprintf(key, sizeof key, "%s.param.%s.%s", name, kind, pn);
        float *v = test_st_load(g_st, key, NULL, NULL);
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
}

static float read_scalar_ref(const char *name, const char *what) {
    char key[128];
    snprintf(key, sizeof key, "%s.loss.%s", name, what);
    float *v = test_st_load(g_st, key, NULL, NULL), r = v[0];
    free(v);
    return r;
}

static void check_loss(const char *name, const ldm_json *meta, const char *what, float got) {
    float want = read_scalar_ref(name, what);
    double e = test_rel_err(&got, &want, NULL, 1);
    if (e > bar(meta, "torch_fp32_loss_err"))
        fail_msg("%s: loss %s = %.9g, PyTorch %.9g", name, what, got, want);
}

/* Gradients (norm-wise) of every trainable parameter of g against "<name>.grad.<kind>.*". */
static double check_grads(ldm_graph *g, const char *name, const char *kind, const ldm_json *meta) {
    double worst = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        ldm_tensor *gp = ldm_tensor_grad(p);
        if (!gp) continue;
        size_t n = ldm_tensor_numel(p);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_status(ldm_tensor_read(gp, got), LDM_OK);
        char key[256];
        snprintf(key, sizeof key, "%s.grad.%s.%s", name, kind, ldm_tensor_name(p));
        float *want = test_st_load(g_st, key, NULL, NULL);
        double e = test_norm_err(got, want, n);
        if (e > bar(meta, "torch_fp32_grad_norm_err"))
            fail_msg("%s: gradient of %s off by %.3g (norm-wise)", name, ldm_tensor_name(p), e);
        worst = fmax(worst, e);
        free(got);
        free(want);
    }
    return worst;
}

/* Parameters after the optimizer steps against "<name>.after.<kind>.*": for trainable ones the
 * change (after - before) norm-wise (Adam's first step is sign-like, so element-wise errors of
 * near-zero gradients are large in any precision: reported, not held to 1e-4); the BatchNorm
 * running statistics element-wise. Returns the worst element-wise error. */
static double check_after(ldm_graph *g, const char *name, const char *kind, const ldm_json *meta,
                          double *step_norm_err) {
    double worst = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        const char *pn = ldm_tensor_name(p);
        if (other_model(g, pn)) continue;
        size_t n = ldm_tensor_numel(p);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_status(ldm_tensor_read(p, got), LDM_OK);
        char key[256];
        snprintf(key, sizeof key, "%s.after.%s.%s", name, kind, pn);
        float *want = test_st_load(g_st, key, NULL, NULL);
        snprintf(key, sizeof key, "%s.param.%s.%s", name, kind, pn);
        float *before = test_st_load(g_st, key, NULL, NULL);
        snprintf(key, sizeof key, "%s.skip.%s.%s", name, kind, pn);
        float *skip = ldm_safetensors_find(g_st, key) ? test_st_load(g_st, key, NULL, NULL) : NULL;
        double e = test_rel_err(got, want, skip, n);
        if (ldm_tensor_grad(p)) {
            double num = 0, den = 0;
            for (size_t k = 0; k < n; k++) {
                if (skip && skip[k] != 0.0f) continue;
                double d = (double)got[k] - want[k], s = (double)want[k] - before[k];
                num += d * d;
                den += s * s;
            }
            double ne = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
            if (ne > bar(meta, "torch_fp32_step_norm_err"))
                fail_msg("%s: the Adam step of %s off by %.3g (norm-wise)", name, pn, ne);
            *step_norm_err = fmax(*step_norm_err, ne);
        } else if (e > bar(meta, "torch_fp32_after_err")) {
            fail_msg("%s: %s after the step off by %.3g", name, pn, e);
        }
        worst = fmax(worst, e);
        free(got);
        free(want);
        free(before);
        free(skip);
    }
    return worst;
}

static void run_case(const char *name) {
    const char *text = ldm_safetensors_metadata(g_st, name);
    assert_non_null(text);
    char err[128];
    ldm_json *meta = ldm_json_parse(text, strlen(text), err, sizeof err);
    assert_non_null(meta);
    ldm_ae_train_config cfg;
    config_from(meta, &cfg);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ae_trainer *t;
    assert_status(ldm_ae_trainer_create(ctx, &cfg, &t), LDM_OK);
    ldm_graph *gg = ldm_ae_trainer_generator(t), *dg = ldm_ae_trainer_discriminator(t);
    g_dg = dg;
    write_params(gg, name, "ae");
    write_params(dg, name, "disc");
    char *dir = test_make_tmpdir("ae");
    char path[4200];
    snprintf(path, sizeof path, "%s/lpips.safetensors", dir);
    write_lpips_file(name, path);
    assert_status(ldm_ae_trainer_load_lpips(t, path), LDM_OK);
    char key[128];
    snprintf(key, sizeof key, "%s.in.images", name);
    float *images = test_st_load(g_st, key, NULL, NULL);
    if (cfg.ae.kind == LDM_AE_VAE) {
        snprintf(key, sizeof key, "%s.in.noise", name);
        float *noise = test_st_load(g_st, key, NULL, NULL);
        assert_status(ldm_tensor_write(ldm_ae_trainer_noise(t), noise), LDM_OK);
        free(noise);
    }

    ldm_ae_losses l;
    assert_status(ldm_ae_trainer_forward_backward(t, images, &l), LDM_OK);
    assert_int_equal(l.step, 1);
    assert_true(l.adversarial);
    check_loss(name, meta, "recon", l.recon);
    if (cfg.ae.kind == LDM_AE_VAE) {
        check_loss(name, meta, "kl", l.kl);
    } else {
        check_loss(name, meta, "codebook", l.codebook);
        check_loss(name, meta, "commitment", l.commitment);
        assert_true(l.codebook_used >= 1 && l.codebook_used <= cfg.ae.codebook_size);
    }
    check_loss(name, meta, "perceptual", l.perceptual);
    check_loss(name, meta, "g_adv", l.g_adv);
    check_loss(name, meta, "g_total", l.g_total);
    check_loss(name, meta, "d_fake", l.d_fake);
    check_loss(name, meta, "d_real", l.d_real);
    check_loss(name, meta, "d_total", l.d_total);

    ldm_tensor *out = ldm_ae_trainer_output(t);
    size_t n_out = ldm_tensor_numel(out);
    float *got_out = malloc(n_out * sizeof *got_out);
    assert_non_null(got_out);
    assert_status(ldm_tensor_read(out, got_out), LDM_OK);
    snprintf(key, sizeof key, "%s.out", name);
    float *want_out = test_st_load(g_st, key, NULL, NULL);
    double out_err = test_norm_err(got_out, want_out, n_out);
    if (out_err > bar(meta, "torch_fp32_out_norm_err"))
        fail_msg("%s: reconstruction off by %.3g (norm-wise)", name, out_err);
    free(got_out);
    free(want_out);

    double grad_err = fmax(check_grads(gg, name, "ae", meta), check_grads(dg, name, "disc", meta));
    assert_status(ldm_ae_trainer_apply(t), LDM_OK);
    double step_err = 0;
    double after_err = fmax(check_after(gg, name, "ae", meta, &step_err),
                            check_after(dg, name, "disc", meta, &step_err));
    printf(
        "  %-9s reconstruction %.2e, gradients %.2e, Adam step %.2e norm-wise; after the step "
        "%.2e element-wise (PyTorch float32: %.2e, %.2e, %.2e; %.2e)\n",
        name, out_err, grad_err, step_err, after_err, meta_number(meta, "torch_fp32_out_norm_err"),
        meta_number(meta, "torch_fp32_grad_norm_err"),
        meta_number(meta, "torch_fp32_step_norm_err"), meta_number(meta, "torch_fp32_after_err"));
    free(images);
    ldm_ae_trainer_destroy(t);
    g_dg = NULL;
    ldm_ctx_destroy(ctx);
    ldm_json_free(meta);
    test_rmtree(dir);
    free(dir);
}

static int open_refs(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/ae_train.safetensors", LDMCL_TEST_REF_DIR);
    return ldm_safetensors_open(path, &g_st) == LDM_OK ? 0 : -1;
}

static int close_refs(void **state) {
    (void)state;
    ldm_safetensors_close(g_st);
    return 0;
}

static void vqvae_step_matches_pytorch(void **state) {
    (void)state;
    run_case("ae_vqvae");
}

static void vae_step_matches_pytorch(void **state) {
    (void)state;
    run_case("ae_vae");
}

/* A small VQ-VAE trainer: acc_steps 2, disc_start 1; 16x16 images with LPIPS (which pools four
 * times), 8x8 without. */
static ldm_ae_trainer *small_trainer(ldm_ctx *ctx, float perceptual_weight) {
    ldm_autoencoder_config ae = {.kind = LDM_AE_VQVAE,
                                 .im_channels = 1,
                                 .z_channels = 2,
                                 .codebook_size = 8,
                                 .down_channels = {4, 8},
                                 .n_down = 2,
                                 .mid_channels = {8, 8},
                                 .n_mid = 2,
                                 .down_sample = {1},
                                 .norm_channels = 2,
                                 .num_heads = 2,
                                 .num_down_layers = 1,
                                 .num_mid_layers = 1,
                                 .num_up_layers = 1};
    ldm_ae_train_config cfg;
    ldm_ae_train_config_init(&cfg, &ae);
    cfg.disc.n_conv = 2;
    cfg.disc.conv_channels[0] = 4;
    cfg.disc.conv_channels[1] = 4;
    cfg.batch = 2;
    cfg.height = cfg.width = perceptual_weight > 0 ? 16 : 8;
    cfg.perceptual_weight = perceptual_weight;
    cfg.acc_steps = 2;
    cfg.disc_start = 1;
    cfg.lr = 1e-2f;
    ldm_ae_trainer *t;
    assert_status(ldm_ae_trainer_create(ctx, &cfg, &t), LDM_OK);
    assert_status(ldm_ae_trainer_init_params(t, 5), LDM_OK);
    return t;
}

static float first_value(ldm_graph *g, const char *name) {
    ldm_tensor *p = ldm_graph_find(g, name);
    assert_non_null(p);
    size_t n = ldm_tensor_numel(p);
    float *v = malloc(n * sizeof *v), r;
    assert_non_null(v);
    assert_status(ldm_tensor_read(p, v), LDM_OK);
    r = v[0];
    free(v);
    return r;
}

/* Optimizers step every acc_steps steps; the discriminator only after disc_start. */
static void accumulation_and_disc_start(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ae_trainer *t = small_trainer(ctx, 0.0f);
    ldm_graph *gg = ldm_ae_trainer_generator(t), *dg = ldm_ae_trainer_discriminator(t);
    float images[2 * 64];
    for (int i = 0; i < 2 * 64; i++)
        images[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    const char *gw = "encoder_conv_in.weight", *dw = "layers.0.0.weight";
    float g0 = first_value(gg, gw), d0 = first_value(dg, dw);
    ldm_ae_losses l;
    assert_status(ldm_ae_trainer_step(t, images, &l), LDM_OK);
    assert_int_equal(l.step, 1);
    assert_false(l.adversarial); /* step 1 <= disc_start */
    assert_true(l.d_total == 0.0f && l.g_adv > 0.0f);
    assert_true(first_value(gg, gw) == g0); /* accumulating */
    assert_status(ldm_ae_trainer_step(t, images, &l), LDM_OK);
    assert_int_equal(l.step, 2);
    assert_true(l.adversarial);
    assert_true(l.d_total > 0.0f && l.d_fake > 0.0f && l.d_real > 0.0f);
    assert_true(first_value(gg, gw) != g0);
    assert_true(first_value(dg, dw) != d0);
    assert_true(l.codebook_used >= 1 && l.codebook_used <= 8);
    assert_int_equal(ldm_ae_trainer_steps(t), 2);

    /* Save both models, load them into a fresh trainer: the same parameters. */
    char *dir = test_make_tmpdir("ae");
    char ae_path[4200], disc_path[4200];
    snprintf(ae_path, sizeof ae_path, "%s/ae.safetensors", dir);
    snprintf(disc_path, sizeof disc_path, "%s/disc.safetensors", dir);
    assert_status(ldm_ae_trainer_save(t, ae_path, disc_path, NULL), LDM_OK);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(ae_path, &st), LDM_OK);
    assert_non_null(ldm_safetensors_find(st, "embedding.weight"));
    for (size_t i = 0; i < ldm_safetensors_count(st); i++) /* none of the discriminator's */
        assert_null(ldm_graph_find(dg, ldm_safetensors_at(st, i)->name));
    ldm_safetensors_close(st);
    ldm_ae_trainer *u = small_trainer(ctx, 0.0f);
    assert_status(ldm_ae_trainer_load(u, ae_path, disc_path), LDM_OK);
    assert_true(first_value(ldm_ae_trainer_generator(u), gw) == first_value(gg, gw));
    assert_true(first_value(ldm_ae_trainer_discriminator(u), "layers.1.1.running_var") ==
                first_value(dg, "layers.1.1.running_var"));
    ldm_ae_trainer_destroy(u);
    ldm_ae_trainer_destroy(t);
    test_rmtree(dir);
    free(dir);
    ldm_ctx_destroy(ctx);
}

/* A perceptual loss without LPIPS weights is refused, saying how to get them. */
static void perceptual_loss_needs_lpips_weights(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_ae_trainer *t = small_trainer(ctx, 1.0f);
    float images[2 * 256] = {0};
    assert_status(ldm_ae_trainer_step(t, images, NULL), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "no LPIPS weights were loaded: convert them with "
                                      "tools/convert_lpips.py");
    assert_contains(ldm_last_error(), "or set perceptual_weight = 0");
    assert_int_equal(ldm_ae_trainer_steps(t), 0);
    ldm_ae_trainer_destroy(t);
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vqvae_step_matches_pytorch),
        cmocka_unit_test(vae_step_matches_pytorch),
        cmocka_unit_test(accumulation_and_disc_start),
        cmocka_unit_test(perceptual_loss_needs_lpips_weights),
    };
    return cmocka_run_group_tests(tests, open_refs, close_refs);
}
