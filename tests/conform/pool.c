/*
 * A group's pool as a member maps it (conform.h, cf_pool_open), for the cases of a hostile
 * group member. The group comes from the daemon's Welcome to a raw session of the domain: the
 * one with this domain and the peer among its members. A KVM guest maps its device's BAR2
 * (cf_pool_guest, tests/kvm/conform.c); an emulated VM connects to the group's ivshmem socket
 * the Welcome names, as its QEMU would, and maps the pool memfd it is given. A Xen domain's
 * Welcome lists no groups: grants, no pools.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/conform/raw.h"
#include "tests/raw_wire.h"

/* The highest ivshmem peer id (QEMU's IVSHMEM_MAX_PEERS). */
#define CF_IVSHMEM_MAX_PEER 65535

static int (*guest_bar)(uint32_t group, uint64_t size, uint32_t *peer_id);

void cf_pool_guest(int (*bar)(uint32_t group, uint64_t size, uint32_t *peer_id))
{
	guest_bar = bar;
}

struct group {
	uint32_t id;
	uint64_t size;
	char path[108]; /* its ivshmem socket for this domain, "" if none */
};

static bool has_member(const GroupInfo *g, uint32_t domain)
{
	for (size_t i = 0; i < g->n_members; i++)
		if (g->members[i] == domain)
			return true;
	return false;
}

/* The group this domain shares with peer, as the daemon's Welcome says: 0 or -ENODEV. */
static int find_group(uint32_t peer, struct group *out)
{
	struct cf_raw r;
	ServerMsg *w;
	int err = -ENODEV;

	cf_raw_start(&r);
	w = cf_raw_hello(&r, HBP_ROLE_CLIENT);
	for (size_t i = 0; i < w->welcome->n_groups && err; i++) {
		const GroupInfo *g = w->welcome->groups[i];

		if (!has_member(g, cf_domain()) || !has_member(g, peer))
			continue;
		if (strlen(g->ivshmem_path) >= sizeof(out->path))
			cf_fail(__FILE__, __LINE__, "ivshmem path too long: %s", g->ivshmem_path);
		out->id = g->id;
		out->size = g->pool_size;
		strcpy(out->path, g->ivshmem_path);
		err = 0;
	}
	server_msg__free_unpacked(w, NULL);
	cf_raw_stop(&r);
	return err;
}

/* One 8-byte little-endian message of the ivshmem server, with its fd (-1 if none). */
static void ivsh_recv(int sock, int64_t *val, int *fd)
{
	uint8_t b[8];
	uint64_t v = 0;
	int st;

	*fd = -1;
	st = hbw_recv_full(sock, b, sizeof(b), CF_WAIT_MS, fd);
	if (st != 1)
		cf_fail(__FILE__, __LINE__, "the ivshmem server %s",
			st == HBW_TIMEOUT ? "said nothing in time" : "hung up");
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	*val = (int64_t)v;
}

/* Joins the group's ivshmem socket as an emulated VM's QEMU: the version, our peer id, then
 * the pool (-1 with its fd), peers' ids and eventfds maybe before it. The rest of the
 * greeting (eventfds) is left in the socket. Returns the pool's fd. */
static int ivsh_join(struct cf_pool *p, const char *path)
{
	int64_t val;
	int fd;

	p->fd = hbw_unix_connect(path);
	if (p->fd < 0)
		cf_fail(__FILE__, __LINE__, "connect %s: %s", path, strerror(errno));
	ivsh_recv(p->fd, &val, &fd);
	CHECK_EQ(val, 0);
	CHECK_EQ(fd, -1);
	ivsh_recv(p->fd, &val, &fd);
	CHECK(val >= 1 && val <= CF_IVSHMEM_MAX_PEER && fd < 0);
	p->peer_id = (uint32_t)val;
	for (;;) {
		ivsh_recv(p->fd, &val, &fd);
		if (val == -1 && fd >= 0)
			return fd;
		CHECK(val >= 0 && val <= CF_IVSHMEM_MAX_PEER);
		if (fd >= 0)
			close(fd);
	}
}

int cf_pool_open(uint32_t peer, struct cf_pool *p)
{
	struct group g;
	int fd, r;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	if (cf_domain() == 0) {
		errno = ENOTSUP;
		return -1;
	}
	r = find_group(peer, &g);
	/* A KVM guest's Welcome names its QEMU's socket too: the guest maps its device. */
	if (r == 0 && guest_bar)
		fd = guest_bar(g.id, g.size, &p->peer_id);
	else if (r == 0 && g.path[0])
		fd = ivsh_join(p, g.path);
	else
		fd = r < 0 ? r : -ENODEV;
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	p->mem = mmap(NULL, g.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p->mem == MAP_FAILED)
		cf_fail(__FILE__, __LINE__, "mapping group %u's pool: %s", g.id, strerror(errno));
	p->size = g.size;
	p->group = g.id;
	return 0;
}

void cf_pool_close(struct cf_pool *p)
{
	if (p->mem)
		munmap(p->mem, p->size);
	if (p->fd >= 0)
		close(p->fd);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}
