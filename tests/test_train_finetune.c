/* tests/test_train_finetune.c: ldmcl-train from a pretrained ldmcl model folder ([model]
 * pretrained), all weights or LoRA adapters ([lora]), on the tiny dataset and config of
 * train_fixture.h: the trainer starts from the folder's weights exactly (LoRA: adapters the only
 * trainable entries, lora_up zero, so the first step's loss is the full fine-tune's bit for bit);
 * the model folder a LoRA run writes is the pretrained weights with the adapters of its kohya
 * file merged in (the rest bit for bit the pretrained, the frozen text encoder too); its
 * validation grid is what ldmcl-sample makes of that folder; an interrupted LoRA run resumed
 * writes the same files; bad [model] and [lora] settings and a folder whose weights do not fit
 * its model.ini are errors naming the file, line or tensor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train_fixture.h"

/* The base model: a whole run of the fixture's config, its model folder in g_dir/base/model. */
static void make_base(void) {
    static int made;
    if (made) return;
    char ini[4400];
    write_config("base", 8, "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    assert_true(exists("base", "model/unet.safetensors"));
    made = 1;
}

/* A fine-tuning config NAME.ini from base/model with extra sections appended. */
static void write_finetune(const char *name, const char *extra, char *ini) {
    sprintf(ini, "%s/%s.ini", g_dir, name);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f,
            "[dataset]\npath = data\n"
            "[model]\npretrained = base/model\n"
            "[train]\noutput_dir = %s\ntrain_batch_size = 4\nlearning_rate = 1e-2\n"
            "max_train_steps = 6\ncheckpointing_steps = 2\ncheckpoints_total_limit = 2\n"
            "validation_steps = 6\nvalidation_prompts = a left thing | right\n"
            "validation_sampling_steps = 2\n%s",
            name, extra);
    fclose(f);
}

static const char *lora_section = "[lora]\nrank = 2\nalpha = 3\ntargets = all_linear+conv\n";

/* A tensor of a safetensors file as floats (NULL when absent; free it). */
static float *file_tensor(ldm_safetensors *st, const char *name, size_t *n) {
    const ldm_st_tensor *t = ldm_safetensors_find(st, name);
    if (!t) return NULL;
    float *v = malloc(t->numel * sizeof *v);
    assert_non_null(v);
    assert_status(ldm_safetensors_read_f32(st, t, v), LDM_OK);
    if (n) *n = t->numel;
    return v;
}

static ldm_safetensors *open_file(const char *run, const char *file) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/%s", g_dir, run, file);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    return st;
}

/* The trainer made from a fine-tuning config holds the base's weights; with LoRA only adapters
 * are trainable and lora_up starts at zero. */
static void trainer_starts_from_the_folder(const char *ini, int lora) {
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    assert_int_equal(c.model.resolution, 16); /* the folder's model.ini */
    assert_int_equal(c.model.n_latent_stats, 0);
    assert_non_null(strstr(c.ae_checkpoint, "base/model/autoencoder.safetensors"));
    ldm_diffusion_trainer *t;
    assert_status(ldm_diffusion_trainer_create(g_ctx, &c.model, &c.ldm_train,
                                               ldm_model_latent_size(&c.model), c.seed, &t),
                  LDM_OK);
    ldm_graph *g = ldm_diffusion_trainer_graph(t);
    ldm_safetensors *unet = open_file("base", "model/unet.safetensors");
    ldm_safetensors *text = open_file("base", "model/text_encoder.safetensors");
    int adapters = 0, checked = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        const char *name = ldm_tensor_name(p);
        size_t n = ldm_tensor_numel(p);
        float *got = malloc(n * sizeof *got);
        assert_status(ldm_tensor_read(p, got), LDM_OK);
        if (ldm_lora_is_adapter(name)) {
            adapters++;
            assert_true(ldm_tensor_is_trainable(p));
            assert_false(strncmp(name, "text_model.", 11) == 0); /* the UNet's only */
            if (strstr(name, ".lora_up.")) /* zero: the model starts as it was */
                for (size_t k = 0; k < n; k++)
                    assert_true(got[k] == 0.0f);
        } else {
            assert_int_equal(ldm_tensor_is_trainable(p), !lora);
            size_t m = 0;
            float *want = file_tensor(strncmp(name, "text_model.", 11) ? unet : text, name, &m);
            if (!want) fail_msg("%s is not in the base model's files", name);
            assert_int_equal(m, n);
            if (memcmp(want, got, n * sizeof *got)) fail_msg("%s is not the base's", name);
            free(want);
            checked++;
        }
        free(got);
    }
    assert_true(checked > 20);
    if (lora)
        assert_true(adapters > 20 && adapters % 2 == 0);
    else
        assert_int_equal(adapters, 0);
    ldm_safetensors_close(unet);
    ldm_safetensors_close(text);
    ldm_diffusion_trainer_destroy(t);
}

