/* hl_ledger: the writer (see hl_ledger.h); the reader is hl_ledger_read.c. */
#include "hl_ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hl_time.h"

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

/* ,"key": and v as a JSON string, or null. A macro takes the key so that the lead's length is
 * a constant. */
#define put_opt_str(b, key, v) put_lead_str((b), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (v))
static hl_err put_lead_str(hl_buf *b, const char *lead, size_t lead_len, const char *v) {
    hl_err e = hl_buf_append(b, lead, lead_len);
    if (e) return e;
    return v ? hl_buf_json_str(b, v, strlen(v)) : hl_buf_append(b, "null", 4);
}

/* Two-digit and four-digit fields of a timestamp, written by hand: strftime and printf show
 * up in profiles at tens of thousands of requests a second. */
static char *put_digits(char *p, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

#define PUT(x) do { if (!e) e = (x); } while (0)

hl_err hl_ledger_format(const hl_ledger_record *r, hl_buf *b) {
    char ts[32], *p = ts;
    /* Rounded to the millisecond, not cut: a time read back from a line (x.123 is
     * x.12299999...) formats as it was written. */
    long long tms = llround(r->timestamp * 1000.0);
    long long sec_ll = tms >= 0 ? tms / 1000 : -((-tms + 999) / 1000);
    int ms = (int)(tms - sec_ll * 1000);
    /* "YYYY-MM-DDTHH:MM:SS" changes once a second: each thread keeps its last one. */
    static _Thread_local long long last_sec = LLONG_MIN;
    static _Thread_local char last[19];
    if (sec_ll != last_sec) {
        time_t secs = (time_t)sec_ll;
        struct tm tm;
        gmtime_r(&secs, &tm);
        char *q = put_digits(last, (unsigned)tm.tm_year + 1900, 4);
        *q++ = '-';
        q = put_digits(q, (unsigned)tm.tm_mon + 1, 2);
        *q++ = '-';
        q = put_digits(q, (unsigned)tm.tm_mday, 2);
        *q++ = 'T';
        q = put_digits(q, (unsigned)tm.tm_hour, 2);
        *q++ = ':';
        q = put_digits(q, (unsigned)tm.tm_min, 2);
        *q++ = ':';
        put_digits(q, (unsigned)tm.tm_sec, 2);
        last_sec = sec_ll;
    }
    memcpy(p, last, sizeof last);
    p += sizeof last;
    *p++ = '.';
    p = put_digits(p, (unsigned)ms, 3);
    *p++ = 'Z';

    hl_err e = hl_buf_puts(b, "{\"timestamp\":\"");
    PUT(hl_buf_append(b, ts, (size_t)(p - ts)));
    PUT(hl_buf_puts(b, r->cloud ? "\",\"source\":\"cloud\",\"input_tokens\":" : "\",\"source\":\"local\",\"input_tokens\":"));
    PUT(hl_buf_i64(b, r->usage.input_tokens));
    PUT(hl_buf_puts(b, ",\"output_tokens\":"));
    PUT(hl_buf_i64(b, r->usage.output_tokens));
    PUT(hl_buf_puts(b, ",\"latency_ms\":"));
    PUT(hl_buf_fixed(b, r->latency_ms, 3));
    PUT(hl_buf_puts(b, ",\"cost_usd\":"));
    PUT(r->cost_known ? hl_buf_fixed(b, r->cost_usd, 10) : hl_buf_puts(b, "null"));
    PUT(put_opt_str(b, "request_id", r->request_id));
    PUT(hl_buf_puts(b, ",\"attempt\":"));
    PUT(hl_buf_i64(b, r->attempt));
    if (r->client_request_id) PUT(put_opt_str(b, "client_request_id", r->client_request_id));
    PUT(put_opt_str(b, "backend", r->backend));
    PUT(put_opt_str(b, "model", r->model));
    PUT(put_opt_str(b, "route_reason", r->route_reason));
    PUT(put_opt_str(b, "status", r->status));
    PUT(hl_buf_puts(b, r->stream ? ",\"stream\":true,\"ttft_ms\":" : ",\"stream\":false,\"ttft_ms\":"));
    PUT(r->ttft_ms >= 0 ? hl_buf_fixed(b, r->ttft_ms, 3) : hl_buf_puts(b, "null"));
    PUT(hl_buf_puts(b, ",\"cached_input_tokens\":"));
    PUT(hl_buf_i64(b, r->usage.cached_input_tokens));
    PUT(hl_buf_puts(b, ",\"cache_write_tokens\":"));
    PUT(hl_buf_i64(b, r->usage.cache_write_tokens));
    PUT(hl_buf_puts(b, r->usage.estimated ? ",\"usage_estimated\":true" : ",\"usage_estimated\":false"));
    PUT(put_opt_str(b, "tenant", r->tenant));
    PUT(put_opt_str(b, "task_type", r->task_type));
    PUT(hl_buf_puts(b, r->task_inferred ? ",\"task_inferred\":true" : ",\"task_inferred\":false"));
    PUT(hl_buf_puts(b, r->sensitive ? ",\"sensitive\":true" : ",\"sensitive\":false"));
    PUT(put_opt_str(b, "pii", r->pii));
    PUT(hl_buf_puts(b, ",\"confidence\":"));
    PUT(r->confidence >= 0 ? hl_buf_fixed(b, r->confidence, 4) : hl_buf_puts(b, "null"));
    PUT(hl_buf_puts(b, ",\"http_status\":"));
    PUT(hl_buf_i64(b, r->http_status));
    PUT(put_opt_str(b, "error", r->error));
    if (r->key_id > 0) {
        PUT(hl_buf_puts(b, ",\"key_id\":"));
        PUT(hl_buf_i64(b, r->key_id));
    }
    if (r->key_name) PUT(put_opt_str(b, "key_name", r->key_name));
    if (r->signals) {
        PUT(hl_buf_puts(b, ",\"confidence_margin\":"));
        PUT(hl_buf_fixed(b, r->confidence_margin, 4));
        PUT(hl_buf_puts(b, ",\"confidence_min\":"));
        PUT(hl_buf_fixed(b, r->confidence_min, 4));
    }
    if (r->shadow) PUT(hl_buf_puts(b, ",\"shadow\":true"));
    if (r->scored) {
        PUT(hl_buf_puts(b, ",\"score\":"));
        PUT(hl_buf_fixed(b, r->score, 4));
        PUT(put_opt_str(b, "score_method", r->score_method));
        PUT(hl_buf_puts(b, r->agree ? ",\"agree\":true" : ",\"agree\":false"));
        PUT(put_opt_str(b, "reference", r->reference));
        PUT(hl_buf_puts(b, ",\"ref_output_tokens\":"));
        PUT(hl_buf_i64(b, r->ref_output_tokens));
    }
    if (r->eval_run) PUT(put_opt_str(b, "eval_run", r->eval_run));
    if (r->replica) PUT(put_opt_str(b, "replica", r->replica));
    PUT(hl_buf_puts(b, "}\n"));
    return e;
}

/* Writes n bytes of whole lines with one write(): with O_APPEND the kernel places it
 * atomically at the end, so the lines of several threads never interleave. A short write
 * (disk full) is retried for the rest. Counts the lines as written or lost. */
static hl_err write_lines(hl_ledger *l, const char *p, size_t n, unsigned long lines) {
    hl_err e = HL_OK;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(l->fd, p + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            e = HL_ERR_IO;
            break;
        }
        off += (size_t)w;
    }
    atomic_fetch_add(e ? &l->write_errors : &l->records, lines);
    return e;
}

