/* hl_cli_report: the `hybridllm advise` and `hybridllm simulate` subcommands (hl_advise,
 * hl_simulate). Both take main()'s arguments from the command name on (argv[0] is "advise"
 * or "simulate") and return the exit status: 0 done (or --help printed), 1 a runtime failure
 * (unreadable file, bad config, unpriced model), 2 a usage error, after printing the usage
 * to stderr. */
#ifndef HL_CLI_REPORT_H
#define HL_CLI_REPORT_H

#include <stdio.h>

/* On stdout and stderr. */
int hl_cli_advise(int argc, char **argv);
int hl_cli_simulate(int argc, char **argv);
/* The same on the streams given (borrowed): what tests run in-process. */
int hl_cli_advise_io(int argc, char **argv, FILE *out, FILE *err);
int hl_cli_simulate_io(int argc, char **argv, FILE *out, FILE *err);

#endif
