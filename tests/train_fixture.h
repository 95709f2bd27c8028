/* tests/train_fixture.h: what the training-run tests (test_train_run, test_train_outputs,
 * test_train_inputs) share: a tiny generated dataset (16x16 gray images in two class folders
 * with captions, one without captions, one corrupt PNG) in a temporary folder, a tiny config
 * written there by name, runs of it, and readers of what a run wrote. */
#ifndef LDMCL_TEST_TRAIN_FIXTURE_H
#define LDMCL_TEST_TRAIN_FIXTURE_H

#include "test_util.h"

extern char g_dir[1024]; /* the temporary folder: data/ and one folder per run */
extern ldm_ctx *g_ctx;

/* cmocka group setup and teardown: the folder, the dataset, the context. */
int train_fixture_setup(void **state);
int train_fixture_teardown(void **state);

/* A two-class dataset of 16x16 images under root. */
void make_dataset(const char *root);
/* Writes DIR/NAME.ini for output folder DIR/NAME (ini receives its path); extra lines appended
 * to [dataset], [autoencoder] and [train]. */
void write_config_with(const char *name, int time_emb_dim, const char *dataset_extra,
                       const char *ae_extra, const char *extra, char *ini);
void write_config(const char *name, int time_emb_dim, const char *extra, char *ini);
/* A run from the config file; stop_after / ae_stop_after as in ldm_run_options. */
ldm_status run_stopping(const char *ini, int resume, int stop_after, int ae_stop_after);
ldm_status run(const char *ini, int resume, int stop_after);
/* A whole text file as a string (free it). */
char *read_text(const char *path);
/* The step and loss columns of run NAME's train_log.csv, as text (free it). */
char *losses(const char *name);
/* Fails the test unless runs a and b wrote FILE byte for byte alike. */
void same_file_bytes(const char *a, const char *b, const char *file);
/* Whether run NAME wrote FILE. */
int exists(const char *name, const char *file);
/* The validation grid of run NAME (two prompts, "a left thing" and "right"; 6 steps) at its last
 * step is, pixel for pixel, what ldmcl-sample's pipeline makes from its model folder. */
void grid_is_the_model_folders(const char *name, const char *ini);
/* Replaces the text file's first stretch from `from` up to (not including) `until` by `to`. */
void edit_file(const char *path, const char *from, const char *until, const char *to);

#endif
