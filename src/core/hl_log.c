/* hl_log: see hl_log.h. One fprintf per line keeps lines from different threads whole; URLs in
 * a line are shown with their credentials masked (hl_url.h). */
#include "hl_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "hl_url.h"

static hl_log_level min_level = HL_LOG_INFO;

void hl_log_set_level(hl_log_level min) { min_level = min; }

void hl_log(hl_log_level level, const char *fmt, ...) {
    if (level < min_level) return;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char msg[1024], ts[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* A URL with credentials in it (a backend's, in a status line) is shown masked. */
    char shown[1024];
    const char *line = strstr(msg, "://") ? hl_url_redact(msg, shown, sizeof shown) : msg;
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", ts, now.tv_nsec / 1000000, names[level], line);
}
