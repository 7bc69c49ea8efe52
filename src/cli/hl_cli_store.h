/* hl_cli_store: the subcommands that read the cost ledger through a store.
 *
 *   hybridllm ledger index --journal FILE --db FILE|URI
 *   hybridllm report --db FILE|URI [--journal FILE] [--from ISO] [--to ISO]
 *                    [--group-by source|backend|model|task_type|route_reason|tenant|day|none]
 *                    [--format table|json|csv]
 *                    [--cloud-model NAME --config FILE | --cloud-price IN/OUT[/CACHED]]
 *
 * A journal named on the command line must exist. `report` without --journal reads an
 * existing hybridllm ledger only (hl_store_open_existing): it creates no file and refuses
 * another program's SQLite database without changing it.
 *
 * Each takes main()'s argc/argv shifted so that argv[0] is the command's name, and returns
 * the exit status: 0 done (or --help printed), 1 a runtime failure, 2 a usage error (usage
 * printed on stderr). */
#ifndef HL_CLI_STORE_H
#define HL_CLI_STORE_H

int hl_cli_store_ledger(int argc, char **argv);
int hl_cli_store_report(int argc, char **argv);

#endif
