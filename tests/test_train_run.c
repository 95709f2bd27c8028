/* tests/test_train_run.c: ldmcl-train's run end to end on the tiny dataset and config of
 * train_fixture.h: both stages, checkpoints and their rotation, the model folder, validation grid
 * and loss plot; an interrupted run resumed gives the uninterrupted run's losses exactly; a second
 * run reuses the finished autoencoder and the latent cache, a changed dataset rebuilds the cache;
 * random_flip caches and uses the mirrored images' latents; the autoencoder stage resumes
 * exactly; truncated and mismatched checkpoints are errors naming the file or tensor and change
 * nothing; every file the run needs is checked before the first step; a tokenizer larger
 * than the text encoder is refused; the program's exit codes.
 * (test_train_outputs: latent scaling and validation grids; test_train_inputs: bad inputs.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "draw.h"
#include "sha256.h"
#include "train_fixture.h"

static void full_run_and_exact_resume(void **state) {
    (void)state;
    char ini[4400];
    write_config("whole", 8, "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    const char *log = test_log_text();
    assert_contains(log, "13 images, 1 without captions");
    assert_contains(log, "no caption for");
    assert_contains(log, "right/5.txt");
    assert_contains(log, "corrupt.png' is not a readable PNG");
    assert_contains(log, "12 images encoded, 1 unreadable skipped");
    assert_true(exists("whole", "autoencoder.safetensors"));
    assert_true(exists("whole", "checkpoints/checkpoint-00000006.safetensors"));
    assert_true(exists("whole", "checkpoints/checkpoint-00000004.safetensors"));
    assert_false(exists("whole", "checkpoints/checkpoint-00000002.safetensors")); /* rotated */
    assert_true(exists("whole", "samples/step-00000006.png"));
    assert_true(exists("whole", "loss.png"));
    assert_true(exists("whole", "autoencoder_loss.png"));
    assert_true(exists("whole", "samples/autoencoder-step-00000003.png")); /* the stage's end */
    assert_true(exists("whole", "model/model.ini"));
    assert_true(exists("whole", "model/unet.safetensors"));
    assert_true(exists("whole", "model/text_encoder.safetensors"));
    char path[4400];
    snprintf(path, sizeof path, "%s/whole/checkpoints/latest", g_dir);
    char *latest = read_text(path);
    assert_contains(latest, "checkpoint-00000006.safetensors");
    free(latest);
    ldm_image img;
    snprintf(path, sizeof path, "%s/whole/samples/step-00000006.png", g_dir);
    assert_status(ldm_png_read(path, 1, NULL, &img), LDM_OK);
    /* a title line, then a row per prompt: its 16-pixel image enlarged to 96, captioned */
    assert_int_equal(img.height, 16 + 2 * (96 + 4));
    assert_true(img.width > 4 + 96 + 4 + ldm_draw_text_width("a left thing", 1));
    ldm_image_free(&img);
    snprintf(path, sizeof path, "%s/whole/loss.png", g_dir);
    assert_status(ldm_png_read(path, 3, NULL, &img), LDM_OK);
    assert_true(img.width == 720 && img.height == 360);
    ldm_image_free(&img);

    /* interrupted after 3 steps (last checkpoint: step 2), then resumed: the same losses */
    write_config("parted", 8, "", ini);
    assert_status(run(ini, 0, 3), LDM_OK);
    assert_contains(test_log_text(), "stopped after 3 steps");
    assert_false(exists("parted", "model/model.ini"));
    /* what a save killed in another process leaves: removed, and not counted as a checkpoint
     * (counted, step 9 would make the rotation remove step 4's) */
    char stale[4400];
    snprintf(stale, sizeof stale, "%s/parted/checkpoints/checkpoint-00000009.safetensors.tmp.1.0",
             g_dir);
    test_write_file(stale, "half", 4);
    /* and of every other file a run writes */
    const char *others[] = {"latents.safetensors.tmp.1.3", "train_log.csv.tmp.1.4",
                            "autoencoder-state.safetensors.tmp.1.5"};
    char other[3][4400];
    for (int i = 0; i < 3; i++) {
        snprintf(other[i], sizeof other[i], "%s/parted/%s", g_dir, others[i]);
        test_write_file(other[i], "half", 4);
    }
    assert_status(run(ini, 1, 0), LDM_OK);
    assert_false(test_file_exists(stale));
    for (int i = 0; i < 3; i++)
        assert_false(test_file_exists(other[i]));
    assert_contains(test_log_text(), "left by an interrupted save");
    assert_true(exists("parted", "checkpoints/checkpoint-00000004.safetensors"));
    assert_true(exists("parted", "checkpoints/checkpoint-00000006.safetensors"));
    assert_false(exists("parted", "checkpoints/checkpoint-00000002.safetensors"));
    log = test_log_text();
    assert_contains(log, "stage one skipped");
    assert_contains(log, "matches the autoencoder and the dataset");
    assert_contains(log, "resumed from");
    assert_contains(log, "checkpoint-00000002.safetensors at step 2");
    char *a = losses("whole"), *b = losses("parted");
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\n6,")); /* six steps, each once */
    assert_null(strstr(b, "\n7,"));
    free(a);
    free(b);
    /* killed after the last checkpoint, before its validation grid: the resumed run makes it */
    snprintf(path, sizeof path, "%s/parted/samples/step-00000006.png", g_dir);
    size_t grid_len;
    unsigned char *grid = test_read_file(path, &grid_len);
    assert_int_equal(remove(path), 0);
    assert_status(run(ini, 1, 0), LDM_OK);
    size_t again_len;
    unsigned char *again = test_read_file(path, &again_len);
    assert_true(grid_len == again_len && !memcmp(grid, again, grid_len));
    free(grid);
    free(again);

    /* the autoencoder stage stopped after 2 of its 3 steps (state saved at step 2; the
     * discriminator is on from step 2), then resumed: the same log and the same autoencoder,
     * byte for byte, and no state left behind */
    write_config("aeparted", 8, "", ini);
    assert_status(run_stopping(ini, 0, 0, 2), LDM_OK);
    assert_contains(test_log_text(), "autoencoder: stopped after 2 steps");
    assert_true(exists("aeparted", "autoencoder-state.safetensors"));
    /* one file holds both models' state, so they are replaced as one */
    assert_false(exists("aeparted", "discriminator-state.safetensors"));
    {
        char file[4400];
        snprintf(file, sizeof file, "%s/aeparted/autoencoder-state.safetensors", g_dir);
        ldm_safetensors *st;
        assert_status(ldm_safetensors_open(file, &st), LDM_OK);
        size_t disc = 0;
        for (size_t i = 0; i < ldm_safetensors_count(st); i++)
            disc += !strncmp(ldm_safetensors_at(st, i)->name, "discriminator_state.", 20);
        assert_true(disc > 0);
        assert_non_null(
            ldm_safetensors_metadata(st, "ldmcl.state.discriminator_state.optimizer_steps"));
        ldm_safetensors_close(st);
    }
    assert_false(exists("aeparted", "autoencoder.safetensors"));
    assert_false(exists("aeparted", "latents.safetensors"));
    assert_status(run_stopping(ini, 1, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "autoencoder: resumed from");
    assert_contains(test_log_text(), "autoencoder-state.safetensors at step 2");
    assert_false(exists("aeparted", "autoencoder-state.safetensors"));
    const char *same[] = {"autoencoder_log.csv", "autoencoder.safetensors",
                          "discriminator.safetensors"};
    for (int i = 0; i < 3; i++)
        same_file_bytes("whole", "aeparted", same[i]);
    /* a state left by a process killed after the stage's last save: removed, saying so */
    char leftover[4400];
    snprintf(leftover, sizeof leftover, "%s/aeparted/autoencoder-state.safetensors", g_dir);
    test_write_file(leftover, "left", 4);
    assert_status(run_stopping(ini, 1, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "the stage it belongs to is finished");
    assert_false(test_file_exists(leftover));
}

/* random_flip: the cache also holds the mirrored images' latents (each equal to encoding the
 * mirrored image), and the LDM stage draws them: with the same autoencoder (a KL one, whose
 * latents follow the image even after 3 steps), seed and captions the losses differ from the
 * unflipped run's. */
static void random_flip_uses_mirrored_latents(void **state) {
    (void)state;
    char ini[4400], path[4400];
    write_config_with("vae", 8, "", "kind = vae\n", "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    const char *ae = "kind = vae\ncheckpoint = vae/autoencoder.safetensors\n";
    write_config_with("flip", 8, "random_flip = true\n", ae, "", ini);
    assert_status(run(ini, 0, 0), LDM_OK);
    char *a = losses("vae"), *b = losses("flip");
    assert_string_not_equal(a, b);
    free(a);
    free(b);

    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    snprintf(path, sizeof path, "%s/flip/latents.safetensors", g_dir);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *l = ldm_safetensors_find(st, "latents"),
                        *f = ldm_safetensors_find(st, "latents_flipped"),
                        *ix = ldm_safetensors_find(st, "indices");
    assert_true(l && f && ix && f->ndim == 4 &&
                !memcmp(f->shape, l->shape, 4 * sizeof l->shape[0]));
    size_t n = (size_t)l->shape[0], lat = (size_t)(l->shape[1] * l->shape[2] * l->shape[3]);
    float *plain = malloc(n * lat * sizeof *plain), *mirrored = malloc(n * lat * sizeof *mirrored),
          *idx = malloc(n * sizeof *idx), *image = malloc(256 * sizeof *image), one[256];
    assert_true(lat <= 256);
    assert_status(ldm_safetensors_read_f32(st, l, plain), LDM_OK);
    assert_status(ldm_safetensors_read_f32(st, f, mirrored), LDM_OK);
    assert_status(ldm_safetensors_read_f32(st, ix, idx), LDM_OK);
    ldm_safetensors_close(st);
    snprintf(path, sizeof path, "%s/data", g_dir);
    ldm_dataset_options dopt = {.size = 16, .channels = 1};
    ldm_dataset *d;
    assert_status(ldm_dataset_open(path, &dopt, &d), LDM_OK);
    ldm_ae_codec *k;
    assert_status(ldm_ae_codec_create(g_ctx, &c.model.ae, 1, 16, 16, 0, 0, &k), LDM_OK);
    snprintf(path, sizeof path, "%s/vae/autoencoder.safetensors", g_dir);
    assert_status(ldm_ae_codec_load(k, path), LDM_OK);
    for (size_t i = 0; i < n; i += n - 1) { /* the first and the last */
        assert_status(ldm_dataset_image(d, (size_t)idx[i], 1, image), LDM_OK);
        assert_status(ldm_ae_codec_encode(k, image, one, NULL), LDM_OK);
        double diff = 0, apart = 0;
        for (size_t q = 0; q < lat; q++) {
            diff = fmax(diff, fabs(one[q] - mirrored[i * lat + q]));
            apart = fmax(apart, fabs(plain[i * lat + q] - mirrored[i * lat + q]));
        }
        assert_true(diff < 1e-4);
        assert_true(apart > 1e-2); /* the images are not symmetric */
    }
    ldm_ae_codec_destroy(k);
    ldm_dataset_destroy(d);
    free(plain);
    free(mirrored);
    free(idx);
    free(image);

    /* the same run without random_flip: the cache is stale */
    write_config_with("flip", 8, "", ae, "", ini);
    assert_status(run(ini, 1, 1), LDM_OK);
    assert_contains(test_log_text(), "is stale");
}

static void stale_cache_and_bad_checkpoints(void **state) {
    (void)state;
    char ini[4400], path[4400];
    write_config("whole", 8, "", ini); /* the run the first test made */
    /* a changed dataset file: the cache is rebuilt, the autoencoder kept */
    snprintf(path, sizeof path, "%s/data/right/0.png", g_dir);
    uint8_t px[256];
    memset(px, 200, sizeof px);
    ldm_image img = {16, 16, 1, px};
    sleep(1); /* a different modification time even on coarse file systems */
    assert_status(ldm_png_write(path, &img, NULL), LDM_OK);
    assert_status(run(ini, 1, 1), LDM_OK);
    assert_contains(test_log_text(), "stage one skipped");
    assert_contains(test_log_text(), "is stale");
    /* the same dataset folder by another path: the cache is kept */
    char *text = read_text(ini);
    char *at = strstr(text, "path = data\n");
    assert_non_null(at);
    char moved[8192];
    snprintf(moved, sizeof moved, "%.*spath = ./data/.\n%s", (int)(at - text), text,
             at + strlen("path = data\n"));
    test_write_file(ini, moved, strlen(moved));
    free(text);
    assert_status(run(ini, 1, 1), LDM_OK);
    assert_contains(test_log_text(), "matches the autoencoder and the dataset");
    /* a damaged cache (cut short) is made again, saying why */
    snprintf(path, sizeof path, "%s/whole/latents.safetensors", g_dir);
    size_t cache_len;
    unsigned char *cache = test_read_file(path, &cache_len);
    test_write_file(path, cache, cache_len - 1);
    free(cache);
    assert_status(run(ini, 1, 1), LDM_OK);
    assert_contains(test_log_text(), "latents.safetensors is damaged");
    assert_contains(test_log_text(), "12 images encoded");

    /* a truncated latest checkpoint: --resume falls back to the newest intact one (step 4),
     * saying so, and goes on to the end; a damaged `latest` pointer too; with every checkpoint
     * damaged, an error naming them that changes nothing */
    snprintf(path, sizeof path, "%s/whole/checkpoints/checkpoint-00000006.safetensors", g_dir);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    test_write_file(path, bytes, len / 2);
    free(bytes);
    assert_status(run(ini, 1, 0), LDM_OK);
    const char *log = test_log_text();
    assert_contains(log, "checkpoint-00000006.safetensors is damaged, not used");
    assert_contains(log, "resumed from the newest intact checkpoint");
    assert_contains(log, "checkpoint-00000004.safetensors at step 4");
    assert_true(exists("whole", "model/model.ini"));
    char latest[4400];
    snprintf(latest, sizeof latest, "%s/whole/checkpoints/latest", g_dir);
    test_write_file(latest, "../../somewhere\n", 16);
    assert_status(run(ini, 1, 0), LDM_OK);
    assert_contains(test_log_text(), "does not name a checkpoint: using the newest intact one");
    assert_contains(test_log_text(), "checkpoint-00000006.safetensors at step 6");
    char four[4400];
    snprintf(four, sizeof four, "%s/whole/checkpoints/checkpoint-00000004.safetensors", g_dir);
    unsigned char *six = test_read_file(path, &len);
    size_t len4;
    unsigned char *keep4 = test_read_file(four, &len4);
    test_write_file(path, six, 40);
    test_write_file(four, keep4, 40);
    assert_int_equal(run(ini, 1, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "no intact checkpoint to resume from");
    assert_contains(ldm_last_error(), "checkpoint-00000004.safetensors is damaged");
    size_t now;
    free(test_read_file(path, &now));
    assert_int_equal(now, 40); /* nothing was written over */
    test_write_file(path, six, len);
    test_write_file(four, keep4, len4);
    free(six);
    free(keep4);

    /* a checkpoint of another UNet (time_emb_dim 16): an error naming a tensor */
    char other[4500];
    snprintf(other, sizeof other, "resume_from_checkpoint = %s\n", path);
    write_config("other", 16, other, ini);
    assert_int_not_equal(run(ini, 0, 0), LDM_OK);
    assert_contains(ldm_last_error(), "checkpoint-00000006.safetensors");
    assert_contains(ldm_last_error(), "t_proj.0.weight");
    assert_false(exists("other", "checkpoints/latest"));
}

/* Every file the run needs is checked before the first step: a missing vocabulary or a damaged
 * autoencoder checkpoint stops the run before anything is written; a damaged finished
 * autoencoder in the output folder is an error that changes nothing. */
static void inputs_checked_before_the_first_step(void **state) {
    (void)state;
    char ini[4400];
    write_config("novocab", 8, "", ini);
    char *text = read_text(ini);
    char *at = strstr(text, LDMCL_CLIP_BPE_DEFAULT);
    assert_non_null(at);
    char changed[8192];
    snprintf(changed, sizeof changed, "%.*s/nowhere/vocab.txt.gz%s", (int)(at - text), text,
             at + strlen(LDMCL_CLIP_BPE_DEFAULT));
    test_write_file(ini, changed, strlen(changed));
    free(text);
    assert_int_not_equal(run(ini, 0, 0), LDM_OK);
    assert_contains(ldm_last_error(), "[text] vocab");
    assert_contains(ldm_last_error(), "/nowhere/vocab.txt.gz");
    assert_false(exists("novocab", "autoencoder_log.csv"));
    assert_false(exists("novocab", "autoencoder-state.safetensors"));

    /* a damaged [autoencoder] checkpoint: named before the LDM stage starts */
    char bad[4400], ae[4500];
    snprintf(bad, sizeof bad, "%s/damaged.safetensors", g_dir);
    test_write_file(bad, "\x10\0\0\0\0\0\0\0{\"a\":", 13);
    snprintf(ae, sizeof ae, "checkpoint = %s\n", bad);
    write_config_with("badae", 8, "", ae, "", ini);
    assert_int_equal(run(ini, 0, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "[autoencoder] checkpoint");
    assert_contains(ldm_last_error(), "damaged.safetensors");
    assert_false(exists("badae", "latents.safetensors"));

    /* a damaged finished autoencoder in the output folder: an error, never trained over */
    char from[4400], to[4400];
    write_config("damagedae", 8, "", ini);
    snprintf(to, sizeof to, "%s/damagedae", g_dir);
    assert_int_equal(mkdir(to, 0755), 0);
    snprintf(from, sizeof from, "%s/whole/autoencoder.safetensors", g_dir);
    snprintf(to, sizeof to, "%s/damagedae/autoencoder.safetensors", g_dir);
    size_t len;
    unsigned char *bytes = test_read_file(from, &len);
    test_write_file(to, bytes, len - 4);
    free(bytes);
    assert_int_equal(run(ini, 0, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "remove it to train stage one again");
    assert_contains(ldm_last_error(), "damagedae/autoencoder.safetensors");
    size_t now;
    free(test_read_file(to, &now));
    assert_int_equal(now, len - 4);
    assert_false(exists("damagedae", "autoencoder_log.csv"));
}

/* A text encoder configured with fewer tokens than the tokenizer has: stage two refuses to start,
 * naming the tokenizer's file, the config and both sizes. */
static void tokenizer_larger_than_the_encoder_is_refused(void **state) {
    (void)state;
    char ini[4400];
    write_config("whole", 8, "", ini); /* the run the first test made */
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    c.model.clip.vocab_size = 1000;
    ldm_run_options o = {.stage = LDM_STAGE_ALL, .resume = 1, .log = test_capture_log};
    assert_status(ldm_run_train(g_ctx, &c, &o), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bpe_simple_vocab_16e6.txt.gz' has 49408 tokens but the "
                                      "text encoder ('");
    assert_contains(ldm_last_error(), "whole.ini' [text]) embeds 1000 (vocab_size)");
}

/* The program: exit 2 for bad flags or a bad config (naming file and line), 0 when done. */
static void program_exit_codes(void **state) {
    (void)state;
    char cmd[9000], text[2048], ini[4400];
    snprintf(cmd, sizeof cmd, "'%s' --frobnicate 2>&1", LDMCL_TRAIN_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "unknown option '--frobnicate' (see --help)");
    snprintf(cmd, sizeof cmd, "'%s' x.ini --stgae ldm 2>&1", LDMCL_TRAIN_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "unknown option '--stgae' (did you mean '--stage'?");
    snprintf(cmd, sizeof cmd, "'%s' x.ini --stage 2>&1", LDMCL_TRAIN_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "'--stage' needs a value");
    snprintf(cmd, sizeof cmd, "'%s' --version 2>&1", LDMCL_TRAIN_PROGRAM);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "ldmcl-train " LDMCL_VERSION "\n");
    snprintf(ini, sizeof ini, "%s/broken.ini", g_dir);
    test_write_file(ini, "[train]\nmax_train_steps = 6\nlearning_rate 1e-3\n", 46);
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "broken.ini:3");
    assert_null(strstr(text, "src/io/")); /* ldmcl's source positions only with -v */
    snprintf(cmd, sizeof cmd, "'%s' '%s' -v 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "src/io/ini.c:");
    /* the finished run again, LDM stage only: resumes at the end, exits 0 */
    write_config("whole", 8, "", ini);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' '%s' --stage ldm --resume 2>&1", g_dir,
             LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "resumed from");
    /* --profile: step 2 of each stage timed by kernel; the losses are those of an unprofiled
     * run */
    snprintf(cmd, sizeof cmd, "'%s' '%s' --profile 0 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 2);
    assert_contains(text, "--profile 0: a step number from 1");
    write_config("profiled", 8, "", ini);
    snprintf(cmd, sizeof cmd, "'%s' '%s' --profile 2 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    static char big[65536];
    assert_int_equal(test_run_capture(cmd, big, sizeof big), 0);
    assert_contains(big, "autoencoder step 2: ");
    assert_contains(big, "ldm step 2: ");
    assert_contains(big, "kinds of launch:\n");
    assert_contains(big, "  gemm ");
    assert_contains(big, "adam_step");
    char *a = losses("parted"), *b = losses("profiled"); /* "whole" was cut short since */
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* a line per checkpoint and a summary at the end */
    assert_contains(big, "checkpoint: step 4 saved in ");
    assert_contains(big, "checkpoint-00000004.safetensors\n");
    assert_contains(big, "done in 0:");
    assert_contains(big, "profiled/model\n");
    /* and the command it says samples the model works as printed */
    const char *hint = strstr(big, "sample it: ");
    assert_non_null(hint);
    hint += strlen("sample it: ");
    const char *eol = strchr(hint, '\n');
    assert_non_null(eol);
    snprintf(cmd, sizeof cmd, "cd '%s' && %.*s --steps 2 2>&1", g_dir, (int)(eol - hint), hint);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 0);
    assert_contains(text, "output.png: seed=42");
    /* the same folder again without --resume: refused, saying what to do */
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, text, sizeof text), 1);
    assert_contains(text, "profiled' holds an earlier run's checkpoints");
    assert_contains(text, "add --resume to continue that run");
    /* on a terminal 50 columns wide (script(1) gives it a pseudo-terminal): the progress line
     * is rewritten in place and never longer than 49 columns */
    write_config("narrow", 8, "", ini);
    snprintf(cmd, sizeof cmd, "script -qec \"stty cols 50 rows 24; '%s' '%s'\" /dev/null 2>&1",
             LDMCL_TRAIN_PROGRAM, ini);
    assert_int_equal(test_run_capture(cmd, big, sizeof big), 0);
    assert_contains(big, "\r\033[Kldm 3/6  loss ");
    assert_contains(big, " ETA 0:00:");
    /* the progress lines: after \r\033[K, starting with a stage's name (log lines, which
     * replace them, may be longer) */
    int lines = 0;
    for (const char *q = strstr(big, "\r\033[K"); q; q = strstr(q + 1, "\r\033[K")) {
        const char *line = q + 4, *end = line;
        while (*end && *end != '\r' && *end != '\n')
            end++;
        if (strncmp(line, "autoencoder ", 12) && strncmp(line, "ldm ", 4)) continue;
        lines++;
        if (end - line > 49)
            fail_msg("a progress line of %d columns: %.*s", (int)(end - line), (int)(end - line),
                     line);
    }
    assert_true(lines >= 9); /* 3 autoencoder steps, 6 of the LDM */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_run_and_exact_resume),
        cmocka_unit_test(random_flip_uses_mirrored_latents),
        cmocka_unit_test(stale_cache_and_bad_checkpoints),
        cmocka_unit_test(inputs_checked_before_the_first_step),
        cmocka_unit_test(tokenizer_larger_than_the_encoder_is_refused),
        cmocka_unit_test(program_exit_codes),
    };
    return cmocka_run_group_tests(tests, train_fixture_setup, train_fixture_teardown);
}
