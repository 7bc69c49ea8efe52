/* hl_time: ISO 8601 times, the one parser every reader of the ledger (and every --from/--to)
 * uses, and the calendar arithmetic behind it.
 *
 * Accepted: a date "YYYY-MM-DD", optionally followed by 'T' or ' ' and "HH:MM", optionally
 * ":SS", optionally a fraction of 1 to 9 digits (kept to the microsecond, the rest dropped),
 * then optionally 'Z' or an offset "+HH:MM", "-HH:MM" or "+HHMM". A time without 'Z' or an
 * offset is UTC: that is what the product brief's CostTracker writes
 * (datetime.utcnow().isoformat(): "2025-03-01T12:00:00.123456"). The ledger writes
 * "2025-03-01T12:00:00.123Z". Rejected: anything else, dates that do not exist (2025-02-29,
 * month 13), hours past 23, minutes or seconds past 59 (no leap seconds), trailing bytes.
 * Years are 0000-9999, proleptic Gregorian. */
#ifndef HL_TIME_H
#define HL_TIME_H

#include <stddef.h>
#include <time.h>
#include "hl_err.h"

/* Parses s[0..n) (need not be terminated) into microseconds since 1970-01-01T00:00:00Z
 * (negative before). HL_ERR_PARSE when it is not one of the forms above; *us_out untouched. */
hl_err hl_time_parse_us(const char *s, size_t n, long long *us_out);
/* The same, in milliseconds (rounded down). */
hl_err hl_time_parse_ms(const char *s, size_t n, long long *ms_out);
/* Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (out: at least 25 bytes; cut to out_len). */
void hl_time_format_ms(long long ms, char *out, size_t out_len);
/* The time ms milliseconds from now on clock (CLOCK_MONOTONIC, CLOCK_REALTIME): the deadline
 * of a pthread_cond_timedwait whose condvar runs on that clock. */
struct timespec hl_time_after(clockid_t clock, long ms);
/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
long long hl_time_days_from_civil(long long y, unsigned m, unsigned d);
void hl_time_civil_from_days(long long days, int *y, unsigned *m, unsigned *d);

#endif
