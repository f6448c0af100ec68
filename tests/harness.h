/* SPDX-License-Identifier: MIT */
/*
 * Everything an integration test uses, in one include: the kvswapd under
 * test (daemon.h), test data and memfds (data.h), and the raw protocol
 * client (rawproto.h). Unit tests of one daemon module include tap.h and
 * that module's header instead.
 */
#ifndef KVSWAP_HARNESS_H
#define KVSWAP_HARNESS_H

#include "daemon.h"
#include "data.h"
#include "rawproto.h"

#endif