hl_err hl_ledger_append(hl_ledger *l, const hl_ledger_record *rec) {
    hl_buf b;
    hl_buf_init(&b, HL_LEDGER_MAX_LINE);
    hl_err e = hl_ledger_format(rec, &b);
    if (!e) e = write_lines(l, b.data, b.len, 1);
    else atomic_fetch_add(&l->write_errors, 1);
    hl_buf_release(&b);
    return e;
}

enum { BATCH_FLUSH_BYTES = 256 << 10 }; /* a batch this large is written at once */

void hl_ledger_batch_init(hl_ledger_batch *b, hl_ledger *l) {
    b->l = l;
    hl_buf_init(&b->buf, 0);
    b->lines = 0;
}

hl_err hl_ledger_batch_add(hl_ledger_batch *b, const hl_ledger_record *rec) {
    size_t mark = b->buf.len;
    if (hl_ledger_format(rec, &b->buf) != HL_OK || b->buf.len - mark > HL_LEDGER_MAX_LINE) {
        b->buf.len = mark; /* no partial line, none longer than a reader takes */
        atomic_fetch_add(&b->l->write_errors, 1);
        return HL_ERR_IO;
    }
    b->lines++;
    return b->buf.len >= BATCH_FLUSH_BYTES ? hl_ledger_batch_flush(b) : HL_OK;
}

