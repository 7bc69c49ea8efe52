/* hl_authlimit: a bound on wrong admin keys per client address.
 *
 * The admin API and the dashboard take one operator-chosen key; without a bound, a client
 * could try keys as fast as the gateway answers. Each address (an IPv6 address by its /64,
 * which one host usually holds whole) may present HL_AUTHLIMIT_FAILURES wrong keys in a
 * window of HL_AUTHLIMIT_WINDOW_MS; past that, every attempt from it is refused, the right
 * key included (else the refusal would not slow a search), until the window ends. Presenting
 * no key is not a wrong one. The table holds HL_AUTHLIMIT_SLOTS addresses; when full, the one
 * whose window started first gives its place. Thread-safe: the event loops share it. */
#ifndef HL_AUTHLIMIT_H
#define HL_AUTHLIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

enum { HL_AUTHLIMIT_FAILURES = 10, HL_AUTHLIMIT_SLOTS = 1024 };
#define HL_AUTHLIMIT_WINDOW_MS 60000LL

typedef struct hl_authlimit hl_authlimit;

/* NULL when out of memory. */
hl_authlimit *hl_authlimit_new(void);
void hl_authlimit_free(hl_authlimit *l);

/* Whether peer may present a key at now_ms (a wall or monotonic clock, the same for every
 * call). When not, *retry_ms says how long until it may. A NULL limiter or peer allows. */
bool hl_authlimit_allow(hl_authlimit *l, const struct sockaddr *peer, long long now_ms, long long *retry_ms);

/* Counts a wrong key from peer at now_ms. NULL limiter or peer: nothing. */
void hl_authlimit_failed(hl_authlimit *l, const struct sockaddr *peer, long long now_ms);

#endif
