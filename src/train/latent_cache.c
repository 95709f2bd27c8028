/* src/train/latent_cache.c: the dataset encoded once by the autoencoder (see ldmcl/runner.h).
 * The cache file holds "latents" [n, z, h, w] and "indices" [n] (the dataset items they belong
 * to: unreadable images are left out), with random_flip also "latents_flipped" (the mirrored
 * images), and in its metadata the SHA-256 of the autoencoder file and a fingerprint of the
 * dataset (every file's path inside the dataset folder with its size and modification time, the
 * resolution and channels, and random_flip: the same folder reached by another path, relative or
 * absolute, keeps its cache). A cache whose keys differ is rebuilt, never reused. Stage two reads
 * it back through run_latent_cache_read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ldmcl/autoencoder.h"
#include "ldmcl/safetensors.h"
#include "runner_internal.h"
#include "sha256.h"

static void fingerprint(const run_ctx *r, char hex[65]) {
    ldm_sha256 s;
    ldm_sha256_init(&s);
    char head[128];
    snprintf(head, sizeof head, "ldmcl latent cache 2; resolution %d; channels %d%s",
             r->c->model.resolution, r->c->model.channels,
             r->c->random_flip ? "; flipped too" : "");
    ldm_sha256_field(&s, head, strlen(head));
    const char *root = r->c->dataset_path;
    size_t root_len = strlen(root);
    for (size_t i = 0; i < ldm_dataset_count(r->data); i++) {
        const char *p = ldm_dataset_path(r->data, i);
        struct stat st;
        char line[96] = "";
        if (stat(p, &st) == 0)
            snprintf(line, sizeof line, "%lld %lld.%09ld", (long long)st.st_size,
                     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        const char *inside = p; /* the path inside the dataset folder */
        if (!strncmp(p, root, root_len) && p[root_len] == '/') inside = p + root_len + 1;
        ldm_sha256_field(&s, inside, strlen(inside));
        ldm_sha256_field(&s, line, strlen(line));
    }
    unsigned char digest[32];
    ldm_sha256_final(&s, digest);
    ldm_sha256_hex(digest, hex);
}

/* Encodes the readable items of [i0, i1) into all (and their mirrored images into flipped, when
 * not NULL) from element 0 on, their dataset indices into indices; *kept encoded, *skipped
 * unreadable. */
static ldm_status encode_items(run_ctx *r, ldm_ae_codec *k, size_t i0, size_t i1, size_t lat,
                               float *all, float *flipped, float *indices, size_t *kept,
                               size_t *skipped) {
    const ldm_run_config *c = r->c;
    enum { batch = 16 };
    size_t per = (size_t)c->model.channels * c->model.resolution * c->model.resolution;
    float *images = malloc((size_t)batch * per * sizeof *images);
    float *blat = malloc((size_t)batch * lat * sizeof *blat);
    ldm_status st = images && blat ? LDM_OK : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    size_t i = i0;
    while (st == LDM_OK && i < i1) {
        int b = 0;
        size_t idx[batch];
        while (b < batch && i < i1) {
            ldm_status s = ldm_dataset_image(r->data, i, 0, images + (size_t)b * per);
            if (s == LDM_OK) {
                idx[b++] = i;
            } else if (s == LDM_ERR_FORMAT || s == LDM_ERR_NOT_FOUND) {
                if ((*skipped)++ < 10) run_note(r, LDM_LOG_WARN, "skipped: %s", ldm_last_error());
            } else {
                st = s;
                break;
            }
            i++;
        }
        if (st != LDM_OK || b == 0) break;
        for (int q = b; q < batch; q++) /* pad the last batch */
            memcpy(images + (size_t)q * per, images, per * sizeof *images);
        st = ldm_ae_codec_encode(k, images, blat, NULL);
        for (int q = 0; st == LDM_OK && q < b; q++)
            memcpy(all + (*kept + q) * lat, blat + (size_t)q * lat, lat * sizeof *all);
        if (st == LDM_OK && flipped) { /* the same images mirrored */
            for (int q = 0; st == LDM_OK && q < batch; q++)
                st = ldm_dataset_image(r->data, idx[q < b ? q : 0], 1, images + (size_t)q * per);
            if (st == LDM_OK) st = ldm_ae_codec_encode(k, images, blat, NULL);
            for (int q = 0; st == LDM_OK && q < b; q++)
                memcpy(flipped + (*kept + q) * lat, blat + (size_t)q * lat, lat * sizeof *all);
        }
        for (int q = 0; st == LDM_OK && q < b; q++)
            indices[(*kept)++] = (float)idx[q];
        if (r->o->progress && st == LDM_OK && ldm_job_rank(r->job) == 0) {
            int ranks = ldm_job_size(r->job); /* this rank's shard, as a share of the whole */
            ldm_run_progress p = {"encoding",
                                  (int)((i - i0) * (size_t)ranks),
                                  (int)((i1 - i0) * (size_t)ranks),
                                  0.0f,
                                  0.0,
                                  r->ae_total,
                                  r->ae_total + r->ldm_total};
            r->o->progress(r->o->progress_user, &p);
        }
    }
    free(images);
    free(blat);
    return st;
}

