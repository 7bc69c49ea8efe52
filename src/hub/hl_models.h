/* hl_models: the models directory, where `hybridllm pull` puts GGUF files and where
 * `hybridllm models` and a builtin backend with `model_path: "pulled:..."` find them.
 *
 * Why it exists: one answer to "where are my models" for the three of them. The directory is
 * --dir when a command gets one, else $HYBRIDLLM_MODELS_DIR, else
 * $XDG_CACHE_HOME/hybridllm/models, else ~/.cache/hybridllm/models. A pulled file lives at
 * DIR/OWNER/NAME/FILE.gguf; any other .gguf under DIR (up to four folders deep) counts too.
 * Unfinished downloads (*.part) do not. */
#ifndef HL_MODELS_H
#define HL_MODELS_H

#include <stddef.h>
#include "hl_err.h"

/* The models directory (override: --dir, or NULL) into out. HL_ERR_NOTFOUND when no variable
 * says where home is; HL_ERR_LIMIT when it does not fit. */
hl_err hl_models_dir(const char *override, char *out, size_t len);

typedef struct hl_model_entry {
    char *name;          /* owned; the path under the directory: OWNER/NAME/FILE.gguf */
    char *path;          /* owned; the full path */
    long long size;      /* bytes */
    double mtime;        /* seconds since the epoch */
    char arch[32];       /* general.architecture, "?" when the header does not say or is bad */
    char quant[24];      /* from general.file_type (Q4_K_M, Q8_0, F16...), else "?" */
} hl_model_entry;

/* The GGUF files under dir, by name. A directory that does not exist holds none (HL_OK, n
 * 0). with_header: read each file's GGUF header for arch and quant (else both "?").
 * HL_ERR_NOMEM; HL_ERR_IO when dir exists but cannot be read. Free with hl_models_free. */
hl_err hl_models_list(const char *dir, int with_header, hl_model_entry **out, size_t *n);
void hl_models_free(hl_model_entry *v, size_t n);

/* The name llama.cpp gives a general.file_type value ("Q4_K_M"), or NULL when unknown. */
const char *hl_models_ftype_name(unsigned ftype);

/* What a builtin backend's model_path names: a path as it is, or "pulled:" (the newest file
 * in the models directory) or "pulled:TEXT" (the newest whose name contains TEXT, case-
 * insensitively: a repository, a file, a quantization). Writes the file's path to out.
 * HL_ERR_NOTFOUND, with a sentence in err that says what to pull, when none matches. */
hl_err hl_models_resolve(const char *model_path, char *out, size_t len, char *err, size_t err_len);

/* Does model_path name a pulled model ("pulled:...")? */
int hl_models_is_pulled(const char *model_path);

#endif
