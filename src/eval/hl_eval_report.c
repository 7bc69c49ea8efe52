/* hl_eval_report: see hl_eval_report.h. The output formats:
 *
 *   table  a heading line (run id, items, backends, reference, method), then one row per
 *          backend and slice: "all", "task=T" per task type, "prompt=B" per prompt bucket
 *          with items; accuracy as a percentage with its 95% interval.
 *   json   {"run", "dataset", "items", "skipped", "reference", "compare", "threshold",
 *           "backends": [{"name", "location", "model", "overall": S, "by_task_type": {T: S},
 *           "by_prompt_tokens": {B: S}}], "failures": [{"item", "line", "backend", "status",
 *           "error"}]} where S is {"calls", "errors", "refused", "n", "agree", "accuracy",
 *           "ci95": [lo, hi], "mean_score", "latency_ms": {"p50", "p95"}, "input_tokens",
 *           "output_tokens", "cost_usd"}; null for what is unknown (no scored answer, no
 *           answer, a cloud model without a price).
 *   csv    a header, then one row per backend and slice: backend, slice (all, task_type,
 *          prompt_tokens), key, and the figures of S flattened; empty fields for unknowns. */
#include "hl_eval_report.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ scoring */

hl_err hl_eval_score_all(const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res,
                         hl_eval_score *scores) {
    size_t nb = su->n_backends;
    for (size_t i = 0; i < ds->n; i++) {
        const hl_eval_item *it = &ds->v[i];
        const hl_chat_response *ref = NULL;
        const char *ref_name = NULL;
        if (it->has_expected) {
            ref = &it->expected;
            ref_name = "expected";
        } else if (su->reference >= 0 && hl_eval_at(res, i, (size_t)su->reference)->status == HL_EVAL_OK) {
            ref = &hl_eval_at(res, i, (size_t)su->reference)->resp;
            ref_name = su->backends[su->reference]->cfg->name;
        }
        for (size_t b = 0; b < nb; b++) {
            hl_eval_score *sc = &scores[i * nb + b];
            memset(sc, 0, sizeof *sc);
            const hl_eval_call *c = hl_eval_at(res, i, b);
            if (!ref || c->status != HL_EVAL_OK || (!it->has_expected && (int)b == su->reference)) continue;
            hl_cmp_method m = su->method;
            if (it->expected_json && ref == &it->expected && m == HL_CMP_AUTO) m = HL_CMP_JSON;
            hl_cmp_result cr;
            hl_err e = hl_compare(ref, &c->resp, it->task_type, m, su->threshold, &cr);
            if (e != HL_OK) return e;
            *sc = (hl_eval_score){.scored = true, .agree = cr.agree, .score = cr.score, .method = cr.method,
                                  .reference = ref_name, .ref_output_tokens = ref->usage.output_tokens};
        }
    }
    return HL_OK;
}

/* ------------------------------------------------------------------ ledger */

void hl_eval_ledger_record(const hl_eval_setup *su, size_t item_index, const hl_eval_item *it, size_t backend,
                           const hl_privacy_verdict *pv, const hl_eval_call *c, const hl_eval_score *sc,
                           char *id_buf, size_t id_len, hl_ledger_record *out) {
    hl_backend *b = su->backends[backend];
    snprintf(id_buf, id_len, "%s-%zu", su->run_id, item_index + 1);
    *out = (hl_ledger_record){
        .timestamp = c->wall0,
        .request_id = id_buf,
        .attempt = c->attempt,
        .cloud = hl_backend_is_cloud(b),
        .backend = b->cfg->name,
        .model = hl_backend_model(b),
        .route_reason = "eval",
        .status = c->status == HL_EVAL_OK ? "ok" : "error",
        .pii = pv->pii[0] ? pv->pii : NULL,
        .task_type = it->task_type,
        .sensitive = pv->sensitive,
        .usage = c->status == HL_EVAL_OK ? c->usage : (hl_usage){0},
        .latency_ms = c->latency_ms,
        .ttft_ms = -1,
        .confidence = c->status == HL_EVAL_OK ? c->confidence : -1,
        .signals = c->status == HL_EVAL_OK && c->signals,
        .confidence_margin = c->confidence_margin,
        .confidence_min = c->confidence_min,
        .cost_usd = c->cost_usd,
        .cost_known = c->cost_known,
        .http_status = c->http_status,
        .error = c->status == HL_EVAL_OK ? NULL : c->error,
        .eval_run = su->run_id,
    };
    if (sc && sc->scored) {
        out->scored = true;
        out->score = sc->score;
        out->score_method = hl_cmp_method_name(sc->method);
        out->agree = sc->agree;
        out->reference = sc->reference;
        out->ref_output_tokens = sc->ref_output_tokens;
    }
}

