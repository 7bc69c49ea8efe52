/* hl_cli_calibrate: the `hybridllm calibrate` command (hl_calibrate). Takes main()'s arguments
 * from the command name on (argv[0] is "calibrate") and returns the exit status: 0 when at
 * least one task type got a threshold (or --help was printed), 1 when none had enough samples
 * or on a runtime failure (unreadable ledger or config, unwritable --write-config file), 2 on a
 * usage error, after printing the usage to stderr. */
#ifndef HL_CLI_CALIBRATE_H
#define HL_CLI_CALIBRATE_H

#include <stdio.h>

/* On stdout and stderr. */
int hl_cli_calibrate(int argc, char **argv);
/* The same on the streams given (borrowed): what tests run in-process. */
int hl_cli_calibrate_io(int argc, char **argv, FILE *out, FILE *err);

#endif
