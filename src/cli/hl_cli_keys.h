/* hl_cli_keys: `hybridllm keys create|list|update|revoke` (see hl_cli_keys.c). Takes main()'s
 * argc/argv shifted so that argv[0] is "keys"; returns the exit status: 0 done (or --help),
 * 1 a runtime failure, 2 a usage error. */
#ifndef HL_CLI_KEYS_H
#define HL_CLI_KEYS_H

int hl_cli_keys(int argc, char **argv);

#endif
