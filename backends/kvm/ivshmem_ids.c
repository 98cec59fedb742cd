/*
 * Peer ids of the ivshmem servers (see struct hbk_ivshmem_ids), and why an id that left is not
 * given out again at once.
 *
 * QEMU 7.2 frees a peer's eventfd array when it hears that the peer left, without forgetting
 * the pointer (hw/misc/ivshmem.c, close_peer_eventfds): when it later hears that id join, it
 * writes the new eventfds into freed memory, and when that peer leaves too, it frees the array
 * a second time and aborts. So an id waits, after its peer left, until every peer that heard
 * it leave has gone as well; a QEMU that never heard of an id takes it as new. A host
 * session's doorbells are parked rather than gone when their session ends (ivshmem.c), so host
 * processes coming and going do not make ids wait; a parked id has a wait record, which a
 * restarted daemon (that forgot the parked peer) turns into a wait.
 *
 * The waits go into the restart state (a record each), so that a restarted daemon keeps them:
 * it waits then for every peer it took back in that group, since it no longer knows which of
 * them heard.
 */
#include <stdlib.h>

#include "backends/kvm/ivshmem.h"

#define WAIT_KEY(id) ((2ull << 32) | (id)) /* a waiting id's restart record */

static void id_free(struct hbk_ivshmem_ids *ids, uint16_t id)
{
	ids->used[id / 64] &= ~(1ull << (id % 64));
}

uint16_t hbk_ivshmem_take_id(struct hbk_ivshmem_ids *ids)
{
	/* The lowest free: small ids, since QEMU grows a per-peer array up to the largest id it
	 * sees; a waiting id is not free. */
	for (uint32_t id = 1; id <= HBK_IVSHMEM_MAX_ID; id++) {
		if (!(ids->used[id / 64] & (1ull << (id % 64)))) {
			ids->used[id / 64] |= 1ull << (id % 64);
			return (uint16_t)id;
		}
	}
	return 0;
}

static void wait_record(const struct hbk_ivshmem_server *srv, uint16_t id, bool keep)
{
	const struct hbb_host_services *svc = srv->svc;
	uint8_t group[4] = {(uint8_t)srv->group, (uint8_t)(srv->group >> 8),
			    (uint8_t)(srv->group >> 16), (uint8_t)(srv->group >> 24)};

	if (!svc || svc->version < 2)
		return;
	if (keep)
		svc->state_put(svc->ctx, WAIT_KEY(id), group, sizeof(group));
	else
		svc->state_drop(svc->ctx, WAIT_KEY(id));
}

/* Peers of srv now: the ones that hear a departure (QEMUs among them). */
static unsigned listeners(const struct hbk_ivshmem_server *srv)
{
	return srv->n_peers;
}

static int wait_add(struct hbk_ivshmem_server *srv, uint16_t id, unsigned told)
{
	struct hbk_ivshmem_ids *ids = srv->ids;

	if (ids->n_waits == ids->cap_waits) {
		size_t cap = ids->cap_waits ? 2 * ids->cap_waits : 16;
		struct hbk_ivshmem_wait *v = realloc(ids->waits, cap * sizeof(*v));

		if (!v)
			return -1;
		ids->waits = v;
		ids->cap_waits = cap;
	}
	ids->waits[ids->n_waits++] = (struct hbk_ivshmem_wait){
	    .id = id, .group = srv->group, .mark = ids->epoch + 1, .told = told};
	wait_record(srv, id, true);
	return 0;
}

void hbk_ivshmem_joined(struct hbk_ivshmem_peer *p)
{
	p->epoch = ++p->srv->ids->epoch;
}

void hbk_ivshmem_unlisten(struct hbk_ivshmem_peer *p)
{
	struct hbk_ivshmem_server *srv = p->srv;
	struct hbk_ivshmem_ids *ids = srv->ids;

	if (!ids)
		return;
	for (size_t i = 0; i < ids->n_waits;) {
		struct hbk_ivshmem_wait *w = &ids->waits[i];

		if (w->group != srv->group || p->epoch >= w->mark || --w->told) {
			i++;
			continue;
		}
		id_free(ids, w->id);
		wait_record(srv, w->id, false);
		*w = ids->waits[--ids->n_waits];
	}
}

void hbk_ivshmem_release_id(struct hbk_ivshmem_peer *p)
{
	struct hbk_ivshmem_server *srv = p->srv;
	unsigned told = listeners(srv);

	if (!srv->ids || !p->id)
		return;
	if (!told || wait_add(srv, p->id, told) < 0) {
		id_free(srv->ids, p->id);
		wait_record(srv, p->id, false);
	}
}

void hbk_ivshmem_left(struct hbk_ivshmem_peer *p)
{
	hbk_ivshmem_unlisten(p);
	hbk_ivshmem_release_id(p);
}

void hbk_ivshmem_park_record(struct hbk_ivshmem_peer *p, bool parked)
{
	wait_record(p->srv, p->id, parked);
}

int hbk_ivshmem_wait_restore(struct hbk_ivshmem_server *srv, uint16_t id)
{
	unsigned told = listeners(srv);

	if (id == 0)
		return -1;
	/* Held by a peer taken back (a crash between unparking it and dropping the record): the
	 * record goes. */
	if (srv->ids->used[id / 64] & (1ull << (id % 64))) {
		for (size_t i = 0; i < srv->ids->n_waits; i++)
			if (srv->ids->waits[i].id == id)
				return 0;
		wait_record(srv, id, false);
		return 0;
	}
	if (!told) {
		wait_record(srv, id, false);
		return 0;
	}
	srv->ids->used[id / 64] |= 1ull << (id % 64);
	return wait_add(srv, id, told);
}

void hbk_ivshmem_waits_save(const struct hbk_ivshmem_ids *ids,
			    void (*put)(void *ctx, uint64_t key, const void *data, size_t len),
			    void *ctx)
{
	for (size_t i = 0; i < ids->n_waits; i++) {
		uint32_t g = ids->waits[i].group;
		uint8_t data[4] = {(uint8_t)g, (uint8_t)(g >> 8), (uint8_t)(g >> 16),
				   (uint8_t)(g >> 24)};

		put(ctx, WAIT_KEY(ids->waits[i].id), data, sizeof(data));
	}
}

void hbk_ivshmem_parked_save(const struct hbk_ivshmem_server *srv,
			     void (*put)(void *ctx, uint64_t key, const void *data, size_t len),
			     void *ctx)
{
	const struct hbk_ivshmem_peer *p;
	uint32_t g = srv->group;
	uint8_t data[4] = {(uint8_t)g, (uint8_t)(g >> 8), (uint8_t)(g >> 16), (uint8_t)(g >> 24)};

	hbc_list_for_each_safe(p, &srv->parked, struct hbk_ivshmem_peer, link)
		put(ctx, WAIT_KEY(p->id), data, sizeof(data));
}

void hbk_ivshmem_ids_free(struct hbk_ivshmem_ids *ids)
{
	free(ids->waits);
	ids->waits = NULL;
	ids->n_waits = ids->cap_waits = 0;
}
