/* src/sample/model_meta.c: what a UNet file says of its diffusion (prediction type, noise
 * schedule), read from its metadata (see ldmcl/model.h; ldm_diffusion_save writes it). */
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "ldmcl/model.h"
#include "ldmcl/safetensors.h"

ldm_status ldm_diffusion_read_meta(const char *path, ldm_diffusion_meta *m) {
    /* The reference's celebhq text configs: epsilon, scaled_linear, 1000, 0.00085 .. 0.012. */
    *m = (ldm_diffusion_meta){
        LDM_PREDICT_EPSILON, LDM_SCHEDULE_SCALED_LINEAR, 1000, 0.00085, 0.012, 0};
    ldm_safetensors *st;
    LDM_TRY(ldm_safetensors_open(path, &st));
    ldm_status status = LDM_OK;
    const char *pred = ldm_safetensors_metadata(st, LDM_META_PREDICTION);
    const char *sched = ldm_safetensors_metadata(st, LDM_META_SCHEDULE);
    const char *T = ldm_safetensors_metadata(st, LDM_META_TIMESTEPS);
    const char *b0 = ldm_safetensors_metadata(st, LDM_META_BETA_START);
    const char *b1 = ldm_safetensors_metadata(st, LDM_META_BETA_END);
    if (pred) {
        m->from_file = 1;
        if (!strcmp(pred, "epsilon"))
            m->prediction = LDM_PREDICT_EPSILON;
        else if (!strcmp(pred, "v_prediction"))
            m->prediction = LDM_PREDICT_V;
        else
            status = LDM_FAIL(LDM_ERR_FORMAT,
                              "'%s': ldmcl.prediction_type '%s' is neither epsilon "
                              "nor v_prediction",
                              path, pred);
    }
    if (sched && status == LDM_OK) {
        status = ldm_schedule_kind_from_name(sched, &m->schedule);
        if (status != LDM_OK) ldm_error_prefix("'%s': ldmcl.beta_schedule", path);
    }
    char *end;
    if (T && status == LDM_OK) {
        long v = strtol(T, &end, 10);
        if (*end || v < 1 || v > 100000)
            status = LDM_FAIL(LDM_ERR_FORMAT, "'%s': ldmcl.num_timesteps '%s'", path, T);
        m->num_timesteps = (int)v;
    }
    if (b0 && status == LDM_OK) {
        m->beta_start = strtod(b0, &end);
        if (*end) status = LDM_FAIL(LDM_ERR_FORMAT, "'%s': ldmcl.beta_start '%s'", path, b0);
    }
    if (b1 && status == LDM_OK) {
        m->beta_end = strtod(b1, &end);
        if (*end) status = LDM_FAIL(LDM_ERR_FORMAT, "'%s': ldmcl.beta_end '%s'", path, b1);
    }
    ldm_safetensors_close(st);
    return status;
}
