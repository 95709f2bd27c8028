/* ldmcl/dataset.h: a folder of captioned images for training.
 *   Layout: every .png/.jpg/.jpeg under the folder (recursively, sorted by path), each captioned
 *   by the same-stem .txt beside it; or the reference's CelebAMask-HQ layout, detected by a
 *   CelebA-HQ-img/ subfolder: images there, captions in celeba-caption/<stem>.txt.
 *   kohya's layout too: images in a top-level folder named N_concept ("10_sks dog") count N
 *   times per epoch (ldm_dataset_repeats) and, without a caption file, have the concept as
 *   their caption.
 *   Captions: one per line (blank lines ignored); one is picked per use. A missing caption file
 *   (outside kohya's folders) is a warning and the empty caption; a line that is not UTF-8 is a
 *   warning naming file and line and is dropped.
 *   Images: read when used (PNG, JPEG), resized and center-cropped to size x size as the
 *   reference's torchvision transform, optionally mirrored; an unreadable one is an error naming
 *   the file, which a trainer skips and counts. No images at all is an error. Only regular files
 *   are read: an image name that is a FIFO, device or socket is skipped with a warning naming
 *   it, a caption file that is one gives the empty caption with a warning.
 * Random choices (caption, flip) come from a key the caller gives, so a resumed run repeats them.
 */
#ifndef LDMCL_DATASET_H
#define LDMCL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "ldmcl/context.h"
#include "ldmcl/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ldm_dataset_options {
    int size;                /* training resolution (square) */
    int channels;            /* 1 (gray) or 3 (RGB) */
    int random_flip;         /* mirror left-right with probability 1/2 */
    const char *caption_ext; /* NULL: ".txt" */
    ldm_image_limits limits; /* zeros: the readers' defaults */
    ldm_log_fn log;          /* warnings (may be NULL) */
    void *log_user;
} ldm_dataset_options;

typedef struct ldm_dataset ldm_dataset;

ldm_status ldm_dataset_open(const char *dir, const ldm_dataset_options *o, ldm_dataset **out);
void ldm_dataset_destroy(ldm_dataset *d);

size_t ldm_dataset_count(const ldm_dataset *d);
const char *ldm_dataset_path(const ldm_dataset *d, size_t i);
/* Images without a caption file (or an N_concept folder's caption). */
size_t ldm_dataset_missing_captions(const ldm_dataset *d);
/* How many times image i counts per epoch: N in kohya's N_concept folders, else 1. */
int ldm_dataset_repeats(const ldm_dataset *d, size_t i);

/* Image i as floats [channels, size, size] in [-1, 1], mirrored when flip (whatever
 * random_flip says). */
ldm_status ldm_dataset_image(ldm_dataset *d, size_t i, int flip, float *image);

/* One of image i's captions chosen with key, as ldm_dataset_get chooses it ("" when none). */
const char *ldm_dataset_caption(const ldm_dataset *d, size_t i, uint64_t key);

/* Image i as floats [channels, size, size] in [-1, 1], and one of its captions (valid while the
 * dataset is open; "" when it has none), chosen with key. */
ldm_status ldm_dataset_get(ldm_dataset *d, size_t i, uint64_t key, float *image,
                           const char **caption);

#ifdef __cplusplus
}
#endif
#endif