/* ------------------------------------------------------------------ aggregation */

/* Rows of one backend: all, then one per task type, then one per bucket. */
typedef struct table {
    const char **types;  /* distinct task types, in dataset order ("none" for items without) */
    size_t n_types;
    size_t per_backend;  /* 1 + n_types + HL_EVAL_N_BUCKETS */
    hl_eval_acc *acc;    /* [backend * per_backend + row] */
    hl_eval_summary *sum;
    size_t bucket_items[HL_EVAL_N_BUCKETS];
} table;

static const char *type_of(const hl_eval_item *it) { return it->task_type ? it->task_type : "none"; }

static size_t type_index(const table *t, const char *name) {
    for (size_t i = 0; i < t->n_types; i++)
        if (!strcmp(t->types[i], name)) return i;
    return SIZE_MAX;
}

static void table_release(table *t, size_t n_backends) {
    if (t->acc)
        for (size_t i = 0; i < n_backends * t->per_backend; i++) hl_eval_acc_release(&t->acc[i]);
    free(t->acc);
    free(t->sum);
    free(t->types);
    memset(t, 0, sizeof *t);
}

static hl_eval_obs observe(const hl_eval_call *c, const hl_eval_score *sc) {
    hl_eval_obs o = {.refused = c->status == HL_EVAL_REFUSED, .ok = c->status == HL_EVAL_OK,
                     .latency_ms = c->latency_ms, .cost_usd = c->cost_usd, .cost_known = c->cost_known};
    if (o.ok) {
        o.input_tokens = c->usage.input_tokens;
        o.output_tokens = c->usage.output_tokens;
        o.scored = sc->scored;
        o.agree = sc->agree;
        o.score = sc->score;
    }
    return o;
}

static hl_err table_build(table *t, const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res,
                          const hl_eval_score *scores) {
    memset(t, 0, sizeof *t);
    size_t nb = su->n_backends;
    if (!(t->types = calloc(ds->n + 1, sizeof *t->types))) return HL_ERR_NOMEM;
    for (size_t i = 0; i < ds->n; i++) {
        if (type_index(t, type_of(&ds->v[i])) == SIZE_MAX) t->types[t->n_types++] = type_of(&ds->v[i]);
        t->bucket_items[hl_eval_bucket(ds->v[i].prompt_tokens)]++;
    }
    t->per_backend = 1 + t->n_types + HL_EVAL_N_BUCKETS;
    t->acc = calloc(nb * t->per_backend, sizeof *t->acc);
    t->sum = calloc(nb * t->per_backend, sizeof *t->sum);
    if (!t->acc || !t->sum) return HL_ERR_NOMEM;
    for (size_t i = 0; i < ds->n; i++) {
        size_t ti = type_index(t, type_of(&ds->v[i]));
        int bu = hl_eval_bucket(ds->v[i].prompt_tokens);
        for (size_t b = 0; b < nb; b++) {
            hl_eval_obs o = observe(hl_eval_at(res, i, b), &scores[i * nb + b]);
            hl_eval_acc *row = &t->acc[b * t->per_backend];
            if (hl_eval_acc_add(&row[0], &o) || hl_eval_acc_add(&row[1 + ti], &o) ||
                hl_eval_acc_add(&row[1 + t->n_types + (size_t)bu], &o))
                return HL_ERR_NOMEM;
        }
    }
    for (size_t i = 0; i < nb * t->per_backend; i++) hl_eval_acc_summary(&t->acc[i], &t->sum[i]);
    return HL_OK;
}

/* ------------------------------------------------------------------ formats */

static const char *reference_name(const hl_eval_setup *su) {
    return su->reference >= 0 ? su->backends[su->reference]->cfg->name : NULL;
}

static json_t *num_or_null(double x, bool known) { return known ? json_real(x) : json_null(); }

