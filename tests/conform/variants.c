/*
 * The config variants of the conformance daemon (tests/conform/table.h): each is text appended
 * to a target's topology, for the cases that need a limit of their own. A target runs the
 * default table first, then each variant's cases on a daemon of topology + that text
 * (docs/TESTING.md, "Config variants"). Every variant is one more boot of the QEMU guests:
 * a case joins one that fits it before a new one is made.
 */
#include <stddef.h>
#include <string.h>

#include "tests/conform/table.h"

static const struct cf_variant variants[] = {
    /* Small per-domain quotas and queues (cases_limits.c). */
    {"limits", "[limits]\n"
	       "pages_per_domain = 100\n"
	       "exports_per_domain = 4\n"
	       "imports_per_domain = 3\n"
	       "timelines_per_domain = 4\n"
	       "fence_waits_per_domain = 8\n"
	       "event_queue = 16\n"
	       "meta_max = 4096\n"},
    /* A deep event queue: many events while the peer is busy (client_shared_by_threads); and
     * a completion queue that one round of fence opens fills once a reader's transport is
     * full (slow_client_dropped_not_waited_for). */
    {"queues", "[limits]\nevent_queue = 4096\nfence_waits_per_domain = 1000\n"},
    /* The last section of the KVM topologies is [group vv] (vm1, vm2): one member may fill
     * all of its pool (alloc_enospc; no pools on Xen). */
    {"share100", "share = 100%\n"},
};

const struct cf_variant *cf_variant_at(unsigned i)
{
	return i < sizeof(variants) / sizeof(variants[0]) ? &variants[i] : NULL;
}

const struct cf_variant *cf_variant_find(const char *name)
{
	for (unsigned i = 0; name && i < sizeof(variants) / sizeof(variants[0]); i++) {
		if (strcmp(variants[i].name, name) == 0)
			return &variants[i];
	}
	return NULL;
}
