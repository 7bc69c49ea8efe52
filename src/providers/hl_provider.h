/* hl_provider: what differs between provider kinds, behind one table.
 *
 * A provider turns the internal request into an upstream HTTP call (URL, headers with the
 * backend's credentials, body) and turns the upstream's reply back into the internal model:
 * a whole response, or SSE events decoded into hl_stream_event. Adding a provider kind means
 * one more table entry, not a translator per client format. */
#ifndef HL_PROVIDER_H
#define HL_PROVIDER_H

#include <curl/curl.h>
#include "hl_anthropic.h"
#include "hl_backend.h"
#include "hl_buf.h"
#include "hl_chat.h"
#include "hl_sse.h"

/* Per-call stream decoding state, whatever the provider. */
typedef struct hl_provider_decoder {
    bool openai_started;
    hl_anthropic_decoder anthropic;
} hl_provider_decoder;

typedef struct hl_provider {
    const char *name;
    /* Refuses requests this kind cannot honour (err filled); NULL: accepts all. */
    hl_err (*check)(const hl_chat_request *req, hl_api_error *err);
    /* Fills url and body and returns the headers (caller frees with curl_slist_free_all).
     * NULL for builtin, which is not called over HTTP. */
    hl_err (*build)(const hl_backend *b, const hl_chat_request *req, const char *model,
                    hl_buf *url, hl_buf *body, struct curl_slist **headers);
    hl_err (*parse_response)(const char *body, size_t len, hl_chat_response *resp);
    void (*decoder_init)(hl_provider_decoder *d);
    int (*decode)(hl_provider_decoder *d, const hl_sse_event *ev, hl_stream_sink sink, void *ud);
} hl_provider;

const hl_provider *hl_provider_for(hl_provider_kind kind);

#endif
