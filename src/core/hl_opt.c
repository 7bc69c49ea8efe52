/* hl_opt: the option parser of every command; see hl_opt.h. One loop over argv, one function
 * per value kind, one way to say what was wrong. */
#include "hl_opt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int hl_opt_usage_error(const hl_opt_cmd *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(c->err, "hybridllm %s: ", c->name);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fputc('\n', c->err);
    fputs(c->usage, c->err);
    return 2;
}

int hl_opt_help(const hl_opt_cmd *c) {
    fputs(c->usage, c->out);
    return fflush(c->out) == 0 ? 0 : 1;
}

bool hl_opt_number(const char *s, bool suffixes, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !isfinite(x)) return false;
    if (suffixes && *end) {
        if (*end == 'k' || *end == 'K') x *= 1e3;
        else if (*end == 'm' || *end == 'M') x *= 1e6;
        else if (*end == 'g' || *end == 'G') x *= 1e9;
        else return false;
        end++;
    }
    if (*end) return false;
    *out = x;
    return true;
}

static bool in_bounds(const hl_opt *o, double x) {
    if (o->flags & HL_OPT_ABOVE_MIN ? !(x > o->min) : !(x >= o->min)) return false;
    return o->max == 0 || x <= o->max;
}

/* Stores value into o's target; false when the value is not what o wants. */
static bool store(hl_opt *o, const char *v) {
    char *end;
    double x;
    errno = 0;
    switch (o->kind) {
    case HL_OPT_FLAG: *(bool *)o->target = true; return true;
    case HL_OPT_STR: *(const char **)o->target = v; return true;
    case HL_OPT_LIST: {
        hl_opt_list *l = o->target;
        if (l->n >= l->max) return false;
        l->v[l->n++] = v;
        return true;
    }
    case HL_OPT_INT: {
        long long i = strtoll(v, &end, 10);
        if (end == v || *end || errno || !in_bounds(o, (double)i) || i < -2147483647LL || i > 2147483647LL)
            return false;
        *(int *)o->target = (int)i;
        return true;
    }
    case HL_OPT_U64: {
        unsigned long long u = strtoull(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end || errno) return false;
        *(uint64_t *)o->target = u;
        return true;
    }
    case HL_OPT_DOUBLE:
    case HL_OPT_FLOAT:
        if (!hl_opt_number(v, o->flags & HL_OPT_SUFFIX, &x) || !in_bounds(o, x)) return false;
        if (o->kind == HL_OPT_DOUBLE) *(double *)o->target = x;
        else *(float *)o->target = (float)x;
        return true;
    case HL_OPT_CHOICE:
        for (const hl_opt_choice *ch = o->choices; ch && ch->name; ch++)
            if (!strcmp(v, ch->name)) {
                *(int *)o->target = ch->value;
                return true;
            }
        return false;
    case HL_OPT_FN: return o->fn(o->target, v);
    }
    return false;
}

/* The option named by arg ("--name", "--name=value" or "-x"); *inline_value is what follows
 * '=' (NULL when none). NULL when no option has that name. */
static hl_opt *find(hl_opt *opts, size_t n, const char *arg, const char **inline_value) {
    *inline_value = NULL;
    if (arg[1] != '-') {
        for (size_t i = 0; i < n; i++)
            if (opts[i].letter && arg[1] == opts[i].letter && arg[2] == '\0') return &opts[i];
        return NULL;
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t i = 0; i < n; i++)
        if (opts[i].name && strlen(opts[i].name) == len && !strncmp(opts[i].name, arg, len)) {
            if (eq) *inline_value = eq + 1;
            return &opts[i];
        }
    return NULL;
}

/* "an integer", "one of a, b or c"...: what o wants, for messages. */
static void describe(const hl_opt *o, char *buf, size_t len) {
    if (o->want) {
        snprintf(buf, len, "%s", o->want);
        return;
    }
    switch (o->kind) {
    case HL_OPT_INT: snprintf(buf, len, "an integer"); return;
    case HL_OPT_U64: snprintf(buf, len, "an unsigned integer"); return;
    case HL_OPT_DOUBLE: case HL_OPT_FLOAT: snprintf(buf, len, "a number"); return;
    case HL_OPT_CHOICE: {
        size_t at = (size_t)snprintf(buf, len, "one of");
        for (const hl_opt_choice *ch = o->choices; ch && ch->name && at < len; ch++)
            at += (size_t)snprintf(buf + at, len - at, "%s%s", ch == o->choices ? " " : ", ", ch->name);
        return;
    }
    default: snprintf(buf, len, "a valid value"); return;
    }
}

static bool looks_like_option(const char *a) { return a[0] == '-' && a[1] != '\0'; }

int hl_opt_parse(const hl_opt_cmd *c, hl_opt *opts, size_t n_opts, hl_opt_list *positional, int argc,
                 char **argv) {
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!options_done && (!strcmp(a, "--help") || !strcmp(a, "-h"))) return hl_opt_help(c);
        if (!options_done && !strcmp(a, "--")) {
            options_done = true;
            continue;
        }
        if (options_done || !looks_like_option(a)) {
            if (!positional || positional->n >= positional->max)
                return hl_opt_usage_error(c, "unexpected argument '%s'", a);
            positional->v[positional->n++] = a;
            continue;
        }
        hl_opt *o = find(opts, n_opts, a, &v);
        if (!o) return hl_opt_usage_error(c, "unknown option '%s'", a);
        o->seen++;
        if (o->kind == HL_OPT_FLAG) {
            if (v) return hl_opt_usage_error(c, "%s takes no value", o->name);
            store(o, NULL);
            continue;
        }
        if (!v) {
            if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))
                return hl_opt_usage_error(c, "%s wants a value", a);
            v = argv[++i];
        }
        if (o->kind == HL_OPT_LIST && ((hl_opt_list *)o->target)->n >= ((hl_opt_list *)o->target)->max)
            return hl_opt_usage_error(c, "%s is given %zu times at most", a, ((hl_opt_list *)o->target)->max);
        if (!store(o, v)) {
            char want[256];
            describe(o, want, sizeof want);
            return hl_opt_usage_error(c, "%s wants %s, got '%s'", o->name ? o->name : a, want, v);
        }
    }
    return HL_OPT_GO;
}
