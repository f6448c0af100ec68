/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_BENCH_H
#define KVSWAP_BENCH_H

#include <stdint.h>

/*
 * kvswapctl bench: drives a running kvswapd with synthetic KV-cache
 * traffic and reports throughput, per-segment latency and the daemon's CPU
 * time per GiB moved (client/bench.c).
 *
 * Takes kvswapctl's whole command line, because its options are its own:
 * argv[0] is the program, then the word "bench" and the options in any
 * order (--socket included). Returns the process exit status: 0 on
 * success, 1 when something failed or a transfer reported an error, 2 on
 * a usage error.
 */
int bench_main(int argc, char **argv);

/*
 * Shared by kvswapctl's commands (client/kvswapctl.c): a size is decimal
 * digits with an optional K, M, G or T suffix (powers of 1024, either
 * case). Returns 0, -EINVAL or -ERANGE.
 */
int ctl_parse_size(const char *s, uint64_t *ret);

#endif
