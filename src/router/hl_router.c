/* hl_router: the routing policy (see hl_router.h). */
#include "hl_router.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void note(hl_route_trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(hl_route_trace *t, const char *fmt, ...) {
    if (!t || t->n >= (int)(sizeof t->lines / sizeof t->lines[0])) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->lines[t->n++], sizeof t->lines[0], fmt, ap);
    va_end(ap);
}

static bool in_list(char *const *list, size_t n, const char *s) {
    if (!s) return false;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

/* Why rule r does not match in, or NULL when it does. */
static const char *rule_mismatch(const hl_route_rule *r, const hl_route_input *in, const char *task,
                                 char *buf, size_t len) {
    if (r->sensitive == HL_YES && !in->sensitive) return "the request is not sensitive";
    if (r->sensitive == HL_NO && in->sensitive) return "the request is sensitive";
    if (r->n_task_types && !in_list(r->task_types, r->n_task_types, task)) {
        snprintf(buf, len, "task type %s is not listed", task ? task : "(none)");
        return buf;
    }
    if (r->n_models && !in_list(r->models, r->n_models, in->model)) {
        snprintf(buf, len, "model '%.60s' is not listed", in->model);
        return buf;
    }
    if (r->n_tenants && !in_list(r->tenants, r->n_tenants, in->tenant)) {
        snprintf(buf, len, "tenant %.60s is not listed", in->tenant ? in->tenant : "(none)");
        return buf;
    }
    if (r->min_prompt_tokens && in->prompt_tokens < r->min_prompt_tokens) {
        snprintf(buf, len, "prompt ~%ld tokens < %ld", in->prompt_tokens, r->min_prompt_tokens);
        return buf;
    }
    if (r->max_prompt_tokens && in->prompt_tokens > r->max_prompt_tokens) {
        snprintf(buf, len, "prompt ~%ld tokens > %ld", in->prompt_tokens, r->max_prompt_tokens);
        return buf;
    }
    if (r->latency_budget_below_ms &&
        !(in->latency_budget_ms > 0 && in->latency_budget_ms < r->latency_budget_below_ms)) {
        snprintf(buf, len, "latency budget %ld ms is not below %ld ms", in->latency_budget_ms,
                 r->latency_budget_below_ms);
        return buf;
    }
    return NULL;
}

typedef struct skips {
    int privacy, not_ready, too_long, budget;
    long largest_window;
} skips;

/* Adds b unless privacy, readiness, its breaker or its context window rule it out. */
static void consider(hl_route *route, hl_backend *b, const char *model, const hl_route_input *in,
                     skips *sk, hl_route_trace *t) {
    for (int i = 0; i < route->n; i++)
        if (route->candidates[i] == b) return; /* listed twice */
    if (in->sensitive && hl_backend_is_cloud(b)) {
        sk->privacy++;
        note(t, "  skip %s: cloud backend, request is sensitive", b->cfg->name);
        return;
    }
    if (in->budget_local && hl_backend_is_cloud(b)) {
        sk->budget++;
        note(t, "  skip %s: cloud budget %s reached", b->cfg->name, in->budget_local);
        return;
    }
    if (!atomic_load(&b->ready)) {
        sk->not_ready++;
        if (t) {
            char st[320];
            hl_backend_status(b, st, sizeof st);
            note(t, "  skip %s: not ready (%s)", b->cfg->name, st);
        }
        return;
    }
    if (!hl_backend_breaker_allows(b, in->now_ms)) {
        sk->not_ready++;
        note(t, "  skip %s: circuit breaker open", b->cfg->name);
        return;
    }
    long window = b->cfg->context_window;
    long need = in->prompt_tokens + (in->max_tokens > 0 ? in->max_tokens : 0);
    if (window > 0 && need > window) {
        sk->too_long++;
        if (window > sk->largest_window) sk->largest_window = window;
        note(t, "  skip %s: needs ~%ld tokens, context window %ld", b->cfg->name, need, window);
        return;
    }
    if (route->n < HL_ROUTE_MAX_CANDIDATES) {
        route->models[route->n] = model ? model : hl_backend_model(b);
        route->candidates[route->n++] = b;
        note(t, "  candidate %s (model %s)", b->cfg->name, route->models[route->n - 1]);
    }
}

/* Moves candidates whose observed p95 is over the budget behind the others (stable). */
static void apply_latency_budget(hl_route *route, const hl_route_input *in, hl_route_trace *t) {
    if (in->latency_budget_ms <= 0) return;
    hl_backend *fast[HL_ROUTE_MAX_CANDIDATES], *slow[HL_ROUTE_MAX_CANDIDATES];
    const char *fm[HL_ROUTE_MAX_CANDIDATES], *sm[HL_ROUTE_MAX_CANDIDATES];
    int nf = 0, ns = 0;
    for (int i = 0; i < route->n; i++) {
        double p95 = hl_backend_p95(route->candidates[i]);
        if (p95 >= 0 && p95 > (double)in->latency_budget_ms) {
            note(t, "  %s: p95 %.0f ms over the %ld ms budget: tried last", route->candidates[i]->cfg->name,
                 p95, in->latency_budget_ms);
            slow[ns] = route->candidates[i];
            sm[ns++] = route->models[i];
        } else {
            fast[nf] = route->candidates[i];
            fm[nf++] = route->models[i];
        }
    }
    for (int i = 0; i < nf; i++) route->candidates[i] = fast[i], route->models[i] = fm[i];
    for (int i = 0; i < ns; i++) route->candidates[nf + i] = slow[i], route->models[nf + i] = sm[i];
}

static hl_err none_available(const hl_route *route, hl_backends *bs, const hl_route_input *in,
                             const skips *sk, hl_api_error *err) {
    if (sk->too_long && !sk->not_ready && !sk->privacy)
        return hl_api_error_set(err, 400, HL_AE_INVALID_REQUEST, "messages", "context_length_exceeded",
                                "This request needs about %ld tokens (prompt estimate plus max_tokens), "
                                "more than the context window of any backend for route '%s' (largest: %ld).",
                                in->prompt_tokens + (in->max_tokens > 0 ? in->max_tokens : 0),
                                route->reason, sk->largest_window);
    char detail[700] = "";
    size_t off = 0;
    for (size_t i = 0; i < bs->n && off < sizeof detail - 1; i++) {
        if (atomic_load(&bs->v[i].ready)) continue;
        if (in->sensitive && hl_backend_is_cloud(&bs->v[i])) continue;
        char st[320];
        hl_backend_status(&bs->v[i], st, sizeof st);
        int w = snprintf(detail + off, sizeof detail - off, "%s%s: %s", off ? "; " : " (",
                         bs->v[i].cfg->name, st);
        if (w < 0) break;
        off += (size_t)w;
    }
    if (off && off < sizeof detail - 1) snprintf(detail + off, sizeof detail - off, ")");
    if (in->sensitive)
        return hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "no_local_backend",
                                "This request is marked sensitive (regulated or PII) and may only "
                                "be served by a local backend, but none is available for route "
                                "'%s'%s.", route->reason, detail);
    return hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "no_backend",
                            "No backend is available for route '%s'%s.", route->reason, detail);
}

