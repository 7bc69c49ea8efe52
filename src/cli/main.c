/* hybridllm: the binary's entry point. The command line itself is a library (hl_cli.h) so
 * that tests run it in-process; usage errors exit 2, runtime failures 1. */
#include "hl_cli.h"

int main(int argc, char **argv) { return hl_cli_main(argc, argv); }
