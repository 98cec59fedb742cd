/*
 * Why a request was refused, in words (ServerMsg.reason, PROTOCOL.md §2): an errno says what
 * kind of no it is; the words say which limit, which domain, which socket, so that nobody has
 * to guess from EMSGSIZE or ENODEV what to change. A handler sets the reason of the request it
 * refuses; hbd_request sends it with the error and forgets it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/hyperbufd.h"

void hbd_reason(struct hbd_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
}

/* "vm1 (1), vm2 (2)": the VMs of the config, as far as they fit. */
static void list_vms(const struct hbc_config *cfg, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < cfg->n_vms && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%s%s (%u)", i ? ", " : "",
				      cfg->vms[i].name, cfg->vms[i].id);
}

/* "dom1 (1), dom2 (2)": the domUs of [xen] domains, as far as they fit. */
static void list_xen_domains(const struct hbc_config *cfg, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < cfg->n_xen_domains && n < len; i++)
		n += (size_t)snprintf(out + n, len - n, "%sdom%u (%u)", i ? ", " : "",
				      cfg->xen_domains[i], cfg->xen_domains[i]);
}

static bool xen_listed(const struct hbc_config *cfg, uint32_t id)
{
	if (id == 0 || cfg->xen_all_domains)
		return true;
	for (unsigned i = 0; i < cfg->n_xen_domains; i++)
		if (cfg->xen_domains[i] == id)
			return true;
	return false;
}

/* ENODEV: a domain the config does not have is the admin's to add, and the words say where;
 * one it has is not running (or, on KVM, its QEMU has not attached). */
static void explain_enodev(struct hbd_session *s, uint32_t peer)
{
	const struct hbc_config *cfg = s->d->cfg;
	char doms[160];

	if (cfg->backend == HBC_BACKEND_KVM && !hbc_config_domain_name(cfg, peer)) {
		list_vms(cfg, doms, sizeof(doms));
		hbd_reason(s,
			   "no domain %u: the daemon's config has no [vm] with id %u (its VMs: %s)",
			   peer, peer, doms[0] ? doms : "none, it serves the host only");
	} else if (cfg->backend == HBC_BACKEND_XEN && !xen_listed(cfg, peer)) {
		list_xen_domains(cfg, doms, sizeof(doms));
		hbd_reason(
		    s,
		    "no domain %u: the daemon's [xen] domains does not list it (its domains: "
		    "%s)",
		    peer, doms[0] ? doms : "none, it serves dom0 only");
	} else {
		hbd_reason(s, "no domain %u to share with (not running, or not attached)", peer);
	}
}

static const char *name_of(const struct hbd *d, uint32_t id)
{
	const char *name = hbc_config_domain_name(d->cfg, id);

	return name ? name : "?";
}

void hbd_explain_alloc(struct hbd_session *s, uint32_t peer, uint64_t size, int err)
{
	const struct hbc_config *cfg = s->d->cfg;

	switch (err) {
	case -EINVAL:
		if (peer == s->dom->id)
			hbd_reason(s,
				   "domain %u is this client's own: buffers are for another domain",
				   peer);
		break;
	case -ENODEV:
		explain_enodev(s, peer);
		break;
	case -EPERM:
		hbd_reason(s, "%s (%u) and %s (%u) are in no [group] together", s->dom->name,
			   s->dom->id, name_of(s->d, peer), peer);
		break;
	case -EFBIG:
		hbd_reason(s, "%llu bytes is larger than any pool %s shares with domain %u",
			   (unsigned long long)size, s->dom->name, peer);
		break;
	case -ENOSPC:
		hbd_reason(s, "the pool %s shares with domain %u has no room for %llu bytes",
			   s->dom->name, peer, (unsigned long long)size);
		break;
	case -EDQUOT:
		hbd_reason(s,
			   "%s holds %llu pool pages: over pages_per_domain (%llu) or its share "
			   "of the pool",
			   s->dom->name, (unsigned long long)s->dom->pages,
			   (unsigned long long)cfg->pages_per_domain);
		break;
	}
}

/* A control session on a door that is not the host's or the control's, or a client on the
 * control socket: the most common mistake with hyperbufctl -s. */
void hbd_explain_hello(struct hbd_session *s, uint32_t role, int err)
{
	if (err == -EPERM && role == HBP_ROLE_CONTROL && s->dom->id != 0)
		hbd_reason(s,
			   "this is a VM's channel socket (vm %s, domain %u): hyperbufctl talks to "
			   "the daemon's host or control socket",
			   s->dom->name, s->dom->id);
	else if (err == -EPERM && role == HBP_ROLE_CLIENT)
		hbd_reason(s,
			   "this is the control socket, for hyperbufctl: clients use the host "
			   "socket %s",
			   s->d->cfg->socket);
	else if (err == -EUSERS && s->user)
		hbd_reason(s, "uid %u has %u sessions already (sessions_per_uid)", (unsigned)s->uid,
			   s->user->sessions);
}
