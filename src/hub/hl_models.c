/* hl_models: the models directory (see hl_models.h). */
#include "hl_models.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "hl_gguf.h"

hl_err hl_models_dir(const char *override, char *out, size_t len) {
    const char *env = getenv("HYBRIDLLM_MODELS_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w;
    if (override && *override) w = snprintf(out, len, "%s", override);
    else if (env && *env) w = snprintf(out, len, "%s", env);
    else if (xdg && xdg[0] == '/') w = snprintf(out, len, "%s/hybridllm/models", xdg); /* XDG: absolute only */
    else if (home && *home) w = snprintf(out, len, "%s/.cache/hybridllm/models", home);
    else return HL_ERR_NOTFOUND;
    if (w < 0 || (size_t)w >= len) return HL_ERR_LIMIT;
    while (w > 1 && out[w - 1] == '/') out[--w] = '\0';
    return HL_OK;
}

/* llama.cpp's llama_ftype values. */
static const char *const ftypes[] = {
    [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1",
    [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M",
    [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S",
    [22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M",
    [28] = "IQ2_S", [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16",
};

const char *hl_models_ftype_name(unsigned ftype) {
    return ftype < sizeof ftypes / sizeof ftypes[0] ? ftypes[ftype] : NULL;
}

void hl_models_free(hl_model_entry *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].path);
    }
    free(v);
}

typedef struct walk {
    hl_model_entry *v;
    size_t n, cap;
    size_t root_len;
    int with_header;
} walk;

static void read_header(hl_model_entry *m) {
    snprintf(m->arch, sizeof m->arch, "?");
    snprintf(m->quant, sizeof m->quant, "?");
    hl_gguf *g = NULL;
    if (hl_gguf_open(&g, m->path, NULL, 0) != HL_OK) return;
    hl_gguf_str a;
    if (hl_gguf_get_str(g, "general.architecture", &a) == HL_OK && a.n && a.n < sizeof m->arch)
        snprintf(m->arch, sizeof m->arch, "%.*s", (int)a.n, a.p);
    uint32_t ft;
    const char *q = hl_gguf_get_u32(g, "general.file_type", &ft) == HL_OK ? hl_models_ftype_name(ft) : NULL;
    if (q) snprintf(m->quant, sizeof m->quant, "%s", q);
    hl_gguf_free(g);
}

static hl_err add(walk *w, const char *path, const struct stat *st) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        hl_model_entry *v = realloc(w->v, cap * sizeof *v);
        if (!v) return HL_ERR_NOMEM;
        w->v = v;
        w->cap = cap;
    }
    hl_model_entry *m = &w->v[w->n];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    m->name = strdup(path + w->root_len + 1);
    if (!m->path || !m->name) {
        free(m->path);
        free(m->name);
        return HL_ERR_NOMEM;
    }
    m->size = (long long)st->st_size;
    m->mtime = (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9;
    if (w->with_header) read_header(m);
    else {
        snprintf(m->arch, sizeof m->arch, "?");
        snprintf(m->quant, sizeof m->quant, "?");
    }
    w->n++;
    return HL_OK;
}

static hl_err walk_dir(walk *w, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return depth ? HL_OK : errno == ENOENT ? HL_OK : HL_ERR_IO;
    hl_err e = HL_OK;
    struct dirent *de;
    while (e == HL_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096];
        int n = snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (n < 0 || (size_t)n >= sizeof p || stat(p, &st) != 0) continue;
        size_t l = strlen(de->d_name);
        if (S_ISDIR(st.st_mode) && depth < 4) e = walk_dir(w, p, depth + 1);
        else if (S_ISREG(st.st_mode) && l > 5 && !strcasecmp(de->d_name + l - 5, ".gguf")) e = add(w, p, &st);
    }
    closedir(d);
    return e;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const hl_model_entry *)a)->name, ((const hl_model_entry *)b)->name);
}

hl_err hl_models_list(const char *dir, int with_header, hl_model_entry **out, size_t *n) {
    walk w = {.root_len = strlen(dir), .with_header = with_header};
    hl_err e = walk_dir(&w, dir, 0);
    if (e) {
        hl_models_free(w.v, w.n);
        *out = NULL;
        *n = 0;
        return e;
    }
    if (w.n) qsort(w.v, w.n, sizeof *w.v, by_name);
    *out = w.v;
    *n = w.n;
    return HL_OK;
}

int hl_models_is_pulled(const char *model_path) {
    return model_path && !strncmp(model_path, "pulled:", 7);
}

hl_err hl_models_resolve(const char *model_path, char *out, size_t len, char *err, size_t err_len) {
    if (!hl_models_is_pulled(model_path)) {
        snprintf(out, len, "%s", model_path);
        return HL_OK;
    }
    const char *want = model_path + 7;
    char dir[4096];
    if (hl_models_dir(NULL, dir, sizeof dir) != HL_OK) {
        snprintf(err, err_len, "no models directory: set HYBRIDLLM_MODELS_DIR or HOME");
        return HL_ERR_NOTFOUND;
    }
    hl_model_entry *v = NULL;
    size_t n = 0;
    hl_err e = hl_models_list(dir, 0, &v, &n);
    if (e) {
        snprintf(err, err_len, "cannot read the models directory %s: %s", dir, e == HL_ERR_IO ? strerror(errno) : hl_err_str(e));
        return e;
    }
    const hl_model_entry *best = NULL;
    for (size_t i = 0; i < n; i++)
        if ((!*want || strcasestr(v[i].name, want)) && (!best || v[i].mtime > best->mtime)) best = &v[i];
    if (best) snprintf(out, len, "%s", best->path);
    else if (*want)
        snprintf(err, err_len, "no pulled model in %s matches '%s': run `hybridllm pull OWNER/NAME:QUANT` "
                 "(`hybridllm models` lists what is there)", dir, want);
    else
        snprintf(err, err_len, "no model pulled yet (%s is empty): run `hybridllm pull "
                 "Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0`, or any GGUF repository", dir);
    e = best ? HL_OK : HL_ERR_NOTFOUND;
    hl_models_free(v, n);
    return e;
}