/* run/model/FILE = the base's + alpha / rank up . down for every layer of run/lora.safetensors
 * whose kohya name (prefix + the module's name, '_' for '.') is one of its weights, the base's bit
 * for bit elsewhere; every such pair of the file belongs to a weight. Returns the layers merged. */
static int file_is_base_plus_lora(const char *run_name, const char *file, const char *prefix) {
    char path[256];
    snprintf(path, sizeof path, "model/%s", file);
    ldm_safetensors *base = open_file("base", path), *got = open_file(run_name, path);
    ldm_safetensors *lora = open_file(run_name, "lora.safetensors");
    assert_string_equal(ldm_safetensors_metadata(lora, "ss_network_dim"), "2");
    assert_string_equal(ldm_safetensors_metadata(lora, "ss_network_alpha"), "3");
    assert_int_equal(ldm_safetensors_count(got), ldm_safetensors_count(base));
    int merged = 0, moved = 0;
    for (size_t i = 0; i < ldm_safetensors_count(base); i++) {
        const char *name = ldm_safetensors_at(base, i)->name;
        size_t n = 0, m = 0;
        float *w = file_tensor(base, name, &n), *out = file_tensor(got, name, &m);
        if (!out) fail_msg("%s is missing from %s's %s", name, run_name, file);
        assert_int_equal(m, n);
        char key[400];
        size_t len = strlen(name);
        snprintf(key, sizeof key, "%s%.*s", prefix, (int)(len > 7 ? len - 7 : len), name);
        for (char *c = key; *c; c++)
            if (*c == '.') *c = '_';
        char down_key[440], up_key[440], alpha_key[440];
        snprintf(down_key, sizeof down_key, "%s.lora_down.weight", key);
        snprintf(up_key, sizeof up_key, "%s.lora_up.weight", key);
        snprintf(alpha_key, sizeof alpha_key, "%s.alpha", key);
        size_t nd = 0, nu = 0;
        float *down = file_tensor(lora, down_key, &nd), *up = file_tensor(lora, up_key, &nu);
        if (!down) {
            assert_null(up);
            if (memcmp(w, out, n * sizeof *w)) fail_msg("%s changed without an adapter", name);
        } else {
            float *alpha = file_tensor(lora, alpha_key, NULL);
            assert_non_null(up);
            assert_non_null(alpha);
            assert_true(alpha[0] == 3.0f);
            size_t rank = 2, out_dim = nu / rank, in = nd / rank;
            assert_int_equal(out_dim * in, n);
            double up_norm = 0;
            for (size_t k = 0; k < nu; k++)
                up_norm += (double)up[k] * up[k];
            moved += up_norm > 0; /* trained */
            ldm_lora_add_product(w, up, down, out_dim, rank, in, 3.0 / 2.0);
            double diff = 0, norm = 0;
            for (size_t k = 0; k < n; k++) {
                diff += ((double)w[k] - out[k]) * ((double)w[k] - out[k]);
                norm += (double)w[k] * w[k];
            }
            if (sqrt(diff) > 1e-6 * sqrt(norm) + 1e-12)
                fail_msg("%s: merged weight off by %g (norm %g)", name, sqrt(diff), sqrt(norm));
            merged++;
            free(alpha);
        }
        free(w);
        free(out);
        free(down);
        free(up);
    }
    size_t pairs = 0;
    for (size_t i = 0; i < ldm_safetensors_count(lora); i++) {
        const char *name = ldm_safetensors_at(lora, i)->name;
        pairs += !strncmp(name, prefix, strlen(prefix)) && strstr(name, ".lora_down.weight");
    }
    assert_int_equal((size_t)merged, pairs);
    assert_int_equal(moved, merged);
    ldm_safetensors_close(base);
    ldm_safetensors_close(got);
    ldm_safetensors_close(lora);
    return merged;
}

