/* hl_cli: the `hybridllm` command line as a library, so that tests run it in-process.
 *
 * One table of commands (hl_cli.c) drives dispatch, `hybridllm help [CMD]`, `--help` and
 * `--version`; each command parses its options with hl_opt (hl_opt.h). The conventions:
 *
 *   hybridllm --help | help          the list of commands, on stdout; exit 0
 *   hybridllm help CMD | CMD --help  that command's usage, on stdout; exit 0
 *   hybridllm --version | version    "hybridllm VERSION" on stdout; exit 0
 *   a usage error                    the message and the usage on stderr; exit 2
 *   a runtime failure                a message on stderr; exit 1
 *
 * Every command's entry point takes main()'s arguments from the command's name on (argv[0]
 * is "serve", "report"...) and returns that exit status. */
#ifndef HL_CLI_H
#define HL_CLI_H

#define HL_VERSION "0.1.0"

/* main(): argv[0] is the program's name. */
int hl_cli_main(int argc, char **argv);

/* hybridllm serve --config FILE: runs the gateway until SIGINT/SIGTERM (hl_cli_serve.c). */
int hl_cli_serve(int argc, char **argv);
/* hybridllm route --explain --config FILE: a routing decision for a request on stdin. */
int hl_cli_route(int argc, char **argv);
/* hybridllm eval DATASET --backends A,B --config FILE: a dataset through backends (hl_cli_eval.c). */
int hl_cli_eval(int argc, char **argv);

#endif
