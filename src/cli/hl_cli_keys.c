/* hl_cli_keys: `hybridllm keys create|list|update|revoke`, the client keys in a store without
 * a running gateway (the same operations as /admin/keys; hl_keys.h). A key is printed once,
 * at creation; the store keeps its hash. Gateways on the store pick changes up within one
 * ledger.index_interval_ms. */
#include "hl_cli_keys.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "hl_keys.h"
#include "hl_opt.h"
#include "hl_store.h"
#include "hl_time.h"

static const char keys_usage[] =
    "usage: hybridllm keys create|list|update|revoke --db FILE|URI ...\n"
    "  Client keys in the store (SQLite file or postgresql:// URI): every gateway on the store\n"
    "  accepts, changes or refuses them within one ledger.index_interval_ms.\n"
    "  hybridllm keys COMMAND --help   the options of one command\n";

static const char create_usage[] =
    "usage: hybridllm keys create --db FILE|URI --name NAME [options]\n"
    "  Creates a key and prints it once (the store keeps its SHA-256 only).\n"
    "  --db FILE|URI        the store\n"
    "  --name NAME          unique; letters, digits, '.', '_', '-'\n"
    "  --tenant T           the tenant its requests belong to (default: NAME)\n"
    "  --backends A,B       the backends it may use (default: any)\n"
    "  --models M,N         the models it may ask for (default: any)\n"
    "  --local-only         its traffic never goes to a cloud backend\n"
    "  --budget-day USD     its cloud budget per UTC day\n"
    "  --budget-month USD   its cloud budget per UTC month\n"
    "  --rpm N              requests per minute (0: no limit)\n"
    "  --tpm N              tokens per minute (0: no limit)\n"
    "  --expires ISO        when it stops working (e.g. 2027-01-01)\n"
    "  --json               print the key's record as JSON\n";

static const char list_usage[] =
    "usage: hybridllm keys list --db FILE|URI [--json]\n"
    "  Lists every key (revoked ones too), never a key itself: its prefix.\n"
    "  --db FILE|URI        the store\n"
    "  --json               one JSON array\n";

static const char update_usage[] =
    "usage: hybridllm keys update --db FILE|URI --id N [options]\n"
    "  Changes the fields given; the others keep their values.\n"
    "  --db FILE|URI        the store\n"
    "  --id N               the key (from `keys list`)\n"
    "  --name, --tenant, --backends, --models, --budget-day, --budget-month, --rpm, --tpm,\n"
    "  --expires            as for `keys create`; the value 'none' clears a list, budget or expiry\n"
    "  --cloud yes|no       whether its traffic may go to the cloud\n"
    "  --json               print the key's record as JSON\n";

static const char revoke_usage[] =
    "usage: hybridllm keys revoke --db FILE|URI --id N\n"
    "  Revokes a key: every gateway on the store refuses it within one index interval.\n"
    "  --db FILE|URI        the store\n"
    "  --id N               the key\n";

static long long wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static hl_store *open_keys_store(const char *cmd, const char *db) {
    char err[600];
    hl_store *s = NULL;
    if (hl_store_open(&s, db, err, sizeof err) != HL_OK) fprintf(stderr, "hybridllm %s: %s\n", cmd, err);
    return s;
}

/* The options create and update share; strings NULL when not given. */
typedef struct key_opts {
    const char *db, *name, *tenant, *backends, *models, *budget_day, *budget_month, *expires, *cloud;
    double rpm, tpm;
    bool local_only, json;
    int id;
} key_opts;

/* Applies a "none"-able USD value. False (message printed) when it is not one. */
static bool set_usd(const hl_opt_cmd *c, const char *opt, const char *v, double *out) {
    if (!v) return true;
    if (!strcmp(v, "none")) {
        *out = -1;
        return true;
    }
    double d;
    if (!hl_opt_number(v, false, &d) || d < 0) {
        hl_opt_usage_error(c, "%s wants a number of USD >= 0 or 'none', not '%s'", opt, v);
        return false;
    }
    *out = d;
    return true;
}

