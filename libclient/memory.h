/*
 * The client's memory: the guest side of its backend (backends/backend.h, struct
 * hbb_guest_ops) that the welcome chose (Welcome.memory: KVM pools or Xen grants), and the
 * services the library hands it. buffer.c and import.c call the ops through this struct.
 */
#ifndef HB_LIBCLIENT_MEMORY_H
#define HB_LIBCLIENT_MEMORY_H

#include "backends/backend.h"

struct hb_client;

struct hbl_memory {
	const struct hbb_guest_ops *ops; /* NULL until the welcome */
	void *state;
	struct hbb_guest_services svc;
};

/* Opens the backend the welcome names, attaching pools the way mode says. -EPROTO for a
 * memory model this library does not know. */
int hbl_memory_open(struct hb_client *c, const Welcome *w, enum hbb_attach_mode mode);
/* Gives everything back without talking to the daemon. */
void hbl_memory_close(struct hb_client *c);

#endif
