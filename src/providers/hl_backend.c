/* hl_backend: start-time resolution of backends (see hl_backend.h). */
#include "hl_backend.h"

#include <curl/curl.h>
#include <math.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hl_buf.h"
#include "hl_log.h"

static size_t probe_write(char *p, size_t size, size_t n, void *ud) {
    return hl_buf_append(ud, p, size * n) ? 0 : size * n;
}

/* GET url (post NULL) or POST the JSON `post` to it, with short timeouts, trusting ca_file
 * (NULL: the system's CAs). Returns the parsed body of a 2xx answer (caller decrefs; an
 * unparsable body gives an empty object), else NULL. */
static json_t *probe_json(const char *url, const char *api_key, const char *ca_file, const char *post) {
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    hl_buf body;
    hl_buf_init(&body, 1 << 20);
    struct curl_slist *hdrs = NULL;
    char auth[512] = "";
    if (api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api_key);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (post) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 300L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1500L);
    if (ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, ca_file); /* the backend's ca_file */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    json_t *root = NULL;
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK &&
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code / 100 == 2) {
        root = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
        if (!root) root = json_object();
    }
    explicit_bzero(auth, sizeof auth);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    hl_buf_release(&body);
    return root;
}

/* GET {url}/models; on 2xx returns the first model id (caller frees) or an empty string,
 * *max_len its vLLM max_model_len (0 when absent) and *ollama whether Ollama lists it; else
 * NULL. */
static char *probe_models(const char *url, const char *api_key, const char *ca_file, long *max_len, bool *ollama) {
    char full[1024];
    snprintf(full, sizeof full, "%s/models", url);
    json_t *root = probe_json(full, api_key, ca_file, NULL);
    if (!root) return NULL;
    json_t *first = json_array_get(json_object_get(root, "data"), 0);
    const char *id = json_string_value(json_object_get(first, "id"));
    json_int_t ml = json_integer_value(json_object_get(first, "max_model_len"));
    *max_len = ml > 0 && ml < 100000000 ? (long)ml : 0;
    /* Ollama says owned_by "library" (or the model's namespace); llama.cpp "llamacpp", vLLM "vllm". */
    const char *owner = json_string_value(json_object_get(first, "owned_by"));
    *ollama = (owner && (!strcmp(owner, "library") || !strcmp(owner, "ollama"))) || strstr(url, ":11434");
    char *model = strdup(id ? id : "");
    json_decref(root);
    return model;
}

void hl_backend_server_root(const char *url, char *out, size_t len) {
    snprintf(out, len, "%s", url);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/') out[--n] = '\0';
    if (n >= 3 && !strcmp(out + n - 3, "/v1")) out[n - 3] = '\0';
}

/* The context window a local server runs with: llama.cpp's GET /props (the slot's n_ctx),
 * else for Ollama its POST /api/show (num_ctx when set, else the model's context_length). 0
 * when neither says. Blocking, short timeouts. */
static long probe_context(const char *url, const char *api_key, const char *ca_file, const char *model, bool ollama,
                          bool *llama) {
    char root[1024], full[1100];
    hl_backend_server_root(url, root, sizeof root);
    snprintf(full, sizeof full, "%s/props", root);
    long n = 0;
    json_t *j = probe_json(full, api_key, ca_file, NULL);
    if (j) {
        json_int_t v = json_integer_value(json_object_get(json_object_get(j, "default_generation_settings"), "n_ctx"));
        if (v <= 0) v = json_integer_value(json_object_get(j, "n_ctx"));
        n = v > 0 && v < 100000000 ? (long)v : 0;
        json_decref(j);
        *llama = n > 0;
        if (n) return n;
    }
    if (!ollama) return 0;
    hl_buf q;
    hl_buf_init(&q, 0);
    hl_buf_puts(&q, "{\"model\":");
    hl_buf_json_str(&q, model, strlen(model));
    hl_buf_puts(&q, "}");
    snprintf(full, sizeof full, "%s/api/show", root);
    j = q.data ? probe_json(full, api_key, ca_file, q.data) : NULL;
    hl_buf_release(&q);
    if (!j) return 0;
    const char *params = json_string_value(json_object_get(j, "parameters"));
    const char *nc = params ? strstr(params, "num_ctx") : NULL;
    if (nc) n = strtol(nc + 7, NULL, 10);
    if (n <= 0) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "model_info"), k, v) {
            size_t kl = strlen(k);
            if (kl > 15 && !strcmp(k + kl - 15, ".context_length") && json_integer_value(v) > 0)
                n = (long)json_integer_value(v);
        }
    }
    json_decref(j);
    return n > 0 && n < 100000000 ? n : 0;
}

