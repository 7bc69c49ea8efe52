/* hl_opt: the one option parser of every `hybridllm` command.
 *
 * A command describes its options as a table (name, short letter, kind, target, bounds) and
 * hl_opt_parse() walks argv against it, so that every command treats --help, unknown
 * options, missing values and bad numbers alike:
 *
 *   --help, -h         the command's usage on its out stream; exit status 0
 *   a usage error      "hybridllm CMD: what is wrong", then the usage, on its err stream;
 *                      exit status 2
 *
 * "--name=value" is the same as "--name value"; "--" ends the options. A value that starts
 * with "--" is taken for a forgotten value ("--config --json" is an error, not a file named
 * "--json"). Values are borrowed from argv, never copied.
 *
 * It lives in core (not in src/cli) because the engine's `run` and `gguf` commands use it
 * too. */
#ifndef HL_OPT_H
#define HL_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum hl_opt_kind {
    HL_OPT_FLAG,   /* bool *: set true; takes no value */
    HL_OPT_STR,    /* const char **: the value (the last one given wins) */
    HL_OPT_LIST,   /* hl_opt_list *: each value appended; repeatable up to its max */
    HL_OPT_INT,    /* int *: a decimal integer within [min, max] */
    HL_OPT_U64,    /* uint64_t *: a decimal integer without a sign */
    HL_OPT_DOUBLE, /* double *: a finite number within [min, max] */
    HL_OPT_FLOAT,  /* float *: as HL_OPT_DOUBLE */
    HL_OPT_CHOICE, /* int *: the value of the hl_opt_choice whose name is given */
    HL_OPT_FN,     /* fn(target, value) parses the value; false refuses it */
} hl_opt_kind;

/* Flags of an hl_opt. */
#define HL_OPT_SUFFIX 1u    /* DOUBLE: K, M, G multiply by 1e3, 1e6, 1e9 */
#define HL_OPT_ABOVE_MIN 2u /* INT, DOUBLE, FLOAT: min itself is refused (x > min) */

/* One name of a choice; a table of them ends with {NULL, 0}. */
typedef struct hl_opt_choice {
    const char *name;
    int value;
} hl_opt_choice;

/* A repeatable option's values, or the positional arguments: v has room for max. */
typedef struct hl_opt_list {
    const char **v;
    size_t n, max;
} hl_opt_list;

typedef struct hl_opt {
    const char *name;     /* "--config"; NULL: only the letter */
    char letter;          /* 'p' for -p, or 0 */
    hl_opt_kind kind;
    void *target;         /* what the kind says; borrowed */
    const char *want;     /* the value wanted, for messages ("a number > 0"); NULL: from the kind */
    double min, max;      /* numbers' bounds, inclusive; max 0 means no upper bound */
    unsigned flags;
    const hl_opt_choice *choices;              /* HL_OPT_CHOICE */
    bool (*fn)(void *target, const char *value); /* HL_OPT_FN */
    unsigned seen;        /* set by hl_opt_parse: how many times it was given */
} hl_opt;

/* The command being parsed: messages start "hybridllm NAME: ". Borrowed. */
typedef struct hl_opt_cmd {
    const char *name;     /* "report", "ledger index" */
    const char *usage;    /* the whole usage text, printed for --help and after a usage error */
    FILE *out, *err;
} hl_opt_cmd;

/* hl_opt_parse's answer when the command should go on and run. */
#define HL_OPT_GO (-1)

/* Parses argv[1..argc) (argv[0] is the command's name) into opts[0..n_opts), counting each
 * option in its seen. Arguments that are not options go to positional (NULL: none are
 * accepted). Returns HL_OPT_GO, or the exit status to return at once: 0 after printing the
 * usage for --help, 2 after a usage error (message and usage printed on c->err). */
int hl_opt_parse(const hl_opt_cmd *c, hl_opt *opts, size_t n_opts, hl_opt_list *positional, int argc,
                 char **argv);

/* Prints "hybridllm NAME: message" and the usage on c->err; returns 2, the usage error's
 * exit status. */
int hl_opt_usage_error(const hl_opt_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A number, all of s, finite; with suffixes, K, M, G multiply by 1e3, 1e6, 1e9. False (and
 * *out untouched) when s is anything else. */
bool hl_opt_number(const char *s, bool suffixes, double *out);

/* Prints the usage on c->out; returns 0 (1 when it cannot be written). */
int hl_opt_help(const hl_opt_cmd *c);

#endif
