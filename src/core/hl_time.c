/* hl_time: see hl_time.h. Hand-written rather than strptime/timegm: those depend on the
 * locale and the TZ environment, accept more than ISO 8601, and drop fractions. */
#include "hl_time.h"

#include <stdbool.h>
#include <stdio.h>

/* H. Hinnant's days_from_civil. */
long long hl_time_days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

void hl_time_civil_from_days(long long z, int *y, unsigned *m, unsigned *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long yy = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

/* Reads exactly w digits at s[*i]. */
static bool digits(const char *s, size_t n, size_t *i, int w, int *out) {
    int v = 0;
    for (int k = 0; k < w; k++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9') return false;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return true;
}

static bool expect(const char *s, size_t n, size_t *i, char c) {
    if (*i >= n || s[*i] != c) return false;
    (*i)++;
    return true;
}

/* "YYYY-MM-DD", a date that exists. */
static bool parse_date(const char *s, size_t n, size_t *i, int *y, int *mo, int *d) {
    static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!digits(s, n, i, 4, y) || !expect(s, n, i, '-') || !digits(s, n, i, 2, mo) ||
        !expect(s, n, i, '-') || !digits(s, n, i, 2, d))
        return false;
    if (*mo < 1 || *mo > 12 || *d < 1) return false;
    bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    return *d <= mdays[*mo - 1] + (*mo == 2 && leap);
}

/* ".ddd..." (1 to 9 digits) into microseconds; absent is 0. */
static bool parse_fraction(const char *s, size_t n, size_t *i, long long *us) {
    *us = 0;
    if (*i >= n || s[*i] != '.') return true;
    (*i)++;
    int nd = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        if (nd < 6) *us = *us * 10 + (s[*i] - '0');
        nd++;
        (*i)++;
    }
    if (nd == 0 || nd > 9) return false;
    for (int k = nd; k < 6; k++) *us *= 10;
    return true;
}

/* 'Z', "+HH:MM", "-HHMM" or nothing (UTC), into minutes east of UTC. */
static bool parse_zone(const char *s, size_t n, size_t *i, long long *offset_min) {
    *offset_min = 0;
    if (*i < n && s[*i] == 'Z') {
        (*i)++;
        return true;
    }
    if (*i >= n || (s[*i] != '+' && s[*i] != '-')) return true;
    int sign = s[(*i)++] == '-' ? -1 : 1, oh, om;
    if (!digits(s, n, i, 2, &oh)) return false;
    if (*i < n && s[*i] == ':') (*i)++;
    if (!digits(s, n, i, 2, &om) || oh > 23 || om > 59) return false;
    *offset_min = sign * (oh * 60 + om);
    return true;
}

hl_err hl_time_parse_us(const char *s, size_t n, long long *us_out) {
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    long long frac = 0, offset_min = 0;
    if (!s || !parse_date(s, n, &i, &y, &mo, &d)) return HL_ERR_PARSE;
    if (i < n && (s[i] == 'T' || s[i] == ' ')) {
        i++;
        if (!digits(s, n, &i, 2, &h) || !expect(s, n, &i, ':') || !digits(s, n, &i, 2, &mi))
            return HL_ERR_PARSE;
        if (i < n && s[i] == ':') {
            i++;
            if (!digits(s, n, &i, 2, &sec) || !parse_fraction(s, n, &i, &frac)) return HL_ERR_PARSE;
        }
        if (h > 23 || mi > 59 || sec > 59 || !parse_zone(s, n, &i, &offset_min)) return HL_ERR_PARSE;
    } else if (i < n && s[i] == 'Z') {
        i++;
    }
    if (i != n) return HL_ERR_PARSE;
    long long secs = hl_time_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL + h * 3600LL +
                     mi * 60LL + sec - offset_min * 60;
    *us_out = secs * 1000000 + frac;
    return HL_OK;
}

hl_err hl_time_parse_ms(const char *s, size_t n, long long *ms_out) {
    long long us;
    HL_TRY(hl_time_parse_us(s, n, &us));
    *ms_out = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
    return HL_OK;
}

void hl_time_format_ms(long long ms, char *out, size_t out_len) {
    long long days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    long long rem = ms - days * 86400000;
    int y;
    unsigned m, d;
    hl_time_civil_from_days(days, &y, &m, &d);
    snprintf(out, out_len, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, m, d, (int)(rem / 3600000),
             (int)(rem / 60000 % 60), (int)(rem / 1000 % 60), (int)(rem % 1000));
}

struct timespec hl_time_after(clockid_t clock, long ms) {
    struct timespec t;
    clock_gettime(clock, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}
