/* hl_engine_cli: the engine's command-line entry points, called by the gateway's main().
 *
 * Both take the arguments after the program name, starting with the subcommand itself
 * (main() calls them with argc - 1, argv + 1):
 *   hybridllm run MODEL.gguf -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]
 *                 [--min-p P] [--repeat-penalty R] [--threads T] [--ctx N] [--seed S]
 *       prints the continuation as it is generated, then prefill and decode tokens/s on
 *       stderr.
 *   hybridllm gguf info MODEL.gguf
 *       prints the metadata and the tensor table.
 * They return the process exit status: 0 success, 1 failure (the message is on stderr),
 * 2 usage error (the usage is on stderr). */
#ifndef HL_ENGINE_CLI_H
#define HL_ENGINE_CLI_H

int hl_engine_cli_run(int argc, char **argv);
int hl_engine_cli_gguf(int argc, char **argv);

#endif
