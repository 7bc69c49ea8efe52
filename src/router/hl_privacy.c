/* hl_privacy: scanning a whole request with the PII detector, and the sensitivity rule (see
 * hl_privacy.h). */
#include "hl_privacy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scans (and with redact, rewrites) one text. Returns false when redaction could not make
 * the text clean (the caller must then keep the request local). */
static bool scan_text(const hl_pii_detector *d, bool redact, char **text, hl_pii_report *rep) {
    char *t = *text;
    if (!t) return true;
    if (!redact) {
        hl_pii_scan(d, t, strlen(t), rep);
        return true;
    }
    char *red = NULL;
    size_t red_len = 0;
    if (hl_pii_redact(d, t, strlen(t), &red, &red_len, rep) != HL_OK) return false;
    if (red) {
        free(t);
        *text = red;
    }
    return true;
}

/* Every string inside a JSON value, decoded: in JSON text an escape ("\n166.2...") would hide
 * a value from the detector's boundary rules. Returns whether a string was rewritten. */
static bool scan_json(const hl_pii_detector *d, bool redact, json_t *v, hl_pii_report *rep, bool *clean) {
    bool changed = false;
    if (json_is_string(v)) {
        char *t = strndup(json_string_value(v), json_string_length(v));
        if (!t) {
            *clean = false; /* unscanned text is treated as unclean */
            return false;
        }
        char *orig = t;
        *clean &= scan_text(d, redact, &t, rep);
        if (t != orig) changed = !json_string_set(v, t);
        free(t);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) changed |= scan_json(d, redact, x, rep, clean);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) changed |= scan_json(d, redact, x, rep, clean);
    }
    return changed;
}

/* Tool-call arguments are JSON text: scanned as decoded strings (and raw, in case they are
 * not JSON at all). */
static void scan_arguments(const hl_pii_detector *d, bool redact, char **args, hl_pii_report *rep, bool *clean) {
    json_t *root = *args ? json_loads(*args, 0, NULL) : NULL;
    if (!root) {
        *clean &= scan_text(d, redact, args, rep);
        return;
    }
    if (scan_json(d, redact, root, rep, clean)) {
        char *s = json_dumps(root, JSON_COMPACT);
        if (s) {
            free(*args);
            *args = s;
        }
    }
    json_decref(root);
}

/* Runs the detector over everything of req that could reach an upstream. One report covers
 * the whole request, so a value counts once however often it appears (an Anthropic
 * client's system blocks are scanned as blocks and as the system message made from them).
 * Fills pii with the types found; *clean says whether redaction (when on) removed
 * everything. Returns whether anything was found (before redaction), or a text could not
 * be fully scanned. */
static bool scan_request(const hl_pii_detector *d, bool redact, hl_chat_request *req, char *pii, size_t pii_len,
                         bool *clean) {
    hl_pii_report rep = {0};
    *clean = true;
    for (size_t i = 0; i < req->n_messages; i++) {
        hl_message *m = &req->messages[i];
        *clean &= scan_text(d, redact, &m->text, &rep);
        for (size_t k = 0; k < m->n_tool_calls; k++) scan_arguments(d, redact, &m->tool_calls[k].arguments, &rep, clean);
    }
    if (req->system_blocks) scan_json(d, redact, req->system_blocks, &rep, clean);
    const char *key;
    json_t *val;
    json_object_foreach(req->passthrough, key, val) {
        if (!json_is_string(val)) continue;
        int before = rep.total;
        hl_pii_scan(d, json_string_value(val), json_string_length(val), &rep);
        if (rep.total > before && redact) *clean = false;
    }
    if (hl_pii_report_format(&rep, d, pii, pii_len) != HL_OK) snprintf(pii, pii_len, "many");
    if (rep.incomplete) { /* a text could not be fully scanned: keep it local */
        if (!pii[0]) snprintf(pii, pii_len, "unscanned");
        *clean = false;
    }
    return rep.total > 0 || rep.incomplete;
}

void hl_privacy_decide(const hl_pii_detector *d, bool redact, hl_chat_request *req, hl_privacy_verdict *out) {
    out->pii[0] = '\0';
    out->detected = false;
    if (d) {
        bool clean = true;
        bool found = scan_request(d, redact, req, out->pii, sizeof out->pii, &clean);
        /* Detected PII makes a request sensitive, unless redact mode removed it first. */
        out->detected = found && (!redact || !clean);
    }
    out->sensitive = req->regulated || req->pii || out->detected;
}
