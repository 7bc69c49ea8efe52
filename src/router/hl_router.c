/* hl_router: routing v1 (see hl_router.h). */
#include "hl_router.h"

#include <stdio.h>
#include <string.h>

static bool rule_matches(const hl_route_rule *r, const hl_route_input *in) {
    if (r->sensitive == HL_YES && !in->sensitive) return false;
    if (r->sensitive == HL_NO && in->sensitive) return false;
    if (r->n_task_types) {
        if (!in->task_type) return false;
        bool any = false;
        for (size_t i = 0; i < r->n_task_types && !any; i++)
            any = !strcmp(r->task_types[i], in->task_type);
        if (!any) return false;
    }
    return true;
}

/* Adds b if privacy allows and it is ready; counts why others were left out. */
static void consider(hl_route *route, hl_backend *b, const char *model, const hl_route_input *in,
                     int *privacy_skipped, int *not_ready) {
    if (in->sensitive && hl_backend_is_cloud(b)) {
        (*privacy_skipped)++;
        return;
    }
    if (!atomic_load(&b->ready) || !hl_backend_breaker_allows(b, in->now_ms)) {
        (*not_ready)++;
        return;
    }
    if (route->n < HL_ROUTE_MAX_CANDIDATES) {
        route->models[route->n] = model ? model : b->model;
        route->candidates[route->n++] = b;
    }
}

static hl_err none_available(const hl_route *route, hl_backends *bs, bool sensitive,
                             hl_api_error *err) {
    char detail[700] = "";
    size_t off = 0;
    for (size_t i = 0; i < bs->n && off < sizeof detail - 1; i++) {
        if (atomic_load(&bs->v[i].ready)) continue;
        if (sensitive && hl_backend_is_cloud(&bs->v[i])) continue;
        int w = snprintf(detail + off, sizeof detail - off, "%s%s: %s", off ? "; " : " (",
                         bs->v[i].cfg->name, bs->v[i].status);
        if (w < 0) break;
        off += (size_t)w;
    }
    if (off && off < sizeof detail - 1) snprintf(detail + off, sizeof detail - off, ")");
    if (sensitive)
        return hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "no_local_backend",
                                "This request is marked sensitive (regulated or PII) and may only "
                                "be served by a local backend, but none is available for route "
                                "'%s'%s.", route->reason, detail);
    return hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "no_backend",
                            "No backend is available for route '%s'%s.", route->reason, detail);
}

hl_err hl_router_route(const hl_config *cfg, hl_backends *bs, const hl_route_input *in,
                       hl_route *route, hl_api_error *err) {
    route->n = 0;
    route->reason[0] = '\0';
    int privacy_skipped = 0, not_ready = 0;

    if (strcmp(in->model, "auto") != 0) {
        hl_backend *forced = hl_backends_find(bs, in->model);
        if (forced) {
            snprintf(route->reason, sizeof route->reason, "forced:backend");
            consider(route, forced, NULL, in, &privacy_skipped, &not_ready);
        } else {
            snprintf(route->reason, sizeof route->reason, "forced:model");
            bool known = false;
            for (size_t i = 0; i < bs->n; i++) {
                if (!hl_backend_serves(&bs->v[i], in->model)) continue;
                known = true;
                consider(route, &bs->v[i], in->model, in, &privacy_skipped, &not_ready);
            }
            if (!known)
                return hl_api_error_set(err, 404, HL_AE_NOT_FOUND, "model", "model_not_found",
                                        "The model '%.100s' does not exist on this gateway. Use "
                                        "\"auto\", a backend name or a model listed by GET /v1/models.",
                                        in->model);
        }
        if (route->n) return HL_OK;
        if (privacy_skipped && !not_ready) {
            hl_api_error_set(err, 403, HL_AE_PERMISSION, "model", "privacy_violation",
                             "This request is marked sensitive (regulated or PII) and must not "
                             "leave the machine, but '%.100s' is served only by cloud backends. "
                             "Use \"auto\" or a local backend.", in->model);
            return HL_ERR_UNSUPPORTED;
        }
        return none_available(route, bs, in->sensitive, err);
    }

    for (size_t i = 0; i < cfg->n_routes; i++) {
        const hl_route_rule *r = &cfg->routes[i];
        if (!rule_matches(r, in)) continue;
        snprintf(route->reason, sizeof route->reason, "rule:%s", r->name);
        for (size_t j = 0; j < r->n_to; j++) {
            hl_backend *b = hl_backends_find(bs, r->to[j]);
            if (b) consider(route, b, NULL, in, &privacy_skipped, &not_ready);
        }
        if (route->n) return HL_OK;
        return none_available(route, bs, in->sensitive, err);
    }
    snprintf(route->reason, sizeof route->reason, "no-rule");
    return hl_api_error_set(err, 503, HL_AE_UNAVAILABLE, NULL, "no_route",
                            "No routing rule matches this request; add a catch-all rule (one "
                            "without `when`) at the end of `routes`.");
}