/* Applies the options given to k (strings borrowed from argv). 0, or 2 (usage error). */
static int apply_opts(const hl_opt_cmd *c, const key_opts *o, const hl_opt *opts, hl_store_key *k) {
    if (o->name) k->name = o->name;
    if (o->tenant) k->tenant = strcmp(o->tenant, "none") ? o->tenant : NULL;
    if (o->backends) k->backends = strcmp(o->backends, "none") ? o->backends : NULL;
    if (o->models) k->models = strcmp(o->models, "none") ? o->models : NULL;
    if (!set_usd(c, "--budget-day", o->budget_day, &k->budget_day_usd) ||
        !set_usd(c, "--budget-month", o->budget_month, &k->budget_month_usd))
        return 2;
    for (const hl_opt *p = opts; p->name; p++) {
        if (!p->seen) continue;
        if (!strcmp(p->name, "--rpm")) k->rpm = (long long)o->rpm;
        if (!strcmp(p->name, "--tpm")) k->tpm = (long long)o->tpm;
    }
    if (o->local_only) k->cloud_allowed = false;
    if (o->cloud) {
        if (strcmp(o->cloud, "yes") && strcmp(o->cloud, "no"))
            return hl_opt_usage_error(c, "--cloud wants yes or no, not '%s'", o->cloud);
        k->cloud_allowed = !strcmp(o->cloud, "yes");
    }
    if (o->expires) {
        if (!strcmp(o->expires, "none")) {
            k->expires_at_ms = 0;
        } else if (hl_time_parse_ms(o->expires, strlen(o->expires), &k->expires_at_ms) != HL_OK) {
            return hl_opt_usage_error(c, "--expires wants a time such as 2027-01-01 or 2027-01-01T12:00Z, not '%s'",
                                      o->expires);
        }
    }
    char msg[200];
    const char *bad = hl_keys_check(k, msg, sizeof msg);
    if (bad) return hl_opt_usage_error(c, "%s", msg);
    return 0;
}

static void print_key_json(const hl_store_key *k, const char *secret) {
    json_t *j = hl_keys_to_json(k);
    if (j && secret) json_object_set_new(j, "key", json_string(secret));
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(j);
}

static void print_key_line(const hl_store_key *k) {
    char exp[32] = "never";
    if (k->expires_at_ms) hl_time_format_ms(k->expires_at_ms, exp, sizeof exp);
    printf("%-6lld %-20s %-12s %-16s %-5s %-8s %s%s\n", k->id, k->name, k->prefix, k->tenant ? k->tenant : k->name,
           k->cloud_allowed ? "yes" : "no", k->revoked ? "revoked" : "active", exp, "");
}

#define KEY_FIELD_OPTS(o)                                                                        \
    {.name = "--db", .kind = HL_OPT_STR, .target = &(o).db},                                     \
    {.name = "--name", .kind = HL_OPT_STR, .target = &(o).name},                                 \
    {.name = "--tenant", .kind = HL_OPT_STR, .target = &(o).tenant},                             \
    {.name = "--backends", .kind = HL_OPT_STR, .target = &(o).backends},                         \
    {.name = "--models", .kind = HL_OPT_STR, .target = &(o).models},                             \
    {.name = "--budget-day", .kind = HL_OPT_STR, .target = &(o).budget_day},                     \
    {.name = "--budget-month", .kind = HL_OPT_STR, .target = &(o).budget_month},                 \
    {.name = "--rpm", .kind = HL_OPT_DOUBLE, .target = &(o).rpm, .min = 0, .max = 1e9},          \
    {.name = "--tpm", .kind = HL_OPT_DOUBLE, .target = &(o).tpm, .min = 0, .max = 1e12},         \
    {.name = "--expires", .kind = HL_OPT_STR, .target = &(o).expires},                           \
    {.name = "--json", .kind = HL_OPT_FLAG, .target = &(o).json}

static int keys_create(int argc, char **argv) {
    hl_opt_cmd c = {"keys create", create_usage, stdout, stderr};
    key_opts o = {0};
    hl_opt opts[] = {KEY_FIELD_OPTS(o), {.name = "--local-only", .kind = HL_OPT_FLAG, .target = &o.local_only}, {0}};
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0] - 1, NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!o.db || !o.name) return hl_opt_usage_error(&c, "--db FILE|URI and --name NAME are required");
    char secret[HL_KEY_LEN + 1], prefix[HL_KEY_PREFIX_LEN + 1], hash[65];
    hl_store_key k = {.cloud_allowed = true, .budget_day_usd = -1, .budget_month_usd = -1};
    if ((rc = apply_opts(&c, &o, opts, &k))) return rc;
    if (hl_keys_generate(secret, prefix, hash) != HL_OK) {
        fprintf(stderr, "hybridllm keys create: no random bytes from the kernel\n");
        return 1;
    }
    k.prefix = prefix;
    k.hash = hash;
    k.created_at_ms = wall_ms();
    hl_store *s = open_keys_store(c.name, o.db);
    if (!s) return 1;
    rc = 0;
    if (hl_store_key_insert(s, &k, &k.id) != HL_OK) {
        fprintf(stderr, "hybridllm keys create: %s\n", hl_store_errmsg(s));
        rc = 1;
    } else if (o.json) {
        print_key_json(&k, secret);
    } else {
        printf("%s\n", secret);
        fprintf(stderr, "key %lld '%s' created; it is shown only now: store it safely\n", k.id, k.name);
    }
    explicit_bzero(secret, sizeof secret);
    hl_store_close(s);
    return rc;
}

