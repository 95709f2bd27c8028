/* src/train/run_loop.c: the loop both stages of a training run share (see runner_internal.h):
 * the CSV log (cut back to the step resumed from, a header when new), each step between an
 * optional preparation and the profiler's markers, its log line, the progress callback, the
 * stage's own work after a step (checkpoints, validation), and stopping early as asked. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runner_internal.h"

ldm_status run_loop(run_ctx *r, const run_stage_loop *l, run_loop_end *end) {
    end->finished = l->start >= l->total;
    end->stopped = 0;
    end->seconds = 0;
    FILE *csv = NULL; /* rank 0's alone */
    if (RUN_WRITES(r)) {
        if (l->start) LDM_TRY(run_trim_log(l->csv_path, l->start));
        csv = fopen(l->csv_path, l->start ? "a" : "w");
        if (!csv) return LDM_FAIL(LDM_ERR_IO, "cannot write '%s'", l->csv_path);
        if (!l->start) fprintf(csv, "%s\n", l->csv_header);
    }
    double t0 = ldm_now_s();
    int done_here = 0;
    ldm_status st = LDM_OK;
    for (int step = l->start; st == LDM_OK && step < l->total; step++) {
        if (l->prepare) st = l->prepare(l->self, step);
        double ts = ldm_now_s();
        if (st == LDM_OK) st = run_profile_begin(r, step);
        float loss = 0;
        if (st == LDM_OK) st = l->step(l->self, step, &loss);
        if (st == LDM_OK) st = run_profile_report(r, l->stage, step, ldm_now_s() - ts);
        if (st != LDM_OK) break;
        double el = ldm_now_s() - t0;
        char line[512];
        l->log_line(l->self, step, el, line, sizeof line);
        if (csv) {
            fprintf(csv, "%s\n", line);
            fflush(csv);
        }
        if (r->o->progress && RUN_WRITES(r)) {
            int before = strcmp(l->stage, "autoencoder") ? r->ae_total : 0;
            ldm_run_progress p = {l->stage,
                                  step + 1,
                                  l->total,
                                  loss,
                                  el,
                                  before + step + 1,
                                  r->ae_total + r->ldm_total};
            r->o->progress(r->o->progress_user, &p);
        }
        if (l->after) st = l->after(l->self, step);
        end->finished = step + 1 == l->total;
        if (st == LDM_OK && l->stop_after > 0 && ++done_here == l->stop_after && !end->finished) {
            l->stopped(l->self, done_here, step);
            end->stopped = 1;
            break;
        }
    }
    if (csv) fclose(csv);
    end->seconds = ldm_now_s() - t0;
    return st;
}