/* The model folder of a LoRA run: the base's UNet plus its adapters, the text encoder the base's
 * (bit for bit) or, with text_encoder, plus its own. */
static void model_is_base_plus_lora(const char *run_name, int text) {
    assert_true(file_is_base_plus_lora(run_name, "unet.safetensors", "lora_unet_") > 10);
    int te = file_is_base_plus_lora(run_name, "text_encoder.safetensors", "lora_te_");
    if (text)
        assert_true(te >= 4);
    else
        assert_int_equal(te, 0);
}

/* ldmcl-sample's pipeline on the base model with <lora:lora:1> (the run's kohya file, from
 * --lora-model-dir) makes the merged model folder's images; at weight 0.5 neither these nor
 * the base's; without the tag the base's again. */
static void lora_file_samples_as_the_merged_model(const char *run_name) {
    char base[2048], merged[2048], loras[2048];
    snprintf(base, sizeof base, "%s/base/model", g_dir);
    snprintf(merged, sizeof merged, "%s/%s/model", g_dir, run_name);
    snprintf(loras, sizeof loras, "%s/%s", g_dir, run_name);
    ldm_pipeline_options o = {.method = LDM_SAMPLER_DDIM, .steps = 3, .batch = 2};
    float want[2 * 16 * 16], got[2 * 16 * 16], half[2 * 16 * 16], plain[2 * 16 * 16],
        again[2 * 16 * 16];
    ldm_pipeline *p;
    assert_status(ldm_pipeline_open(g_ctx, merged, &o, &p), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a left thing", "", 5, want), LDM_OK);
    ldm_pipeline_destroy(p);
    o.lora_dir = loras;
    assert_status(ldm_pipeline_open(g_ctx, base, &o, &p), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a left thing", "", 5, plain), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a left thing <lora:lora:1>", "", 5, got), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a left thing <lora:lora:0.5>", "", 5, half), LDM_OK);
    assert_status(ldm_pipeline_generate(p, "a left thing", "", 5, again), LDM_OK);
    ldm_pipeline_destroy(p);
    double diff = 0, moved = 0, back = 0, to_full = 0, to_plain = 0;
    for (int i = 0; i < 2 * 16 * 16; i++) {
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        moved = fmax(moved, fabs((double)got[i] - plain[i]));
        back = fmax(back, fabs((double)again[i] - plain[i]));
        to_full = fmax(to_full, fabs((double)half[i] - got[i]));
        to_plain = fmax(to_plain, fabs((double)half[i] - plain[i]));
    }
    print_message("  %s: <lora:lora:1> on the base: %.2g from the merged folder's images (the "
                  "LoRA moves them by %.3g); merged out again: %.2g from the base's\n",
                  run_name, diff, moved, back);
    assert_true(moved > 1e-3);
    assert_true(diff < 1e-5);
    assert_true(back < 1e-5);
    assert_true(to_full > 1e-4 && to_plain > 1e-4); /* weight 0.5: neither */
}

/* The first line of a run's loss log after the header ("1,<loss>"). */
static char *first_loss(const char *name) {
    char *all = losses(name);
    char *line = strstr(all, "\n1,");
    assert_non_null(line);
    char *end = strchr(line + 1, '\n');
    if (end) *end = '\0';
    char *out = strdup(line + 1);
    free(all);
    return out;
}

static void full_fine_tuning_starts_from_the_folder(void **state) {
    (void)state;
    make_base();
    char ini[4400];
    write_finetune("full", "", ini);
    trainer_starts_from_the_folder(ini, 0);
    assert_status(run(ini, 0, 0), LDM_OK);
    const char *log = test_log_text();
    assert_contains(log, "autoencoder: using");
    assert_contains(log, "base/model/autoencoder.safetensors");
    assert_true(exists("full", "model/unet.safetensors"));
    assert_false(exists("full", "lora.safetensors"));
    assert_false(exists("full", "autoencoder_log.csv")); /* no stage one */
    /* gradient checkpointing: the same run, bit for bit */
    write_finetune("fullgc", "", ini);
    edit_file(ini, "validation_steps = 6", "\n", "gradient_checkpointing = true");
    assert_status(run(ini, 0, 0), LDM_OK);
    char *a = losses("full"), *b = losses("fullgc");
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void lora_run_merges_into_the_folder(void **state) {
    (void)state;
    make_base();
    char ini[4400];
    write_finetune("lora", lora_section, ini);
    trainer_starts_from_the_folder(ini, 1);
    assert_status(run(ini, 0, 0), LDM_OK);
    assert_contains(test_log_text(), "kohya's format");
    model_is_base_plus_lora("lora", 0);
    grid_is_the_model_folders("lora", ini); /* validation applies the adapters */
    lora_file_samples_as_the_merged_model("lora");
    /* lora_up starts at zero: step one is the pretrained model's, as in full fine-tuning */
    char full_ini[4400];
    write_finetune("full1", "", full_ini);
    edit_file(full_ini, "max_train_steps = 6", "\n", "max_train_steps = 1");
    assert_status(run(full_ini, 0, 0), LDM_OK);
    char *a = first_loss("full1"), *b = first_loss("lora");
    assert_string_equal(a, b);
    free(a);
    free(b);

    /* interrupted after 3 steps, resumed: the same losses, LoRA file and model, byte for byte */
    write_finetune("lorapart", lora_section, ini);
    assert_status(run(ini, 0, 3), LDM_OK);
    assert_false(exists("lorapart", "lora.safetensors"));
    assert_status(run(ini, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "resumed from");
    a = losses("lora");
    b = losses("lorapart");
    assert_string_equal(a, b);
    free(a);
    free(b);
    same_file_bytes("lora", "lorapart", "lora.safetensors");
    same_file_bytes("lora", "lorapart", "model/unet.safetensors");

    /* adapters on the text encoder too (trained in the step: clip_scratch) */
    char text_lora[256];
    snprintf(text_lora, sizeof text_lora, "%stext_encoder = true\n", lora_section);
    write_finetune("lorate", text_lora, ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    model_is_base_plus_lora("lorate", 1);
    grid_is_the_model_folders("lorate", ini);        /* the grid's encoder applies them too */
    lora_file_samples_as_the_merged_model("lorate"); /* lora_te_ names found by ldmcl-sample */
}

/* A config error: read fails naming what. */
static void refused(const char *name, const char *extra, int pretrained, const char *what) {
    char ini[4400];
    write_finetune(name, extra, ini);
    if (!pretrained) edit_file(ini, "[model]", "[train]", "");
    ldm_run_config c;
    assert_int_not_equal(ldm_run_config_read(ini, &c), LDM_OK);
    assert_contains(ldm_last_error(), what);
    assert_contains(ldm_last_error(), ini);
}

static void bad_settings_are_refused(void **state) {
    (void)state;
    make_base();
    refused("nopre", lora_section, 0, "[lora] rank = 2 needs [model] pretrained");
    refused("drop", "[lora]\nrank = 2\ndropout = 0.1\n", 1, "[lora] dropout = 0.1: not built yet");
    refused("targets", "[lora]\nrank = 2\ntargets = everything\n", 1, "[lora] targets");
    char frozen[4400];
    snprintf(frozen, sizeof frozen,
             "[lora]\nrank = 2\ntext_encoder = true\n[text]\nencoder = clip_frozen\n"
             "clip_path = %s/reference_model/clip\n",
             LDMCL_TEST_REF_DIR);
    refused("tefrozen", frozen, 1, "is not trained in the step");
    char ini[4400];
    write_finetune("missing", "", ini);
    edit_file(ini, "pretrained = ", "\n", "pretrained = nowhere");
    ldm_run_config c;
    assert_int_not_equal(ldm_run_config_read(ini, &c), LDM_OK);
    assert_contains(ldm_last_error(), "nowhere' does not exist");
    write_finetune("afile", "", ini);
    edit_file(ini, "pretrained = ", "\n", "pretrained = base/model/unet.safetensors");
    assert_int_not_equal(ldm_run_config_read(ini, &c), LDM_OK);
    assert_contains(ldm_last_error(), "is a file");
    write_finetune("noini", "", ini);
    edit_file(ini, "pretrained = ", "\n", "pretrained = data");
    assert_int_not_equal(ldm_run_config_read(ini, &c), LDM_OK);
    assert_contains(ldm_last_error(), "holds no model.ini");

    /* a folder whose UNet is not its model.ini's: the tensor named, nothing trained */
    char dir[2048], from[4400], to[4400];
    snprintf(dir, sizeof dir, "%s/other", g_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *files[] = {"model.ini", "unet.safetensors", "text_encoder.safetensors",
                           "autoencoder.safetensors", "bpe_simple_vocab_16e6.txt.gz"};
    for (int i = 0; i < 5; i++) {
        snprintf(from, sizeof from, "%s/base/model/%s", g_dir, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        size_t len;
        unsigned char *bytes = test_read_file(from, &len);
        test_write_file(to, bytes, len);
        free(bytes);
    }
    snprintf(to, sizeof to, "%s/model.ini", dir);
    edit_file(to, "time_emb_dim = ", "\n", "time_emb_dim = 16");
    write_finetune("wrongbase", lora_section, ini);
    edit_file(ini, "pretrained = ", "\n", "pretrained = other");
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    assert_int_not_equal(run(ini, 0, 0), LDM_OK);
    assert_contains(ldm_last_error(), "other/unet.safetensors");
    assert_contains(ldm_last_error(), "t_proj.0.weight (file [8, 8], model [16, 16])");
    assert_false(exists("wrongbase", "checkpoints"));
}

/* kohya's N_concept folders and sd-scripts' caption augmentations in a LoRA run: an epoch counts
 * each 3_zorb image three times; with shuffled tags and tag dropout an interrupted run resumed
 * gives the uninterrupted run's losses exactly. */
static void kohya_folders_and_tag_augmentation(void **state) {
    (void)state;
    make_base();
    char dir[2048], path[4400], from[4400];
    snprintf(dir, sizeof dir, "%s/kohya", g_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *sub[] = {"3_zorb", "other"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, sub[k]);
        assert_int_equal(mkdir(path, 0755), 0);
        for (int i = 0; i < 4; i++) {
            size_t len;
            snprintf(from, sizeof from, "%s/data/%s/%d.png", g_dir, k ? "right" : "left", i);
            unsigned char *png = test_read_file(from, &len);
            snprintf(path, sizeof path, "%s/%s/%d.png", dir, sub[k], i);
            test_write_file(path, png, len);
            free(png);
            if (!k) continue; /* 3_zorb's captions: its concept */
            snprintf(path, sizeof path, "%s/%s/%d.txt", dir, sub[k], i);
            test_write_file(path, "a right thing, bright, on the right, gray", 41);
        }
    }
    const char *extra = "[dataset]\nshuffle_caption = true\nkeep_tokens = 1\n"
                        "caption_tag_dropout_rate = 0.3\n";
    char ini[4400];
    for (int part = 0; part < 2; part++) {
        write_finetune(part ? "tagspart" : "tags", lora_section, ini);
        edit_file(ini, "[dataset]\npath = data\n", "[model]", extra);
        edit_file(ini, "[model]", "[model]", "path = kohya\n");
        edit_file(ini, "max_train_steps = 6", "\n", "num_train_epochs = 1");
        edit_file(ini, "validation_steps = 6", "\n", "validation_steps = 0");
        assert_status(run(ini, 0, part ? 3 : 0), LDM_OK);
        const char *log = test_log_text();
        assert_contains(log, "8 images, 0 without captions");
        assert_contains(log, "1 epochs of 16 images = 4 steps");
        assert_contains(log, "an epoch of the LDM stage is 16 latents of 8 images");
    }
    assert_status(run(ini, 1, 0), LDM_OK);
    char *a = losses("tags"), *b = losses("tagspart");
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\n4,"));
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_fine_tuning_starts_from_the_folder),
        cmocka_unit_test(lora_run_merges_into_the_folder),
        cmocka_unit_test(bad_settings_are_refused),
        cmocka_unit_test(kohya_folders_and_tag_augmentation),
    };
    return cmocka_run_group_tests(tests, train_fixture_setup, train_fixture_teardown);
}
