/* hl_privacy: the one place that decides whether a request is sensitive.
 *
 * Privacy is hybridllm's hard guarantee: a sensitive request never reaches a backend marked
 * `cloud`. A request is sensitive when its client declared it regulated or PII-bearing, or
 * when the PII detector finds something in anything of it that could reach an upstream:
 * message text, tool-call arguments (as decoded JSON strings, and raw when they are not
 * JSON), an Anthropic client's system blocks, and string fields passed through (`user`, ...).
 * In redact mode the detected values are replaced in place by typed placeholders, and the
 * request is sensitive only where redaction could not make it clean (passthrough strings are
 * never rewritten, so PII there keeps the request local).
 *
 * The gateway and `hybridllm route --explain` both call hl_privacy_decide(), so the
 * explanation is the decision. */
#ifndef HL_PRIVACY_H
#define HL_PRIVACY_H

#include <stdbool.h>
#include "hl_chat.h"
#include "hl_pii.h"

typedef struct hl_privacy_verdict {
    bool sensitive;   /* never to a cloud backend */
    bool detected;    /* the detector found PII that is still in the request */
    char pii[160];    /* the types found, "email:1,phone:2" ("many" when they do not fit);
                         "" when nothing was found */
} hl_privacy_verdict;

/* Decides for req, whose declared hints (req->regulated, req->pii) are already set. d NULL:
 * detection is off. With redact, rewrites req's text in place (it stays owned by req). */
void hl_privacy_decide(const hl_pii_detector *d, bool redact, hl_chat_request *req, hl_privacy_verdict *out);

#endif
