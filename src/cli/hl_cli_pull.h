/* hl_cli_pull: `hybridllm pull` and `hybridllm models` (see hl_cli_pull.c). Each takes main()'s
 * argc/argv shifted so that argv[0] is the command's name; returns the exit status: 0 done
 * (or --help), 1 a runtime failure, 2 a usage error. */
#ifndef HL_CLI_PULL_H
#define HL_CLI_PULL_H

int hl_cli_pull(int argc, char **argv);
int hl_cli_models(int argc, char **argv);

#endif