/* Keeps a replaced string until release (requests may still hold it). Under b->mu. */
static void retire(hl_backend *b, char *old) {
    if (!old) return;
    char **v = realloc(b->retired, (b->n_retired + 1) * sizeof *v);
    if (!v) return; /* leak it rather than free it under a reader */
    b->retired = v;
    b->retired[b->n_retired++] = old;
}

/* Sets the URL, model and status of b under its lock (they are read by /readyz and error
 * messages while the health thread may change them), then `ready`. Takes ownership of url and
 * model (NULL: unchanged; equal to the current one: freed). */
static void set_state(hl_backend *b, char *url, char *model, bool ready, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_state(hl_backend *b, char *url, char *model, bool ready, const char *fmt, ...) {
    pthread_mutex_lock(&b->mu);
    if (url && b->base_url && !strcmp(url, b->base_url)) {
        free(url);
    } else if (url) {
        retire(b, b->base_url);
        __atomic_store_n(&b->base_url, url, __ATOMIC_RELEASE); /* read without the lock */
    }
    if (model && b->model && !strcmp(model, b->model)) {
        free(model);
    } else if (model) {
        if (b->model && atomic_load(&b->ready))
            hl_log(HL_LOG_WARN, "backend %s now serves model %s (was %s)", b->cfg->name, model, b->model);
        retire(b, b->model);
        __atomic_store_n(&b->model, model, __ATOMIC_RELEASE); /* read without the lock */
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->status, sizeof b->status, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&b->mu);
    atomic_store(&b->ready, ready); /* after the strings: readers check ready first */
}

/* Probes b's base URLs; on the first that answers, takes it, its first model for "auto" and
 * the context window a local server reports, and marks b ready; when none answers, not ready
 * with why. Blocking (short timeouts). */
/* Replicas: probes each (GET /models) and sets its ready flag; returns how many answer. */
static size_t probe_replicas(hl_backend *b) {
    size_t up = 0;
    for (size_t i = 0; i < b->n_replicas; i++) {
        hl_replica *r = &b->replicas[i];
        long max_len = 0;
        bool ollama = false;
        char *m = probe_models(r->url, b->api_key, b->cfg->ca_file, &max_len, &ollama);
        bool ok = m != NULL;
        free(m);
        up += ok;
        if (atomic_exchange(&r->ready, ok) != ok)
            hl_log(ok ? HL_LOG_INFO : HL_LOG_WARN, "backend %s: replica %s %s", b->cfg->name, r->url,
                   ok ? "answers: back in the balancing" : "does not answer: out of the balancing");
    }
    return up;
}

static hl_err probe_into(hl_backend *b, const hl_config *cfg) {
    const hl_backend_cfg *c = b->cfg;
    size_t up = b->n_replicas ? probe_replicas(b) : 0;
    for (size_t i = 0; i < c->n_base_urls; i++) {
        if (b->n_replicas && !atomic_load(&b->replicas[i].ready)) continue;
        long max_len = 0;
        bool ollama = false;
        char *first = probe_models(c->base_urls[i], b->api_key, c->ca_file, &max_len, &ollama);
        if (!first) continue;
        char *url = strdup(c->base_urls[i]);
        char *model = !strcmp(c->model, "auto") && first[0] ? first : strdup(c->model);
        if (model != first) free(first);
        if (!url || !model) {
            free(url);
            free(model);
            return HL_ERR_NOMEM;
        }
        if (!strcmp(model, "auto")) {
            set_state(b, url, model, false, "%s answers but lists no model: load one, or set `model:` "
                      "for backend %s", c->base_urls[i], c->name);
            return HL_OK;
        }
        int tokenizer = max_len ? HL_TOKENIZE_VLLM : HL_TOKENIZE_NONE; /* vLLM says max_model_len */
        bool llama = false;
        if (c->location == HL_LOCATION_LOCAL && c->kind == HL_PROVIDER_OPENAI && !max_len)
            max_len = probe_context(c->base_urls[i], b->api_key, c->ca_file, model, ollama, &llama);
        if (llama) tokenizer = HL_TOKENIZE_LLAMA;
        if (c->location != HL_LOCATION_LOCAL) tokenizer = HL_TOKENIZE_NONE;
        atomic_store(&b->tokenizer, tokenizer);
        atomic_store(&b->n_ctx, max_len);
        b->price = hl_config_price(cfg, model);
        if (b->n_replicas) set_state(b, url, model, true, "ready: %zu of %zu replicas answer", up, b->n_replicas);
        else set_state(b, url, model, true, "ready");
        return HL_OK;
    }
    hl_buf tried;
    hl_buf_init(&tried, 200);
    for (size_t i = 0; i < c->n_base_urls; i++)
        if (hl_buf_printf(&tried, "%s%s", i ? ", " : "", c->base_urls[i])) break;
    set_state(b, NULL, NULL, false,
              "no server answered at %s; start an OpenAI-compatible server there (vLLM :8000, "
              "llama.cpp server :8080, Ollama :11434) or set base_url for backend %s",
              tried.data ? tried.data : "?", c->name);
    hl_buf_release(&tried);
    return HL_OK;
}

static bool wants_probe(const hl_backend_cfg *c) {
    if (c->kind == HL_PROVIDER_BUILTIN) return false; /* loaded, not probed */
    return c->location == HL_LOCATION_LOCAL || c->n_base_urls > 1 || !strcmp(c->model, "auto");
}

void hl_backend_set_ready(hl_backend *b, bool ready, const char *status) {
    set_state(b, NULL, NULL, ready, "%s", status);
}

hl_err hl_backend_set_model(hl_backend *b, const char *model) {
    char *m = strdup(model), status[sizeof b->status];
    if (!m) return HL_ERR_NOMEM;
    hl_backend_status(b, status, sizeof status);
    set_state(b, NULL, m, atomic_load(&b->ready), "%s", status);
    return HL_OK;
}

static hl_err resolve(hl_backend *b, const hl_config *cfg, bool probe) {
    const hl_backend_cfg *c = b->cfg;
    if (c->api_key_env) {
        const char *k = getenv(c->api_key_env);
        if (k && *k && !(b->api_key = strdup(k))) return HL_ERR_NOMEM;
    }
    b->price = hl_config_price(cfg, c->model);
    b->base_url = strdup(c->kind == HL_PROVIDER_BUILTIN ? c->model_path : c->base_urls[0]);
    b->model = strdup(c->model);
    if (!b->base_url || !b->model) return HL_ERR_NOMEM;
    if (c->kind == HL_PROVIDER_BUILTIN) {
        set_state(b, NULL, NULL, false, "loading %s", c->model_path);
        return HL_OK;
    }
    if (c->api_key_env && !b->api_key && c->location == HL_LOCATION_CLOUD) {
        set_state(b, NULL, NULL, false, "missing API key: set %s in the gateway's environment",
                  c->api_key_env);
        return HL_OK;
    }
    if (probe && wants_probe(c)) return probe_into(b, cfg);
    set_state(b, NULL, NULL, true, "ready");
    return HL_OK;
}

bool hl_backend_probes_when_ready(const hl_backend *b) {
    return wants_probe(b->cfg) &&
           (b->cfg->location == HL_LOCATION_LOCAL || !strcmp(b->cfg->model, "auto") || b->n_replicas);
}

bool hl_backend_reprobe(hl_backend *b, const hl_config *cfg) {
    bool ready = atomic_load(&b->ready);
    atomic_store(&b->suspect, false);
    if (ready && !hl_backend_probes_when_ready(b)) return true;
    if (!wants_probe(b->cfg)) return ready; /* a missing key does not appear by itself */
    probe_into(b, cfg);
    return atomic_load(&b->ready);
}

void hl_backend_suspect(hl_backend *b) {
    if (hl_backend_probes_when_ready(b)) atomic_store(&b->suspect, true);
}

long hl_backend_context_window(hl_backend *b) {
    return b->cfg->context_window > 0 ? b->cfg->context_window : atomic_load(&b->n_ctx);
}

bool hl_backend_readiness(hl_backend *b, double now_ms, char *why, size_t len) {
    hl_backend_status(b, why, len);
    if (!atomic_load(&b->ready)) return false;
    if (b->n_replicas) { /* ready while one replica is, its breaker closed */
        for (size_t r = 0; r < b->n_replicas; r++)
            if (atomic_load(&b->replicas[r].ready) && !atomic_load(&b->replicas[r].breaker.open_flag)) return true;
        snprintf(why, len, "no replica can take requests: each is down or its circuit breaker is open");
        return false;
    }
    hl_breaker *br = &b->breaker;
    pthread_mutex_lock(&br->mu);
    hl_breaker_state st = br->state;
    double left = (double)b->cfg->breaker_open_ms - (now_ms - br->opened_at);
    pthread_mutex_unlock(&br->mu);
    if (st == HL_BREAKER_OPEN)
        snprintf(why, len, "circuit breaker open: %d attempts failed within %ld ms; %s", b->cfg->breaker_failures,
                 b->cfg->breaker_window_ms, left > 0 ? "a probe request is let through once it has been open for "
                                                     "breaker_open_ms" : "the next request is a probe");
    else if (st == HL_BREAKER_HALF_OPEN)
        snprintf(why, len, "circuit breaker half-open: a probe request is in flight");
    return st == HL_BREAKER_CLOSED;
}

void hl_backend_status(hl_backend *b, char *buf, size_t len) {
    pthread_mutex_lock(&b->mu);
    snprintf(buf, len, "%s", b->status);
    pthread_mutex_unlock(&b->mu);
}

/* One tiny completion ("ping", 1 token), to load the model and prime caches. Returns the
 * latency in ms, or -1 when it failed. Blocking. */
double hl_backend_ping(hl_backend *b) {
    CURL *h = curl_easy_init();
    if (!h) return -1;
    char url[1100], auth[600] = "";
    bool anthropic = b->cfg->kind == HL_PROVIDER_ANTHROPIC;
    snprintf(url, sizeof url, anthropic ? "%s/v1/messages" : "%s/chat/completions", b->base_url);
    hl_buf body, sink;
    hl_buf_init(&body, 0);
    hl_buf_init(&sink, 1 << 20);
    hl_buf_puts(&body, "{\"model\":");
    hl_buf_json_str(&body, b->model, strlen(b->model));
    hl_buf_puts(&body, ",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}");
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (anthropic) hdrs = curl_slist_append(hdrs, "anthropic-version: 2023-06-01");
    if (b->api_key) {
        snprintf(auth, sizeof auth, anthropic ? "x-api-key: %s" : "Authorization: Bearer %s", b->api_key);
        hdrs = curl_slist_append(hdrs, auth);
        explicit_bzero(auth, sizeof auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, b->cfg->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L); /* a model may take a while to load */
    if (b->cfg->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, b->cfg->ca_file);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long code = 0;
    double ms = -1;
    if (curl_easy_perform(h) == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
        code / 100 == 2) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    hl_buf_release(&body);
    hl_buf_release(&sink);
    return ms;
}

hl_err hl_backends_init(hl_backends *bs, const hl_config *cfg, bool probe) {
    bs->n = 0;
    bs->v = calloc(cfg->n_backends ? cfg->n_backends : 1, sizeof *bs->v);
    if (!bs->v) return HL_ERR_NOMEM;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        bs->v[i].cfg = &cfg->backends[i];
        bs->n = i + 1;
        pthread_mutex_init(&bs->v[i].mu, NULL);
        pthread_mutex_init(&bs->v[i].breaker.mu, NULL);
        pthread_mutex_init(&bs->v[i].lat_mu, NULL);
        atomic_store(&bs->v[i].lat_p95, -1.0);
        bs->v[i].breaker.failures = calloc((size_t)cfg->backends[i].breaker_failures + 1, sizeof(double));
        if (!bs->v[i].breaker.failures) return HL_ERR_NOMEM;
        if (cfg->backends[i].replicas && cfg->backends[i].kind != HL_PROVIDER_BUILTIN) {
            size_t n = cfg->backends[i].n_base_urls;
            if (!(bs->v[i].replicas = calloc(n, sizeof *bs->v[i].replicas))) return HL_ERR_NOMEM;
            for (size_t r = 0; r < n; r++) {
                hl_replica *rp = &bs->v[i].replicas[r];
                rp->url = cfg->backends[i].base_urls[r];
                atomic_store(&rp->ready, true); /* until a probe says otherwise */
                atomic_store(&rp->lat_p95, -1.0);
                pthread_mutex_init(&rp->breaker.mu, NULL);
                pthread_mutex_init(&rp->lat_mu, NULL);
                bs->v[i].n_replicas = r + 1;
                rp->breaker.failures = calloc((size_t)cfg->backends[i].breaker_failures + 1, sizeof(double));
                if (!rp->breaker.failures) return HL_ERR_NOMEM;
            }
        }
        hl_err e = resolve(&bs->v[i], cfg, probe);
        if (e) return e;
    }
    return HL_OK;
}

void hl_backends_release(hl_backends *bs) {
    for (size_t i = 0; i < bs->n; i++) {
        if (bs->v[i].api_key) explicit_bzero(bs->v[i].api_key, strlen(bs->v[i].api_key));
        free(bs->v[i].api_key);
        free(bs->v[i].base_url);
        free(bs->v[i].model);
        for (size_t k = 0; k < bs->v[i].n_retired; k++) free(bs->v[i].retired[k]);
        free(bs->v[i].retired);
        pthread_mutex_destroy(&bs->v[i].mu);
        free(bs->v[i].breaker.failures);
        pthread_mutex_destroy(&bs->v[i].breaker.mu);
        pthread_mutex_destroy(&bs->v[i].lat_mu);
        for (size_t r = 0; r < bs->v[i].n_replicas; r++) {
            free(bs->v[i].replicas[r].breaker.failures);
            pthread_mutex_destroy(&bs->v[i].replicas[r].breaker.mu);
            pthread_mutex_destroy(&bs->v[i].replicas[r].lat_mu);
        }
        free(bs->v[i].replicas);
    }
    free(bs->v);
    bs->v = NULL;
    bs->n = 0;
}

hl_backend *hl_backends_find(hl_backends *bs, const char *name) {
    for (size_t i = 0; i < bs->n; i++)
        if (!strcmp(bs->v[i].cfg->name, name)) return &bs->v[i];
    return NULL;
}

size_t hl_backends_ready_count(const hl_backends *bs) {
    size_t n = 0;
    for (size_t i = 0; i < bs->n; i++) n += atomic_load(&bs->v[i].ready);
    return n;
}

bool hl_backend_serves(const hl_backend *b, const char *model) {
    const char *current = hl_backend_model(b);
    if (current && !strcmp(current, model)) return true;
    if (strcmp(b->cfg->model, "auto") != 0 && !strcmp(b->cfg->model, model)) return true;
    for (size_t i = 0; i < b->cfg->n_models; i++)
        if (!strcmp(b->cfg->models[i], model)) return true;
    return false;
}

/* ---- circuit breaker ---- */

static void breaker_set(hl_breaker *br, hl_breaker_state st) {
    br->state = st;
    atomic_store(&br->open_flag, st != HL_BREAKER_CLOSED);
}

static bool breaker_allows(hl_breaker *br, const hl_backend_cfg *c, double now_ms) {
    if (!atomic_load(&br->open_flag)) return true;
    pthread_mutex_lock(&br->mu);
    bool ok = br->state == HL_BREAKER_OPEN && now_ms - br->opened_at >= (double)c->breaker_open_ms;
    pthread_mutex_unlock(&br->mu);
    return ok;
}

static bool breaker_admit(hl_breaker *br, const hl_backend_cfg *c, double now_ms, bool *probe) {
    *probe = false;
    if (!atomic_load(&br->open_flag)) return true;
    bool ok = false;
    pthread_mutex_lock(&br->mu);
    if (br->state == HL_BREAKER_CLOSED) {
        ok = true;
    } else if (br->state == HL_BREAKER_OPEN && now_ms - br->opened_at >= (double)c->breaker_open_ms) {
        breaker_set(br, HL_BREAKER_HALF_OPEN);
        br->probe_out = true;
        *probe = ok = true;
    }
    pthread_mutex_unlock(&br->mu);
    return ok;
}

static void breaker_report(hl_breaker *br, const hl_backend_cfg *c, bool ok, bool probe, double now_ms) {
    int n = c->breaker_failures;
    if (ok && !probe && !atomic_load(&br->open_flag)) return; /* the common case: no lock */
    pthread_mutex_lock(&br->mu);
    if (probe) {
        br->probe_out = false;
        if (ok) {
            breaker_set(br, HL_BREAKER_CLOSED);
            br->count = br->head = 0;
        } else {
            breaker_set(br, HL_BREAKER_OPEN);
            br->opened_at = now_ms;
        }
    } else if (!ok && br->state == HL_BREAKER_CLOSED) {
        br->failures[br->head] = now_ms;
        br->head = (br->head + 1) % n;
        if (br->count < n) br->count++;
        /* the oldest of the last n failures */
        double oldest = br->failures[br->count < n ? 0 : br->head];
        if (br->count >= n && now_ms - oldest <= (double)c->breaker_window_ms) {
            breaker_set(br, HL_BREAKER_OPEN);
            br->opened_at = now_ms;
        }
    }
    pthread_mutex_unlock(&br->mu);
}

static void breaker_abandoned(hl_breaker *br, const hl_backend_cfg *c, double now_ms) {
    pthread_mutex_lock(&br->mu);
    br->probe_out = false;
    breaker_set(br, HL_BREAKER_OPEN);
    br->opened_at = now_ms - (double)c->breaker_open_ms;
    pthread_mutex_unlock(&br->mu);
}

static const char *breaker_name(hl_breaker *br) {
    pthread_mutex_lock(&br->mu);
    hl_breaker_state st = br->state;
    pthread_mutex_unlock(&br->mu);
    return st == HL_BREAKER_CLOSED ? "closed" : st == HL_BREAKER_OPEN ? "open" : "half_open";
}

/* May replica r take an attempt now (ready, breaker closed or its open period over)? */
static bool replica_usable(hl_backend *b, size_t r, double now_ms) {
    return atomic_load(&b->replicas[r].ready) && breaker_allows(&b->replicas[r].breaker, b->cfg, now_ms);
}

bool hl_backend_breaker_allows(hl_backend *b, double now_ms) {
    if (!b->n_replicas) return breaker_allows(&b->breaker, b->cfg, now_ms);
    for (size_t r = 0; r < b->n_replicas; r++)
        if (replica_usable(b, r, now_ms)) return true;
    return false;
}

bool hl_backend_admit(hl_backend *b, double now_ms, bool *probe) {
    return breaker_admit(&b->breaker, b->cfg, now_ms, probe);
}

void hl_backend_report(hl_backend *b, bool ok, bool probe, double now_ms) {
    breaker_report(&b->breaker, b->cfg, ok, probe, now_ms);
}

void hl_backend_probe_abandoned(hl_backend *b, double now_ms) { breaker_abandoned(&b->breaker, b->cfg, now_ms); }

const char *hl_breaker_state_name(hl_backend *b) { return breaker_name(&b->breaker); }

const char *hl_replica_breaker_name(hl_replica *r) { return breaker_name(&r->breaker); }

/* ---- replicas ---- */

/* The better of replicas x and y for the next attempt: fewer in flight, then the lower p95. */
static size_t better(hl_backend *b, size_t x, size_t y) {
    int fx = atomic_load(&b->replicas[x].in_flight), fy = atomic_load(&b->replicas[y].in_flight);
    if (fx != fy) return fx < fy ? x : y;
    double px = atomic_load(&b->replicas[x].lat_p95), py = atomic_load(&b->replicas[y].lat_p95);
    return px >= 0 && py >= 0 && py < px ? y : x;
}

bool hl_backend_admit_at(hl_backend *b, double now_ms, uint64_t rnd, bool *probe, int *replica) {
    *replica = -1;
    if (!b->n_replicas) return hl_backend_admit(b, now_ms, probe);
    *probe = false;
    size_t usable[64], k = 0;
    for (size_t r = 0; r < b->n_replicas && k < 64; r++)
        if (replica_usable(b, r, now_ms)) usable[k++] = r;
    while (k) {
        size_t i = (size_t)(rnd % k), pick = usable[i], at = i;
        if (k > 1) {
            size_t j = (i + 1 + (size_t)((rnd >> 32) % (k - 1))) % k; /* another one */
            pick = better(b, usable[i], usable[j]);
            at = pick == usable[i] ? i : j;
        }
        hl_replica *rp = &b->replicas[pick];
        if (breaker_admit(&rp->breaker, b->cfg, now_ms, probe)) {
            atomic_fetch_add(&rp->in_flight, 1);
            *replica = (int)pick;
            return true;
        }
        usable[at] = usable[--k]; /* its half-open probe was taken meanwhile: another one */
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
    }
    return false;
}

void hl_backend_report_at(hl_backend *b, int replica, bool ok, bool probe, double now_ms) {
    if (replica < 0 || (size_t)replica >= b->n_replicas) hl_backend_report(b, ok, probe, now_ms);
    else breaker_report(&b->replicas[replica].breaker, b->cfg, ok, probe, now_ms);
}

void hl_backend_probe_abandoned_at(hl_backend *b, int replica, double now_ms) {
    if (replica < 0 || (size_t)replica >= b->n_replicas) hl_backend_probe_abandoned(b, now_ms);
    else breaker_abandoned(&b->replicas[replica].breaker, b->cfg, now_ms);
}

void hl_backend_replica_done(hl_backend *b, int replica) {
    if (replica >= 0 && (size_t)replica < b->n_replicas) atomic_fetch_sub(&b->replicas[replica].in_flight, 1);
}

void hl_backend_suspect_at(hl_backend *b, int replica) {
    if (replica < 0 || (size_t)replica >= b->n_replicas) {
        hl_backend_suspect(b);
        return;
    }
    if (atomic_exchange(&b->replicas[replica].ready, false))
        hl_log(HL_LOG_WARN, "backend %s: replica %s failed to connect: out of the balancing until a probe answers",
               b->cfg->name, b->replicas[replica].url);
    atomic_store(&b->suspect, true);
    for (size_t r = 0; r < b->n_replicas; r++)
        if (atomic_load(&b->replicas[r].ready)) return;
    set_state(b, NULL, NULL, false, "no replica answers (the last failed to connect); probing them");
}

/* ---- latency ---- */

/* The k-th smallest of v[0..n) (k < n), reordering v: quickselect, about 3n comparisons where
 * sorting the window took thousands of instructions on the request path. */
static double kth_smallest(double *v, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k]; /* between the two halves: equal to the pivot */
    }
    return v[k];
}