static json_t *summary_json(const hl_eval_summary *s) {
    json_t *o = json_object();
    json_object_set_new(o, "calls", json_integer((json_int_t)s->calls));
    json_object_set_new(o, "errors", json_integer((json_int_t)s->errors));
    json_object_set_new(o, "refused", json_integer((json_int_t)s->refused));
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    json_object_set_new(o, "agree", json_integer((json_int_t)s->agree));
    json_object_set_new(o, "accuracy", num_or_null(s->accuracy, s->n > 0));
    json_object_set_new(o, "ci95", s->n ? json_pack("[ff]", s->ci_lo, s->ci_hi) : json_null());
    json_object_set_new(o, "mean_score", num_or_null(s->mean_score, s->n > 0));
    json_object_set_new(o, "latency_ms", json_pack("{s:o,s:o}", "p50", num_or_null(s->p50_ms, s->p50_ms >= 0), "p95",
                                                   num_or_null(s->p95_ms, s->p95_ms >= 0)));
    json_object_set_new(o, "input_tokens", json_integer(s->input_tokens));
    json_object_set_new(o, "output_tokens", json_integer(s->output_tokens));
    json_object_set_new(o, "cost_usd", num_or_null(s->cost_usd, !s->cost_unknown));
    return o;
}

static const char *status_name(hl_eval_call_status s) {
    return s == HL_EVAL_OK ? "ok" : s == HL_EVAL_REFUSED ? "refused" : "error";
}

static json_t *failures_json(const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res) {
    json_t *a = json_array();
    for (size_t i = 0; i < ds->n; i++)
        for (size_t b = 0; b < su->n_backends; b++) {
            const hl_eval_call *c = hl_eval_at(res, i, b);
            if (c->status == HL_EVAL_OK) continue;
            json_array_append_new(a, json_pack("{s:s,s:I,s:s,s:s,s:s}", "item", ds->v[i].id, "line",
                                               (json_int_t)ds->v[i].line, "backend", su->backends[b]->cfg->name,
                                               "status", status_name(c->status), "error", c->error));
        }
    return a;
}

