/* SPDX-License-Identifier: MIT */
/*
 * kvswapctl: command-line client for kvswapd. This file is the command
 * line: the options, the command table, the help and the dispatch.
 *
 * Built on libkvswap's public API (kvswap.h) and the protocol's constants
 * (kvswap-protocol.h). Each command is one *_main() function in the table
 * below, in the manner of wireguard-tools' wg.c, defined in the file of
 * its group: entry.c (put, get, rm), query.c (ls, lookup), stat.c (stat)
 * and bench*.c (bench). ctl.h says what they return.
 *
 * Keys are the bytes of the argv strings. When printed for humans, printable
 * ASCII is shown as is, a backslash as "\\" and every other byte as "\xNN".
 * In JSON a key is a string whose code points 0-255 are the key's bytes
 * (control characters, DEL and bytes >= 0x80 appear as "\u00NN"): encode
 * the string as Latin-1 to get the bytes back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "kvswap-protocol.h"


/* Options, as bits so that each command can say which ones it takes. */
enum {
	OPT_SOCKET = 1U << 0,
	OPT_JSON = 1U << 1,
	OPT_SEGMENT_SIZE = 1U << 2,
	OPT_HELP = 1U << 3,
	OPT_VERSION = 1U << 4,
	OPT_PIN = 1U << 5,
	OPT_DURABLE = 1U << 6,
	OPT_CACHE = 1U << 7,
	OPT_LEASE = 1U << 8,
	OPT_PROMETHEUS = 1U << 9,
	OPT_TENANT = 1U << 10,
};

/* --- command table and main ----------------------------------------------- */

static int help_main(struct ctl *c);

static const struct command commands[] = {
	{ "put", put_main, "swap a file out under KEY",
	  "KEY FILE [--segment-size SIZE] [--pin] [--durable|--cache]",
	  OPT_SEGMENT_SIZE | OPT_PIN | OPT_DURABLE | OPT_CACHE, 2, 2 },
	{ "get", get_main, "swap KEY in and write it to FILE",
	  "KEY FILE", 0, 2, 2 },
	{ "rm", rm_main, "delete stored keys",
	  "KEY... [--tenant NAME]", OPT_TENANT, 1, -1 },
	{ "ls", ls_main, "list the stored keys",
	  "[--json] [--tenant NAME]", OPT_JSON | OPT_TENANT, 0, 0 },
	{ "lookup", lookup_main, "tell which keys are stored (prefix lookup)",
	  "KEY... [--lease MS] [--json]", OPT_JSON | OPT_LEASE, 1, -1 },
	{ "stat", stat_main, "show the daemon's statistics",
	  "[--json|--prometheus] [--tenant NAME]",
	  OPT_JSON | OPT_PROMETHEUS | OPT_TENANT, 0, 0 },
	/* bench parses its own options: main() hands it the whole line. */
	{ "bench", NULL, "measure throughput and latency with synthetic traffic",
	  "[--op in|out|mixed] [--segment-size SIZE] [--clients C] [--depth D] "
	  "[--json] ...", 0, 0, 0 },
	{ "help", help_main, "show this help, or a command's",
	  "[COMMAND]", 0, 0, 1 },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: " PROG " [--socket PATH] COMMAND [ARGS...]\n"
		   "\n"
		   "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-7s %s\n", commands[i].name,
			commands[i].description);
	fprintf(f, "\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  " PROG " %s %s\n", commands[i].name,
			commands[i].synopsis);
	fprintf(f,
		"\n"
		"Options (before or after the command's arguments):\n"
		"  --socket PATH        the daemon's socket (default: $KVSWAP_SOCKET,\n"
		"                       else " KVSWAP_DEFAULT_SOCKET ")\n"
		"  --segment-size SIZE  put: segment size, a multiple of the daemon's\n"
		"                       alignment; K, M, G, T suffixes are powers of\n"
		"                       1024 (default: 16M)\n"
		"  --pin                put: never evict this entry\n"
		"  --durable, --cache   put: acknowledge once on stable storage, or\n"
		"                       once written (default: the daemon's choice)\n"
		"  --lease MS           lookup: keep the present keys from eviction\n"
		"                       for MS milliseconds (at most 60000)\n"
		"  --json               ls, lookup, stat: print JSON\n"
		"  --prometheus         stat: print the Prometheus text format\n"
		"  --tenant NAME        ls, rm, stat: another tenant's entries and\n"
		"                       figures (admins only; default: your own)\n"
		"  -h, --help           show this help\n"
		"  --version            show the version\n"
		"  --                   end of options (for keys starting with '-')\n"
		"\n"
		"FILE '-' is stdin for put and stdout for get. Keys are the bytes of\n"
		"the arguments; they are printed with non-printable bytes as \\xNN and\n"
		"in JSON as strings whose code points 0-255 are the key's bytes.\n"
		"lookup exits 0 whether or not the keys are present. Exit status: 0\n"
		"on success, 1 on failure, 2 on a usage error.\n");
}

static void command_usage(FILE *f, const struct command *cmd)
{
	fprintf(f, "Usage: " PROG " [--socket PATH] %s %s\n%s.\n", cmd->name,
		cmd->synopsis, cmd->description);
}

static int help_main(struct ctl *c)
{
	const struct command *cmd;

	if (!c->nargs) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	cmd = command_find(c->args[0]);
	if (!cmd)
		return usage_error(c, "unknown command '%s'", c->args[0]);
	command_usage(stdout, cmd);
	return EXIT_SUCCESS;
}