typedef struct listing {
    json_t *arr; /* NULL: lines */
} listing;

static hl_err list_one(void *ctx, const hl_store_key *k) {
    listing *l = ctx;
    if (l->arr) json_array_append_new(l->arr, hl_keys_to_json(k));
    else print_key_line(k);
    return HL_OK;
}

static int keys_list(int argc, char **argv) {
    hl_opt_cmd c = {"keys list", list_usage, stdout, stderr};
    const char *db = NULL;
    bool json = false;
    hl_opt opts[] = {
        {.name = "--db", .kind = HL_OPT_STR, .target = &db},
        {.name = "--json", .kind = HL_OPT_FLAG, .target = &json},
    };
    int rc = hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0], NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!db) return hl_opt_usage_error(&c, "--db FILE|URI is required");
    hl_store *s = open_keys_store(c.name, db);
    if (!s) return 1;
    listing l = {json ? json_array() : NULL};
    if (!json) printf("%-6s %-20s %-12s %-16s %-5s %-8s %s\n", "ID", "NAME", "PREFIX", "TENANT", "CLOUD", "STATE", "EXPIRES");
    rc = 0;
    if (hl_store_keys_list(s, list_one, &l) != HL_OK) {
        fprintf(stderr, "hybridllm keys list: %s\n", hl_store_errmsg(s));
        rc = 1;
    } else if (json) {
        char *out = json_dumps(l.arr, JSON_INDENT(2));
        if (out) printf("%s\n", out);
        free(out);
    }
    json_decref(l.arr);
    hl_store_close(s);
    return rc;
}

/* update and revoke: read the key, change it, write it back. */
static int keys_change(int argc, char **argv, bool revoke) {
    hl_opt_cmd c = {revoke ? "keys revoke" : "keys update", revoke ? revoke_usage : update_usage, stdout, stderr};
    key_opts o = {0};
    hl_opt opts[] = {KEY_FIELD_OPTS(o),
                     {.name = "--id", .kind = HL_OPT_INT, .target = &o.id, .min = 1, .max = 2147483647},
                     {.name = "--cloud", .kind = HL_OPT_STR, .target = &o.cloud},
                     {0}};
    hl_opt revoke_opts[] = {
        {.name = "--db", .kind = HL_OPT_STR, .target = &o.db},
        {.name = "--id", .kind = HL_OPT_INT, .target = &o.id, .min = 1, .max = 2147483647},
    };
    int rc = revoke ? hl_opt_parse(&c, revoke_opts, 2, NULL, argc, argv)
                    : hl_opt_parse(&c, opts, sizeof opts / sizeof opts[0] - 1, NULL, argc, argv);
    if (rc != HL_OPT_GO) return rc;
    if (!o.db || !o.id) return hl_opt_usage_error(&c, "--db FILE|URI and --id N are required");
    hl_store *s = open_keys_store(c.name, o.db);
    if (!s) return 1;
    hl_key_record r;
    hl_err e = hl_keys_get(s, o.id, &r);
    if (e) {
        fprintf(stderr, "hybridllm %s: %s\n", c.name, e == HL_ERR_NOTFOUND ? "no key with this id" : hl_store_errmsg(s));
        hl_store_close(s);
        return 1;
    }
    rc = 0;
    if (revoke) r.k.revoked = true;
    else if ((rc = apply_opts(&c, &o, opts, &r.k))) {
        hl_store_close(s);
        return rc;
    }
    if (hl_store_key_update(s, &r.k) != HL_OK) {
        fprintf(stderr, "hybridllm %s: %s\n", c.name, hl_store_errmsg(s));
        rc = 1;
    } else if (o.json) {
        print_key_json(&r.k, NULL);
    } else {
        printf("key %lld '%s' %s\n", r.k.id, r.k.name, revoke ? "revoked" : "updated");
    }
    hl_store_close(s);
    return rc;
}

int hl_cli_keys(int argc, char **argv) {
    hl_opt_cmd c = {"keys", keys_usage, stdout, stderr};
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return hl_opt_help(&c);
    if (argc < 2) return hl_opt_usage_error(&c, "a subcommand is required");
    if (!strcmp(argv[1], "create")) return keys_create(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list")) return keys_list(argc - 1, argv + 1);
    if (!strcmp(argv[1], "update")) return keys_change(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "revoke")) return keys_change(argc - 1, argv + 1, true);
    return hl_opt_usage_error(&c, "unknown subcommand '%s'", argv[1]);
}
