/* hl_hub: `hybridllm pull`, a GGUF file from the Hugging Face Hub (or a mirror) into the
 * models directory (hl_models.h), so that a builtin backend can serve it.
 *
 * Why our own client: three HTTP calls (the repository's file list, the file's metadata, the
 * file itself) over libcurl, which the gateway links anyway; no Python, no second tool.
 *
 * The calls, against the endpoint (HF_ENDPOINT, default https://huggingface.co):
 *   GET  {endpoint}/api/models/{repo}/tree/main?recursive=true   the files, sizes, LFS SHA-256
 *        (only when the spec names no file)
 *   HEAD {endpoint}/{repo}/resolve/main/{file}    redirects are not followed: a relative one
 *        (a renamed repository) is taken on the Hub; an absolute one names the CDN URL to
 *        download. X-Linked-Etag (else ETag) carries the file's SHA-256 for LFS files,
 *        X-Linked-Size its size; X-Error-Code says RepoNotFound, GatedRepo, EntryNotFound...
 *   GET  the download URL, with "Range: bytes=N-" when N bytes of a .part file are there.
 * The token (HF_TOKEN) goes as "Authorization: Bearer" to the endpoint's own origin
 * (scheme, host and port) only: never to the CDN a redirect points at (its URL is signed),
 * and never into a log or a message.
 *
 * The download lands in DIR/OWNER/NAME/FILE.part, hashed as it is written; an interrupted
 * transfer is retried from where it stopped (and a later run resumes the .part: the SHA-256
 * it was for is kept beside it in FILE.part.sha256, so a file changed upstream starts over);
 * a server that ignores Range (200 to a ranged request) restarts from 0. At the end the hash
 * must equal the one the Hub published, else the .part is deleted and the pull fails; then
 * the file is fsynced and renamed to DIR/OWNER/NAME/FILE. */
#ifndef HL_HUB_H
#define HL_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "hl_err.h"

/* What to pull: "OWNER/NAME", "OWNER/NAME:QUANT" or "OWNER/NAME/FILE.gguf". */
typedef struct hl_hub_spec {
    char repo[200];  /* OWNER/NAME */
    char quant[64];  /* "" unless :QUANT */
    char file[512];  /* "" unless /FILE.gguf (may hold folders: a/b.gguf) */
} hl_hub_spec;

/* One file of a repository's listing. */
typedef struct hl_hub_file {
    char *path;        /* owned; relative, checked safe (no "..", no leading '/') */
    long long size;    /* -1 when unknown */
    char sha256[65];   /* lower-case hex from its LFS pointer; "" when not an LFS file */
} hl_hub_file;

/* Parses a spec. HL_ERR_INVAL with a message in err (which says what is wrong) when it is
 * not one of the three forms, or a part has characters a repository or file name cannot. */
hl_err hl_hub_parse_spec(const char *s, hl_hub_spec *out, char *err, size_t err_len);

/* Is p a relative path safe to create under the models directory (segments of [A-Za-z0-9._-+]
 * not starting with '.', no empty segment, at most 400 bytes)? */
bool hl_hub_safe_path(const char *p);

/* The .gguf files of a tree listing (the JSON array GET .../tree/main answers). Entries that
 * are not files, not .gguf, or whose path is unsafe are left out. *out (caller frees with
 * hl_hub_files_free) may be empty. HL_ERR_PARSE when the JSON is not an array of objects
 * (message in err), HL_ERR_NOMEM. */
hl_err hl_hub_parse_tree(const char *json, size_t len, hl_hub_file **out, size_t *n, char *err, size_t err_len);
void hl_hub_files_free(hl_hub_file *v, size_t n);

/* Does the file name (its last path segment) contain quant, case-insensitively, as a whole
 * word: not preceded by a letter or digit, not followed by a letter, digit or '_' ("Q4_K_M"
 * is in "m.Q4_K_M.gguf" and "m-q4_k_m-00001-of-00002.gguf"; "Q4_K" is not in "m.Q4_K_M.gguf")? */
bool hl_hub_quant_matches(const char *path, const char *quant);

/* Picks the file the spec means among v[0..n): its FILE; else the one file matching its QUANT;
 * else, with neither, the only .gguf, or the one Q4_K_M file (the usual default). Returns the
 * index, or -1 with a message in err that lists the choices (none or several matched). */
long hl_hub_choose(const hl_hub_file *v, size_t n, const hl_hub_spec *s, char *err, size_t err_len);

/* Parses a SHA-256 from an ETag-like header value: 64 hex digits, optionally quoted and
 * "W/"-prefixed. Writes lower-case hex to out; false when it is anything else (a git blob's
 * 40-digit SHA-1, a CDN's own tag). */
bool hl_hub_etag_sha256(const char *value, char out[65]);

typedef struct hl_hub_opts {
    const char *endpoint;  /* no trailing '/'; https://huggingface.co or HF_ENDPOINT */
    const char *token;     /* HF_TOKEN or NULL; borrowed, never printed */
    const char *dir;       /* the models directory; created when missing */
    bool progress;         /* draw a progress bar on `out` (a terminal) */
    FILE *out;             /* progress and notes; NULL: silent */
    int attempts;          /* transfers tried while each makes progress; 0: 5 */
} hl_hub_opts;

/* Pulls what s names. On success the file's path is in path (of path_len bytes) and
 * *already is whether it was there before (nothing downloaded). Errors, with a sentence in
 * err: HL_ERR_NOTFOUND (repository, file or quantization not there), HL_ERR_INVAL (the
 * choice is ambiguous, the Hub's answer is unusable, the hash does not match: the .part is
 * deleted), HL_ERR_UPSTREAM (401/403: gated or private, with what to do; other HTTP errors),
 * HL_ERR_IO (network or disk; a .part stays for the next run), HL_ERR_NOMEM. */
hl_err hl_hub_pull(const hl_hub_opts *o, const hl_hub_spec *s, char *path, size_t path_len, bool *already,
                   char *err, size_t err_len);

#endif
