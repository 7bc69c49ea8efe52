/* hl_cli_store: the subcommands that read the cost ledger through a store.
 *
 *   hybridllm ledger index --journal FILE --db FILE
 *   hybridllm report --db FILE [--journal FILE] [--from ISO] [--to ISO]
 *                    [--group-by source|backend|model|task_type|route_reason|tenant|day|none]
 *                    [--format table|json|csv]
 *                    [--cloud-model NAME --config FILE | --cloud-price IN/OUT[/CACHED]]
 *
 * Each takes main()'s argc/argv shifted so that argv[0] is the command's name, and returns
 * the exit status: 0 done, 1 a runtime failure, 2 a usage error (usage printed). */
#ifndef HL_CLI_STORE_H
#define HL_CLI_STORE_H

int hl_cli_store_ledger(int argc, char **argv);
int hl_cli_store_report(int argc, char **argv);
/* The lines main()'s usage lists for these commands. */
extern const char hl_cli_store_usage[];

#endif