/* FNV-1a: a stable hash for sticky splits. */
static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void rule_candidates(const hl_route_rule *r, hl_backends *bs, const hl_route_input *in,
                            hl_route *route, skips *sk, hl_route_trace *t) {
    if (!r->n_split) {
        for (size_t j = 0; j < r->n_to; j++) {
            hl_backend *b = hl_backends_find(bs, r->to[j]);
            if (b) consider(route, b, NULL, in, sk, t);
        }
        return;
    }
    uint64_t total = 0;
    for (size_t j = 0; j < r->n_split; j++) total += r->split[j].weight;
    const char *key = r->sticky == HL_STICKY_TENANT && in->tenant ? in->tenant : in->sticky_key;
    uint64_t draw = fnv1a(key) % total, acc = 0;
    size_t pick = 0;
    for (size_t j = 0; j < r->n_split; j++) {
        acc += r->split[j].weight;
        if (draw < acc) {
            pick = j;
            break;
        }
    }
    note(t, "  split: drew %s (%u of %llu by %s hash)", r->split[pick].to, r->split[pick].weight,
         (unsigned long long)total, r->sticky == HL_STICKY_TENANT && in->tenant ? "tenant" : "request");
    size_t n = strlen(route->reason);
    snprintf(route->reason + n, sizeof route->reason - n, "(split:%s)", r->split[pick].to);
    hl_backend *b = hl_backends_find(bs, r->split[pick].to);
    if (b) consider(route, b, NULL, in, sk, t);
    for (size_t j = 0; j < r->n_split; j++) {
        if (j == pick) continue;
        if ((b = hl_backends_find(bs, r->split[j].to))) consider(route, b, NULL, in, sk, t);
    }
}

static void rule_escalation(const hl_route_rule *r, hl_backends *bs, const hl_route_input *in,
                            hl_route *route, hl_route_trace *t) {
    if (r->escalate_below <= 0) return;
    route->escalate_below = r->escalate_below;
    route->escalate_signal = r->escalate_signal;
    route->escalate_streams = r->escalate_streams;
    for (size_t j = 0; j < r->n_escalate_to && route->n_escalate < HL_ROUTE_MAX_CANDIDATES; j++) {
        hl_backend *b = hl_backends_find(bs, r->escalate_to[j]);
        if (!b) continue;
        if (in->sensitive && hl_backend_is_cloud(b)) {
            note(t, "  escalation to %s ruled out: cloud backend, request is sensitive", b->cfg->name);
            continue;
        }
        route->escalate[route->n_escalate++] = b;
    }
    note(t, "  escalate when confidence < %.2f to %d backend(s)", r->escalate_below, route->n_escalate);
}

