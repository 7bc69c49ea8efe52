/* hl_eval_stats: see hl_eval_stats.h. */
#include "hl_eval_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hl_report.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hl_eval_percentile(double *v, size_t n, double p) {
    if (n == 0) return -1;
    qsort(v, n, sizeof *v, cmp_double);
    double r = ceil(p / 100.0 * (double)n - 1e-9);
    size_t rank = r < 1 ? 1 : (size_t)r;
    if (rank > n) rank = n;
    return v[rank - 1];
}

int hl_eval_bucket(long tokens) {
    if (tokens <= 1000) return HL_EVAL_BUCKET_1K;
    if (tokens <= 4000) return HL_EVAL_BUCKET_4K;
    if (tokens <= 8000) return HL_EVAL_BUCKET_8K;
    return HL_EVAL_BUCKET_MORE;
}

const char *hl_eval_bucket_name(int bucket) {
    static const char *const names[HL_EVAL_N_BUCKETS] = {"<=1k", "1k-4k", "4k-8k", ">8k"};
    return bucket >= 0 && bucket < HL_EVAL_N_BUCKETS ? names[bucket] : "?";
}

hl_err hl_eval_acc_add(hl_eval_acc *a, const hl_eval_obs *o) {
    if (o->refused) {
        a->refused++;
        return HL_OK;
    }
    if (o->ok && a->n_lat == a->cap_lat) {
        size_t nc = a->cap_lat ? a->cap_lat * 2 : 16;
        double *nv = realloc(a->lat, nc * sizeof *nv);
        if (!nv) return HL_ERR_NOMEM;
        a->lat = nv;
        a->cap_lat = nc;
    }
    a->calls++;
    a->input_tokens += o->input_tokens;
    a->output_tokens += o->output_tokens;
    if (o->cost_known)
        a->cost_usd += o->cost_usd;
    else
        a->cost_unknown = true;
    if (!o->ok) {
        a->errors++;
        return HL_OK;
    }
    a->lat[a->n_lat++] = o->latency_ms;
    if (o->scored) {
        a->n++;
        a->agree += o->agree;
        a->score_sum += o->score;
    }
    return HL_OK;
}

void hl_eval_acc_release(hl_eval_acc *a) {
    free(a->lat);
    memset(a, 0, sizeof *a);
}

void hl_eval_acc_summary(hl_eval_acc *a, hl_eval_summary *s) {
    memset(s, 0, sizeof *s);
    s->calls = a->calls;
    s->errors = a->errors;
    s->refused = a->refused;
    s->n = a->n;
    s->agree = a->agree;
    s->accuracy = a->n ? (double)a->agree / (double)a->n : -1;
    s->mean_score = a->n ? a->score_sum / (double)a->n : -1;
    if (a->n) hl_report_wilson(a->agree, a->n, &s->ci_lo, &s->ci_hi);
    else s->ci_lo = 0, s->ci_hi = 1;
    s->p50_ms = hl_eval_percentile(a->lat, a->n_lat, 50);
    s->p95_ms = hl_eval_percentile(a->lat, a->n_lat, 95);
    s->input_tokens = a->input_tokens;
    s->output_tokens = a->output_tokens;
    s->cost_usd = a->cost_usd;
    s->cost_unknown = a->cost_unknown;
}