ldm_status run_latent_cache(run_ctx *r, const char *ae_path, char *cache_path) {
    const ldm_run_config *c = r->c;
    run_path(cache_path, r->out, "latents.safetensors");
    char ae_sha[65], data_fp[65];
    LDM_TRY(ldm_file_sha256(ae_path, ae_sha));
    fingerprint(r, data_fp);
    if (run_exists(cache_path)) {
        ldm_safetensors *st;
        int fresh = 0;
        ldm_status opened = ldm_safetensors_open(cache_path, &st);
        if (opened == LDM_OK) {
            const char *a = ldm_safetensors_metadata(st, "ldmcl.cache.autoencoder_sha256");
            const char *d = ldm_safetensors_metadata(st, "ldmcl.cache.dataset_sha256");
            fresh = a && d && !strcmp(a, ae_sha) && !strcmp(d, data_fp);
            ldm_safetensors_close(st);
            if (!fresh)
                run_note(r, LDM_LOG_WARN,
                         "latent cache %s is stale (another autoencoder or dataset): rebuilding it",
                         cache_path);
        } else { /* derived from the dataset: made again, nothing is lost */
            run_note(r, LDM_LOG_WARN, "latent cache %s is damaged (%s): rebuilding it", cache_path,
                     ldm_last_error());
        }
        if (fresh) {
            run_note(r, LDM_LOG_INFO, "latent cache %s matches the autoencoder and the dataset",
                     cache_path);
            return LDM_OK;
        }
    }
    size_t n = ldm_dataset_count(r->data);
    int batch = 16;
    ldm_ae_codec *k;
    LDM_TRY(ldm_ae_codec_create(r->ctx, &c->model.ae, batch, c->model.resolution,
                                c->model.resolution, 0, 0, &k));
    ldm_status st = ldm_ae_codec_load(k, ae_path);
    int shape[4];
    ldm_ae_codec_latent_shape(k, shape);
    size_t lat = (size_t)shape[1] * shape[2] * shape[3];
    /* data parallelism: each rank encodes its shard of the items, rank 0 gathers and writes */
    int rank = ldm_job_rank(r->job), ranks = ldm_job_size(r->job);
    size_t i0 = n * (size_t)rank / (size_t)ranks, i1 = n * (size_t)(rank + 1) / (size_t)ranks;
    float *all = malloc(n * lat * sizeof *all), *indices = malloc(n * sizeof *indices);
    float *flipped = c->random_flip ? malloc(n * lat * sizeof *flipped) : NULL;
    if (st == LDM_OK && (!all || !indices || (c->random_flip && !flipped)))
        st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory for %zu latents", n);
    size_t kept = 0, skipped = 0;
    if (st == LDM_OK) st = encode_items(r, k, i0, i1, lat, all, flipped, indices, &kept, &skipped);
    /* every rank's counts, then the shards rank after rank */
    double *counts = calloc(2 * (size_t)ranks, sizeof *counts);
    size_t *sizes = calloc((size_t)ranks, sizeof *sizes);
    if (st == LDM_OK && (!counts || !sizes)) st = LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of memory");
    if (st == LDM_OK && ranks > 1) {
        counts[2 * rank] = (double)kept;
        counts[2 * rank + 1] = (double)skipped;
        st = ldm_job_sum_f64(r->job, counts, 2 * (size_t)ranks, "the latent cache's counts");
        size_t total = 0, total_skipped = 0;
        for (int q = 0; q < ranks; q++) {
            total += (size_t)counts[2 * q];
            total_skipped += (size_t)counts[2 * q + 1];
        }
        float *z[3] = {all, flipped, indices};
        size_t per[3] = {lat, lat, 1};
        for (int w = 0; w < 3 && st == LDM_OK; w++) {
            if (!z[w]) continue;
            for (int q = 0; q < ranks; q++)
                sizes[q] = (size_t)counts[2 * q] * per[w];
            /* rank 0 gathers in place: its own shard is already first */
            st = ldm_job_gather(r->job, z[w], sizes, rank == 0 ? z[w] : NULL, 0,
                                "the latent cache's shards");
        }
        kept = total;
        skipped = total_skipped;
    }
    if (st == LDM_OK && kept == 0)
        st = LDM_FAIL(LDM_ERR_FORMAT, "no image of '%s' could be encoded", c->dataset_path);
    if (st == LDM_OK && rank == 0) {
        char count[32];
        snprintf(count, sizeof count, "%zu", kept);
        const char *meta[] = {"ldmcl.cache.autoencoder_sha256",
                              ae_sha,
                              "ldmcl.cache.dataset_sha256",
                              data_fp,
                              "ldmcl.latent_count",
                              count,
                              NULL};
        int64_t s_lat[4] = {(int64_t)kept, shape[1], shape[2], shape[3]},
                s_idx[1] = {(int64_t)kept};
        ldm_st_entry e[3] = {{"latents", 4, s_lat, all},
                             {"indices", 1, s_idx, indices},
                             {"latents_flipped", 4, s_lat, flipped}};
        st = ldm_safetensors_write(cache_path, e, flipped ? 3 : 2, meta);
    }
    if (st == LDM_OK)
        run_note(r, LDM_LOG_INFO, "latent cache %s: %zu images encoded%s, %zu unreadable skipped",
                 cache_path, kept, ranks > 1 ? " in shards by every rank" : "", skipped);
    /* the others read the file once rank 0 has written it */
    if (st == LDM_OK) st = run_all_ok(r, LDM_OK, "writing the latent cache");
    free(counts);
    free(sizes);
    free(all);
    free(flipped);
    free(indices);
    ldm_ae_codec_destroy(k);
    return st;
}

