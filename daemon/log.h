/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_LOG_H
#define KVSWAP_LOG_H

#include <syslog.h>

/*
 * One line per event an operator needs, to stderr, with the "<N>" priority
 * prefix that journald and systemd understand. Nothing per I/O.
 */
extern int log_max_level;

int log_parse_level(const char *s);
void log_msg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