static hl_err print_json(const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res,
                         const table *t, FILE *out) {
    json_t *root = json_object(), *bs = json_array();
    const char *ref = reference_name(su);
    json_object_set_new(root, "run", json_string(su->run_id));
    json_object_set_new(root, "dataset", json_string(su->dataset));
    json_object_set_new(root, "items", json_integer((json_int_t)ds->n));
    json_object_set_new(root, "skipped", json_integer((json_int_t)su->skipped));
    json_object_set_new(root, "reference", ref ? json_string(ref) : json_null());
    json_object_set_new(root, "compare", json_string(su->method == HL_CMP_AUTO ? "auto" : hl_cmp_method_name(su->method)));
    json_object_set_new(root, "threshold", json_real(su->threshold));
    for (size_t b = 0; b < su->n_backends; b++) {
        const hl_eval_summary *s = &t->sum[b * t->per_backend];
        hl_backend *be = su->backends[b];
        json_t *o = json_pack("{s:s,s:s,s:s}", "name", be->cfg->name, "location",
                              hl_backend_is_cloud(be) ? "cloud" : "local", "model", hl_backend_model(be));
        json_t *types = json_object(), *buckets = json_object();
        json_object_set_new(o, "overall", summary_json(&s[0]));
        for (size_t k = 0; k < t->n_types; k++) json_object_set_new(types, t->types[k], summary_json(&s[1 + k]));
        for (int k = 0; k < HL_EVAL_N_BUCKETS; k++)
            if (t->bucket_items[k])
                json_object_set_new(buckets, hl_eval_bucket_name(k), summary_json(&s[1 + t->n_types + (size_t)k]));
        json_object_set_new(o, "by_task_type", types);
        json_object_set_new(o, "by_prompt_tokens", buckets);
        json_array_append_new(bs, o);
    }
    json_object_set_new(root, "backends", bs);
    json_object_set_new(root, "failures", failures_json(su, ds, res));
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    fputc('\n', out);
    return rc ? HL_ERR_NOMEM : HL_OK;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *out, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_num(FILE *out, double x, bool known) {
    if (known) fprintf(out, ",%.10g", x);
    else fputc(',', out);
}

static void csv_row(FILE *out, const char *backend, const char *slice, const char *key, const hl_eval_summary *s) {
    csv_field(out, backend);
    fprintf(out, ",%s,", slice);
    csv_field(out, key);
    fprintf(out, ",%zu,%zu,%zu,%zu,%zu", s->calls, s->errors, s->refused, s->n, s->agree);
    csv_num(out, s->accuracy, s->n > 0);
    csv_num(out, s->ci_lo, s->n > 0);
    csv_num(out, s->ci_hi, s->n > 0);
    csv_num(out, s->mean_score, s->n > 0);
    csv_num(out, s->p50_ms, s->p50_ms >= 0);
    csv_num(out, s->p95_ms, s->p95_ms >= 0);
    fprintf(out, ",%lld,%lld", s->input_tokens, s->output_tokens);
    csv_num(out, s->cost_usd, !s->cost_unknown);
    fputc('\n', out);
}

static void print_csv(const hl_eval_setup *su, const table *t, FILE *out) {
    fputs("backend,slice,key,calls,errors,refused,n,agree,accuracy,ci95_low,ci95_high,mean_score,"
          "latency_p50_ms,latency_p95_ms,input_tokens,output_tokens,cost_usd\n", out);
    for (size_t b = 0; b < su->n_backends; b++) {
        const hl_eval_summary *s = &t->sum[b * t->per_backend];
        const char *name = su->backends[b]->cfg->name;
        csv_row(out, name, "all", "all", &s[0]);
        for (size_t k = 0; k < t->n_types; k++) csv_row(out, name, "task_type", t->types[k], &s[1 + k]);
        for (int k = 0; k < HL_EVAL_N_BUCKETS; k++)
            if (t->bucket_items[k])
                csv_row(out, name, "prompt_tokens", hl_eval_bucket_name(k), &s[1 + t->n_types + (size_t)k]);
    }
}

static void table_row(FILE *out, const char *backend, const char *slice, const hl_eval_summary *s) {
    char acc[16] = "-", ci[32] = "-", mean[16] = "-", p50[16] = "-", p95[16] = "-", cost[24] = "?";
    if (s->n) {
        snprintf(acc, sizeof acc, "%.1f%%", 100 * s->accuracy);
        snprintf(ci, sizeof ci, "[%.1f%%, %.1f%%]", 100 * s->ci_lo, 100 * s->ci_hi);
        snprintf(mean, sizeof mean, "%.3f", s->mean_score);
    }
    if (s->p50_ms >= 0) snprintf(p50, sizeof p50, "%.0f", s->p50_ms);
    if (s->p95_ms >= 0) snprintf(p95, sizeof p95, "%.0f", s->p95_ms);
    if (!s->cost_unknown) snprintf(cost, sizeof cost, "%.6f", s->cost_usd);
    fprintf(out, "%-16s %-22s %5zu %5zu %5zu %5zu %7s %-16s %6s %7s %7s %9lld %9lld %12s\n", backend, slice, s->calls,
            s->errors, s->refused, s->n, acc, ci, mean, p50, p95, s->input_tokens, s->output_tokens, cost);
}

static void print_table(const hl_eval_setup *su, const hl_eval_dataset *ds, const table *t, FILE *out) {
    const char *ref = reference_name(su);
    fprintf(out, "eval %s: %zu items of %s", su->run_id, ds->n, su->dataset);
    if (su->skipped) fprintf(out, " (%zu bad lines skipped)", su->skipped);
    fprintf(out, "; scored against expected answers%s%s; compare %s", ref ? ", else backend " : "", ref ? ref : "",
            su->method == HL_CMP_AUTO ? "auto" : hl_cmp_method_name(su->method));
    fprintf(out, ", threshold %g\n\n", su->threshold);
    fprintf(out, "%-16s %-22s %5s %5s %5s %5s %7s %-16s %6s %7s %7s %9s %9s %12s\n", "backend", "slice", "calls",
            "err", "refus", "n", "acc", "95% CI", "score", "p50 ms", "p95 ms", "in tok", "out tok", "cost USD");
    for (size_t b = 0; b < su->n_backends; b++) {
        const hl_eval_summary *s = &t->sum[b * t->per_backend];
        const char *name = su->backends[b]->cfg->name;
        char slice[96];
        table_row(out, name, "all", &s[0]);
        for (size_t k = 0; k < t->n_types; k++) {
            snprintf(slice, sizeof slice, "task=%s", t->types[k]);
            table_row(out, name, slice, &s[1 + k]);
        }
        for (int k = 0; k < HL_EVAL_N_BUCKETS; k++)
            if (t->bucket_items[k]) {
                snprintf(slice, sizeof slice, "prompt=%s", hl_eval_bucket_name(k));
                table_row(out, name, slice, &s[1 + t->n_types + (size_t)k]);
            }
    }
}

hl_err hl_eval_print(const hl_eval_setup *su, const hl_eval_dataset *ds, const hl_eval_results *res,
                     const hl_eval_score *scores, hl_eval_format fmt, FILE *out) {
    table t;
    hl_err e = table_build(&t, su, ds, res, scores);
    if (e == HL_OK) {
        if (fmt == HL_EVAL_JSON)
            e = print_json(su, ds, res, &t, out);
        else if (fmt == HL_EVAL_CSV)
            print_csv(su, &t, out);
        else
            print_table(su, ds, &t, out);
    }
    table_release(&t, su->n_backends);
    if (e == HL_OK && (fflush(out) != 0 || ferror(out))) e = HL_ERR_IO;
    return e;
}