/* Is model a name some rule lists in when.model (an alias the rules resolve)? */
static bool is_alias(const hl_config *cfg, const char *model) {
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (in_list(cfg->routes[i].models, cfg->routes[i].n_models, model)) return true;
    return false;
}

hl_err hl_router_route(const hl_config *cfg, hl_backends *bs, const hl_route_input *in,
                       hl_route *route, hl_api_error *err, hl_route_trace *t) {
    route->n = route->n_escalate = 0;
    route->reason[0] = '\0';
    route->escalate_below = 0;
    route->rule = NULL;
    route->escalate_signal = HL_SIGNAL_GEOMEAN;
    route->task_type = in->task_type ? in->task_type : in->inferred_task;
    skips sk = {0};
    note(t, "request: model=%s task_type=%s%s sensitive=%s tenant=%s prompt~%ld tokens latency_budget=%ld ms",
         in->model, route->task_type ? route->task_type : "(none)",
         in->task_type ? "" : (in->inferred_task ? " (inferred)" : ""), in->sensitive ? "yes" : "no",
         in->tenant ? in->tenant : "(none)", in->prompt_tokens, in->latency_budget_ms);

    if (strcmp(in->model, "auto") != 0 && !is_alias(cfg, in->model)) {
        hl_backend *forced = hl_backends_find(bs, in->model);
        if (forced) {
            snprintf(route->reason, sizeof route->reason, "forced:backend");
            note(t, "model names backend %s", forced->cfg->name);
            consider(route, forced, NULL, in, &sk, t);
        } else {
            snprintf(route->reason, sizeof route->reason, "forced:model");
            bool known = false;
            for (size_t i = 0; i < bs->n; i++) {
                if (!hl_backend_serves(&bs->v[i], in->model)) continue;
                known = true;
                note(t, "model served by backend %s", bs->v[i].cfg->name);
                consider(route, &bs->v[i], in->model, in, &sk, t);
            }
            if (!known) {
                note(t, "model is neither a backend, a served model nor a rule alias: 404");
                return hl_api_error_set(err, 404, HL_AE_NOT_FOUND, "model", "model_not_found",
                                        "The model '%.100s' does not exist on this gateway. Use "
                                        "\"auto\", a backend name or a model listed by GET /v1/models.",
                                        in->model);
            }
        }
        if (route->n) {
            apply_latency_budget(route, in, t);
            return HL_OK;
        }
        if (sk.privacy && !sk.not_ready && !sk.too_long) {
            note(t, "refused: only cloud backends serve this model and the request is sensitive");
            hl_api_error_set(err, 403, HL_AE_PERMISSION, "model", "privacy_violation",
                             "This request is marked sensitive (regulated or PII) and must not "
                             "leave the machine, but '%.100s' is served only by cloud backends. "
                             "Use \"auto\" or a local backend.", in->model);
            return HL_ERR_UNSUPPORTED;
        }
        return none_available(route, bs, in, &sk, err);
    }

    char why[160];
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const hl_route_rule *r = &cfg->routes[i];
        const char *miss = rule_mismatch(r, in, route->task_type, why, sizeof why);
        if (miss) {
            note(t, "rule %s: no (%s)", r->name, miss);
            continue;
        }
        note(t, "rule %s: matches", r->name);
        memcpy(route->reason, "rule:", 5); /* as snprintf "rule:%s", without its 600 instructions */
        hl_strlcpy(route->reason + 5, r->name, sizeof route->reason - 5);
        route->rule = r;
        rule_candidates(r, bs, in, route, &sk, t);
        rule_escalation(r, bs, in, route, t);
        if (!route->n && sk.budget) {
            /* The budget says local: any ready local backend rather than none. */
            for (size_t j = 0; j < bs->n; j++)
                if (!hl_backend_is_cloud(&bs->v[j])) consider(route, &bs->v[j], NULL, in, &sk, t);
            size_t n = strlen(route->reason);
            if (route->n) snprintf(route->reason + n, sizeof route->reason - n, "+budget-local");
        }
        if (route->n) {
            apply_latency_budget(route, in, t);
            note(t, "decision: %s via %s", route->candidates[0]->cfg->name, route->reason);
            return HL_OK;
        }
        note(t, "decision: no usable candidate");
        return none_available(route, bs, in, &sk, err);
    }
    snprintf(route->reason, sizeof route->reason, "no-rule");
    note(t, "no rule matches");
    return hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "no_route",
                            "No routing rule matches this request; add a catch-all rule (one "
                            "without `when`) at the end of `routes`.");
}