hl_err hl_ledger_batch_flush(hl_ledger_batch *b) {
    if (!b->lines) return HL_OK;
    hl_err e = write_lines(b->l, b->buf.data, b->buf.len, b->lines);
    b->buf.len = 0;
    b->lines = 0;
    return e;
}

void hl_ledger_batch_release(hl_ledger_batch *b) {
    hl_ledger_batch_flush(b);
    hl_buf_release(&b->buf);
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

/* ---- writeback (see hl_ledger.h) ---- */

struct hl_ledger_writeback {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled by stop */
    bool stop;                /* under mu */
    int fd;                   /* the ledger's, borrowed */
    long period_ms;
    off_t page;
    _Atomic unsigned long long done; /* written by the thread, read by anyone */
};

/* One look at the file: starts writeback of the full pages past `done` when there are enough.
 * false when the file cannot take it (a pipe, a terminal): the thread then stops trying. */
static bool writeback_step(hl_ledger_writeback *w) {
    struct stat st;
    if (fstat(w->fd, &st) != 0) return true;
    if (!S_ISREG(st.st_mode)) return false;
    unsigned long long upto = (unsigned long long)(st.st_size / w->page * w->page);
    unsigned long long done = atomic_load(&w->done);
    if (upto < done) { /* truncated under us: follow it */
        atomic_store(&w->done, upto);
        return true;
    }
    if (upto - done < HL_LEDGER_WRITEBACK_MIN) return true;
    if (sync_file_range(w->fd, (off_t)done, (off_t)(upto - done), SYNC_FILE_RANGE_WRITE) != 0) {
        if (errno == ESPIPE || errno == EINVAL) return false;
        /* EIO, ENOMEM: the kernel's own writeback will meet the same; try the next range. */
    }
    atomic_store(&w->done, upto);
    return true;
}

static void *writeback_main(void *arg) {
    hl_ledger_writeback *w = arg;
    bool working = true;
    pthread_mutex_lock(&w->mu);
    while (!w->stop && working) {
        struct timespec until = hl_time_after(CLOCK_MONOTONIC, w->period_ms);
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT) {}
        if (w->stop) break;
        pthread_mutex_unlock(&w->mu);
        working = writeback_step(w);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL; /* stopped, or the file cannot take writeback: stop() still joins */
}

hl_err hl_ledger_writeback_start(hl_ledger *l, long period_ms, hl_ledger_writeback **out) {
    *out = NULL;
    hl_ledger_writeback *w = calloc(1, sizeof *w);
    if (!w) return HL_ERR_NOMEM;
    w->fd = l->fd;
    w->period_ms = period_ms > 0 ? period_ms : 1;
    long page = sysconf(_SC_PAGESIZE);
    w->page = page > 0 ? page : 4096;
    struct stat st;
    if (fstat(w->fd, &st) != 0) {
        free(w);
        return HL_ERR_IO;
    }
    atomic_init(&w->done, (unsigned long long)(st.st_size / w->page * w->page));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&w->thread, NULL, writeback_main, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        errno = rc;
        return HL_ERR_IO;
    }
    *out = w;
    return HL_OK;
}

unsigned long long hl_ledger_writeback_done(const hl_ledger_writeback *w) {
    return atomic_load(&w->done);
}

void hl_ledger_writeback_stop(hl_ledger_writeback *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
