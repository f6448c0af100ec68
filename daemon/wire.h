/* SPDX-License-Identifier: MIT */
#ifndef KVSWAP_WIRE_H
#define KVSWAP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "kvswap.pb-c.h"

typedef Kvswap__V1__Request Request;
typedef Kvswap__V1__Event Event;

/*
 * Unpacks one packet. Returns NULL when the bytes are not a Request (the
 * connection is then closed: its framing can no longer be trusted). Free
 * with wire_free().
 */
Request *wire_unpack(const uint8_t *buf, size_t len);
void wire_free(Request *req);

/*
 * Checks everything about a request that needs no daemon state: a known
 * body, key and metadata lengths, segment counts, offsets aligned, lengths
 * non-zero and without overflow, swap-in indexes unique, flags, list and
 * lookup sizes. Returns 0, or a negative errno with a message naming the
 * field in err.
 */
int wire_check(const Request *req, char *err, size_t errlen);

/*
 * Packs ev into buf. Returns its length, or -EMSGSIZE if it would not fit
 * in cap bytes.
 */
int wire_pack(const Event *ev, uint8_t *buf, size_t cap);

#endif
