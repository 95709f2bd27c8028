/* tests/test_train_inputs.c: a training run's bad inputs, on the tiny dataset and config of
 * train_fixture.h: a non-finite loss stops the run and keeps the checkpoints, a latent cache
 * indexing beyond the dataset is an error, and an empty dataset is an error. (Files checked before
 * the first step, which need test_train_run's finished run: there.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"
#include "train_fixture.h"

/* A latent cache whose values are NaN (as a diverged autoencoder would give; the checksum made
 * to match): the loss of the first step after the resume is not finite; the run stops naming the
 * step and writes no checkpoint. A cache that fails its checksum is rebuilt. */
/* Overwrites the bytes of a tensor of a safetensors file (all of them with fill when bytes_in is
 * NULL, else n bytes from its start) and puts the file's SHA-256 right, as a file written so
 * would have it. */
static void patch_tensor(const char *path, const char *name, const void *bytes_in, size_t n,
                         int fill, uint64_t *header_out, uint64_t *begin_out) {
    /* (header_out, begin_out: where the tensor's bytes start, 8 + header + begin) */
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    const ldm_st_tensor *t = ldm_safetensors_find(st, name);
    assert_non_null(t);
    uint64_t begin = t->begin, end = t->end;
    ldm_safetensors_close(st);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--)
        header = header << 8 | bytes[i];
    assert_true(8 + header + end <= len && (bytes_in ? n <= end - begin : 1));
    if (bytes_in)
        memcpy(bytes + 8 + header + begin, bytes_in, n);
    else
        memset(bytes + 8 + header + begin, fill, end - begin);
    ldm_sha256 sha;
    unsigned char digest[32];
    char hex[65];
    ldm_sha256_init(&sha);
    ldm_sha256_update(&sha, bytes + 8 + header, len - 8 - header);
    ldm_sha256_final(&sha, digest);
    ldm_sha256_hex(digest, hex);
    char *sum = strstr((char *)bytes + 8, "\"ldmcl.sha256\":\"");
    assert_non_null(sum);
    memcpy(sum + strlen("\"ldmcl.sha256\":\""), hex, 64);
    test_write_file(path, bytes, len);
    free(bytes);
    if (header_out) *header_out = header;
    if (begin_out) *begin_out = begin;
}

static void non_finite_loss_stops_the_run(void **state) {
    (void)state;
    char ini[4400], path[4400];
    write_config("nan", 8, "", ini);
    assert_status(run(ini, 0, 2), LDM_OK);
    snprintf(path, sizeof path, "%s/nan/latents.safetensors", g_dir);
    /* an index beyond the dataset (a cache of another dataset with a forged fingerprint): an
     * error naming it, not a read beyond the captions */
    float beyond = 99.0f;
    unsigned char idx0[4];
    {
        ldm_safetensors *st;
        assert_status(ldm_safetensors_open(path, &st), LDM_OK);
        float first[64];
        const ldm_st_tensor *t = ldm_safetensors_find(st, "indices");
        assert_true(t && t->numel <= 64);
        assert_status(ldm_safetensors_read_f32(st, t, first), LDM_OK);
        memcpy(idx0, &first[0], 4);
        ldm_safetensors_close(st);
    }
    patch_tensor(path, "indices", &beyond, 4, 0, NULL, NULL);
    assert_int_equal(run(ini, 1, 0), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "indices[0] = 99 is not an item of the dataset (13 items)");
    patch_tensor(path, "indices", idx0, 4, 0, NULL, NULL);
    uint64_t header, begin;
    patch_tensor(path, "latents", NULL, 0, 0xff, &header, &begin); /* NaN */
    assert_int_not_equal(run(ini, 1, 0), LDM_OK);
    assert_contains(ldm_last_error(), "not finite at step 3");
    snprintf(path, sizeof path, "%s/nan/checkpoints/latest", g_dir);
    char *latest = read_text(path);
    assert_contains(latest, "checkpoint-00000002.safetensors");
    free(latest);
    assert_true(exists("nan", "checkpoints/checkpoint-00000002.safetensors"));
    assert_false(exists("nan", "checkpoints/checkpoint-00000004.safetensors"));
    assert_false(exists("nan", "model/model.ini"));

    /* the NaN cache with one more bit flipped: its checksum fails, it is rebuilt from the
     * autoencoder and the run goes on */
    snprintf(path, sizeof path, "%s/nan/latents.safetensors", g_dir);
    size_t len;
    unsigned char *bytes = test_read_file(path, &len);
    bytes[8 + header + begin] ^= 0x01;
    test_write_file(path, bytes, len);
    free(bytes);
    assert_status(run(ini, 1, 2), LDM_OK);
    assert_contains(test_log_text(), "latents.safetensors is damaged (");
    assert_contains(test_log_text(), "the tensor data do not match its SHA-256");
    assert_true(exists("nan", "checkpoints/checkpoint-00000004.safetensors"));
}

static void empty_dataset_is_an_error(void **state) {
    (void)state;
    char ini[4400], path[2048];
    write_config("empty", 8, "", ini);
    /* point the dataset at an empty folder */
    snprintf(path, sizeof path, "%s/nothing", g_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    ldm_run_config c;
    assert_status(ldm_run_config_read(ini, &c), LDM_OK);
    snprintf(c.dataset_path, sizeof c.dataset_path, "%s", path);
    ldm_run_options o = {.stage = LDM_STAGE_ALL};
    assert_int_not_equal(ldm_run_train(g_ctx, &c, &o), LDM_OK);
    assert_contains(ldm_last_error(), "nothing");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(non_finite_loss_stops_the_run),
        cmocka_unit_test(empty_dataset_is_an_error),
    };
    return cmocka_run_group_tests(tests, train_fixture_setup, train_fixture_teardown);
}