/* Adds a sample to a latency ring and refreshes its p95 (every 8 samples while the window
 * fills, then every 64). */
static void latency_add(pthread_mutex_t *mu, double *ring, int *n_, int *head, _Atomic double *p95, double ms) {
    enum { CAP = 128 };
    double copy[CAP];
    int n = 0;
    pthread_mutex_lock(mu);
    ring[*head] = ms;
    *head = (*head + 1) % CAP;
    if (*n_ < CAP) (*n_)++;
    if (*n_ >= 16 && (*n_ < CAP ? *head % 8 : *head % 64) == 0) {
        n = *n_;
        memcpy(copy, ring, (size_t)n * sizeof copy[0]);
    }
    pthread_mutex_unlock(mu);
    if (!n) return;
    atomic_store(p95, kth_smallest(copy, n, (int)ceil(0.95 * n) - 1));
}

_Static_assert(sizeof ((hl_backend *)0)->lat == 128 * sizeof(double) &&
               sizeof ((hl_replica *)0)->lat == 128 * sizeof(double), "latency rings of 128");

void hl_backend_record_latency(hl_backend *b, double ms) {
    latency_add(&b->lat_mu, b->lat, &b->lat_n, &b->lat_head, &b->lat_p95, ms);
}

void hl_backend_record_latency_at(hl_backend *b, int replica, double ms) {
    hl_backend_record_latency(b, ms);
    if (replica < 0 || (size_t)replica >= b->n_replicas) return;
    hl_replica *r = &b->replicas[replica];
    latency_add(&r->lat_mu, r->lat, &r->lat_n, &r->lat_head, &r->lat_p95, ms);
}
