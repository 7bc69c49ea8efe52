/* hl_ledger: see hl_ledger.h. */
#include "hl_ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

hl_err hl_ledger_open(hl_ledger *l, const char *path) {
    memset(l, 0, sizeof *l);
    l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (l->fd < 0) return HL_ERR_IO;
    l->path = strdup(path);
    if (!l->path) {
        close(l->fd);
        l->fd = -1;
        return HL_ERR_NOMEM;
    }
    return HL_OK;
}

static hl_err put_opt_str(hl_buf *b, const char *key, const char *v) {
    hl_err e = hl_buf_printf(b, ",\"%s\":", key);
    if (e) return e;
    return v ? hl_buf_json_str(b, v, strlen(v)) : hl_buf_puts(b, "null");
}

hl_err hl_ledger_format(const hl_ledger_record *r, hl_buf *b) {
    char ts[40];
    time_t secs = (time_t)r->timestamp;
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)((r->timestamp - (double)secs) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 999) ms = 999;
    snprintf(ts + n, sizeof ts - n, ".%03dZ", ms);

    hl_err e = hl_buf_printf(b, "{\"timestamp\":\"%s\",\"source\":\"%s\",\"input_tokens\":%ld,"
                                "\"output_tokens\":%ld,\"latency_ms\":%.3f,",
                             ts, r->cloud ? "cloud" : "local", r->usage.input_tokens,
                             r->usage.output_tokens, r->latency_ms);
    if (!e) e = r->cost_known ? hl_buf_printf(b, "\"cost_usd\":%.10f", r->cost_usd)
                              : hl_buf_puts(b, "\"cost_usd\":null");
    if (!e) e = put_opt_str(b, "request_id", r->request_id);
    if (!e) e = hl_buf_printf(b, ",\"attempt\":%d", r->attempt);
    if (!e) e = put_opt_str(b, "backend", r->backend);
    if (!e) e = put_opt_str(b, "model", r->model);
    if (!e) e = put_opt_str(b, "route_reason", r->route_reason);
    if (!e) e = put_opt_str(b, "status", r->status);
    if (!e) e = hl_buf_printf(b, ",\"stream\":%s", r->stream ? "true" : "false");
    if (!e) e = r->ttft_ms >= 0 ? hl_buf_printf(b, ",\"ttft_ms\":%.3f", r->ttft_ms)
                                : hl_buf_puts(b, ",\"ttft_ms\":null");
    if (!e) e = hl_buf_printf(b, ",\"cached_input_tokens\":%ld,\"cache_write_tokens\":%ld,"
                                 "\"usage_estimated\":%s",
                              r->usage.cached_input_tokens, r->usage.cache_write_tokens,
                              r->usage.estimated ? "true" : "false");
    if (!e) e = put_opt_str(b, "tenant", r->tenant);
    if (!e) e = put_opt_str(b, "task_type", r->task_type);
    if (!e) e = hl_buf_printf(b, ",\"task_inferred\":%s", r->task_inferred ? "true" : "false");
    if (!e) e = hl_buf_printf(b, ",\"sensitive\":%s", r->sensitive ? "true" : "false");
    if (!e) e = put_opt_str(b, "pii", r->pii);
    if (!e) e = r->confidence >= 0 ? hl_buf_printf(b, ",\"confidence\":%.4f", r->confidence)
                                   : hl_buf_puts(b, ",\"confidence\":null");
    if (!e) e = hl_buf_printf(b, ",\"http_status\":%d", r->http_status);
    if (!e) e = put_opt_str(b, "error", r->error);
    if (!e) e = hl_buf_puts(b, "}\n");
    return e;
}

hl_err hl_ledger_append(hl_ledger *l, const hl_ledger_record *rec) {
    hl_buf b;
    hl_buf_init(&b, 1 << 20);
    hl_err e = hl_ledger_format(rec, &b);
    if (!e) {
        /* One write() per line: with O_APPEND the kernel places it atomically at the end. A
         * short write (disk full) is retried for the rest; a failure is counted, and the
         * caller logs it. */
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(l->fd, b.data + off, b.len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                e = HL_ERR_IO;
                break;
            }
            off += (size_t)w;
        }
    }
    hl_buf_release(&b);
    if (e) atomic_fetch_add(&l->write_errors, 1);
    else atomic_fetch_add(&l->records, 1);
    return e;
}

void hl_ledger_close(hl_ledger *l) {
    if (l->fd >= 0) {
        fsync(l->fd);
        close(l->fd);
    }
    l->fd = -1;
    free(l->path);
    l->path = NULL;
}
