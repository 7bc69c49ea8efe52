/* hl_log: one-line diagnostics on stderr, with a UTC timestamp and a level.
 *
 * The request path does not log on success (the ledger is the record of requests); start-up,
 * configuration, backend state and failures do. Never pass a secret to these functions. */
#ifndef HL_LOG_H
#define HL_LOG_H

typedef enum hl_log_level { HL_LOG_DEBUG, HL_LOG_INFO, HL_LOG_WARN, HL_LOG_ERROR } hl_log_level;

void hl_log_set_level(hl_log_level min);
void hl_log(hl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