static const struct {
	const char *name;
	unsigned int flag;
	bool has_arg;
} option_defs[] = {
	{ "socket", OPT_SOCKET, true },
	{ "json", OPT_JSON, false },
	{ "segment-size", OPT_SEGMENT_SIZE, true },
	{ "pin", OPT_PIN, false },
	{ "durable", OPT_DURABLE, false },
	{ "cache", OPT_CACHE, false },
	{ "lease", OPT_LEASE, true },
	{ "prometheus", OPT_PROMETHEUS, false },
	{ "tenant", OPT_TENANT, true },
	{ "help", OPT_HELP, false },
	{ "version", OPT_VERSION, false },
};

#define NOPTIONS (sizeof(option_defs) / sizeof(option_defs[0]))

/*
 * The command word: the first argument that is neither an option nor an
 * option's value, as parse_args() will see it. NULL if there is none.
 */
static const char *command_word(int argc, char **argv)
{
	const char *a, *name;
	size_t j, len;
	int i;

	for (i = 1; i < argc; i++) {
		a = argv[i];
		if (!strcmp(a, "--"))
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-' || !a[1])
			return a;
		if (a[1] != '-' || strchr(a, '='))
			continue;
		name = a + 2;
		len = strlen(name);
		for (j = 0; j < NOPTIONS; j++)
			if (option_defs[j].has_arg &&
			    strlen(option_defs[j].name) == len &&
			    !strncmp(option_defs[j].name, name, len))
				i++;
	}
	return NULL;
}

/*
 * Parses options anywhere on the command line, moving the positional
 * arguments (the command and its arguments) to the front of argv. Returns
 * the number of positional arguments, or -1 after a usage error.
 */
static int parse_args(struct ctl *c, int argc, char **argv,
		      unsigned int *ret_seen)
{
	unsigned int seen = 0;
	bool options_done = false;
	int npos = 0, i;
	size_t j;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *value;
		size_t name_len;

		if (options_done || a[0] != '-' || !a[1]) {
			argv[npos++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			options_done = true;
			continue;
		}
		if (!strcmp(a, "-h")) {
			seen |= OPT_HELP;
			continue;
		}
		if (a[1] != '-') {
			usage_error(NULL, "unknown option '%s'", a);
			return -1;
		}
		name = a + 2;
		eq = strchr(name, '=');
		name_len = eq ? (size_t)(eq - name) : strlen(name);
		for (j = 0; j < NOPTIONS; j++)
			if (strlen(option_defs[j].name) == name_len &&
			    !strncmp(option_defs[j].name, name, name_len))
				break;
		if (j == NOPTIONS) {
			usage_error(NULL, "unknown option '%s'", a);
			return -1;
		}
		if (!option_defs[j].has_arg && eq) {
			usage_error(NULL, "option '--%s' takes no value",
				    option_defs[j].name);
			return -1;
		}
		value = NULL;
		if (option_defs[j].has_arg) {
			if (eq) {
				value = eq + 1;
			} else if (i + 1 < argc) {
				value = argv[++i];
			} else {
				usage_error(NULL, "option '--%s' needs a value",
					    option_defs[j].name);
				return -1;
			}
		}
		seen |= option_defs[j].flag;
		switch (option_defs[j].flag) {
		case OPT_SOCKET:
			c->socket = value;
			break;
		case OPT_JSON:
			c->json = true;
			break;
		case OPT_SEGMENT_SIZE:
			c->segment_size = value;
			break;
		case OPT_PIN:
			c->put_flags |= KVSWAP_PINNED;
			break;
		case OPT_DURABLE:
			c->put_flags |= KVSWAP_DURABLE;
			break;
		case OPT_CACHE:
			c->put_flags |= KVSWAP_CACHE;
			break;
		case OPT_LEASE:
			c->lease = value;
			break;
		case OPT_PROMETHEUS:
			c->prometheus = true;
			break;
		case OPT_TENANT:
			c->tenant = value;
			break;
		}
	}
	*ret_seen = seen;
	return npos;
}

int main(int argc, char *argv[])
{
	const unsigned int global = OPT_SOCKET | OPT_HELP | OPT_VERSION;
	struct ctl c = { 0 };
	const char *cmd_name;
	unsigned int seen, extra;
	size_t j;
	int npos, status;

	cmd_name = command_word(argc, argv);
	if (cmd_name && !strcmp(cmd_name, "bench"))
		return bench_main(argc, argv);
	npos = parse_args(&c, argc, argv, &seen);
	if (npos < 0)
		return 2;
	if (seen & OPT_VERSION) {
		printf(PROG " " KVSWAP_VERSION "\n");
		return EXIT_SUCCESS;
	}
	if (!npos) {
		if (seen & OPT_HELP) {
			usage(stdout);
			return EXIT_SUCCESS;
		}
		usage(stderr);
		return 2;
	}
	c.cmd = command_find(argv[0]);
	if (!c.cmd) {
		usage_error(NULL, "unknown command '%s'", argv[0]);
		return 2;
	}
	if (seen & OPT_HELP) {
		command_usage(stdout, c.cmd);
		return EXIT_SUCCESS;
	}
	extra = seen & ~(global | c.cmd->options);
	for (j = 0; extra && j < NOPTIONS; j++)
		if (extra & option_defs[j].flag)
			return usage_error(&c, "option '--%s' does not apply here",
					   option_defs[j].name);
	c.args = argv + 1;
	c.nargs = npos - 1;
	if (c.nargs < c.cmd->min_args ||
	    (c.cmd->max_args >= 0 && c.nargs > c.cmd->max_args)) {
		command_usage(stderr, c.cmd);
		return 2;
	}

	/* bench never gets here: command_word() found it first. */
	if (!c.cmd->run)
		return usage_error(&c, "put the options after 'bench'");
	status = c.cmd->run(&c);

	errno = 0;
	if (fflush(stdout) || ferror(stdout)) {
		fail_sys(&c, errno ? -errno : -EIO, "write to stdout");
		return EXIT_FAILURE;
	}
	return status;
}