void run_latents_free(run_latents *l) {
    free(l->z);
    free(l->idx);
    free(l->z_flipped);
    memset(l, 0, sizeof *l);
}

/* Every index a whole number below n_items (a NaN or negative one would index anything). */
static ldm_status check_indices(const char *path, const float *idx, size_t n, size_t n_items) {
    for (size_t k = 0; k < n; k++)
        if (!(idx[k] >= 0 && (double)idx[k] < (double)n_items) || idx[k] != floorf(idx[k]))
            return LDM_FAIL(LDM_ERR_FORMAT,
                            "latent cache '%s': indices[%zu] = %g is not an item of the dataset "
                            "(%zu items)",
                            path, k, (double)idx[k], n_items);
    return LDM_OK;
}

ldm_status run_latent_cache_read(const ldm_run_config *c, const char *path, size_t n_items,
                                 run_latents *out) {
    memset(out, 0, sizeof *out);
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    const ldm_st_tensor *l = ldm_safetensors_find(st, "latents");
    const ldm_st_tensor *i = ldm_safetensors_find(st, "indices");
    int hw = ldm_autoencoder_latent_size(&c->model.ae, c->model.resolution);
    ldm_status e = LDM_OK;
    if (!l || !i || l->ndim != 4 || i->ndim != 1 || l->shape[0] != i->shape[0] ||
        l->shape[1] != c->model.ae.z_channels || l->shape[2] != hw || l->shape[3] != hw ||
        l->shape[2] % c->model.latent_patch)
        e = LDM_FAIL(LDM_ERR_FORMAT,
                     "'%s' is not a latent cache of this autoencoder (latents [n, %d, %d, %d] and "
                     "indices [n] expected)",
                     path, c->model.ae.z_channels, hw, hw);
    else if (l->shape[0] < 1)
        e = LDM_FAIL(LDM_ERR_FORMAT, "latent cache '%s' holds no latents", path);
    if (e == LDM_OK) {
        out->n = (size_t)l->shape[0];
        out->hw = (int)l->shape[2];
        out->lat = (size_t)l->shape[1] * l->shape[2] * l->shape[3];
        out->z = malloc(out->n * out->lat * sizeof *out->z);
        out->idx = malloc(out->n * sizeof *out->idx);
        e = out->z && out->idx ? ldm_safetensors_read_f32(st, l, out->z)
                               : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        if (e == LDM_OK) e = ldm_safetensors_read_f32(st, i, out->idx);
        if (e == LDM_OK) e = check_indices(path, out->idx, out->n, n_items);
    }
    if (e == LDM_OK && c->random_flip) {
        const ldm_st_tensor *f = ldm_safetensors_find(st, "latents_flipped");
        if (!f || f->ndim != 4 || memcmp(f->shape, l->shape, sizeof f->shape[0] * 4) != 0)
            e = LDM_FAIL(LDM_ERR_FORMAT,
                         "latent cache '%s' has no latents_flipped like its latents, but "
                         "random_flip is on",
                         path);
        if (e == LDM_OK) {
            out->z_flipped = malloc(out->n * out->lat * sizeof *out->z_flipped);
            e = out->z_flipped ? ldm_safetensors_read_f32(st, f, out->z_flipped)
                               : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
        }
    }
    ldm_safetensors_close(st);
    if (e != LDM_OK) run_latents_free(out);
    return e;
}
