/*
 * The INI reading: lines and section headers, the keys handed to config_keys.c.
 *
 * inih hands us key/value pairs but, as Debian builds it, neither line numbers nor section
 * starts (INI_HANDLER_LINENO and INI_CALL_HANDLER_ON_NEW_SECTION are 0), and it cuts section
 * names at 50 bytes. So the text goes through our own line reader (ini_parse_stream): it counts
 * lines, sees every section header itself (an empty [vm x] still exists and still needs its
 * channel), and feeds inih lines without leading blanks so an indented key is never taken for
 * the continuation of the previous value. inih still does the key = value splitting, comments
 * and whitespace.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

#include "common/config.h"
#include "daemon/config_parse.h"
#include "protocol/limits.h"

/* A [group]'s size unless it says otherwise. */
#define DEFAULT_GROUP_SIZE (64ull << 20)
/* The pool header carries the group name NUL padded in 32 bytes; a longer name would be cut
 * there, and guests tell their pools apart by it. */
#define GROUP_NAME_MAX (sizeof(((struct hbp_pool_header *)0)->name) - 1)

static void begin_singleton(struct hbd_config_parse *p, enum hbd_config_section sec, unsigned *seen,
			    const char *type, const char *name)
{
	if (*name) {
		hbd_config_fail(p, p->lineno, "[%s] takes no name", type);
		p->sec = HBD_SEC_BAD;
		return;
	}
	if (*seen) {
		hbd_config_fail(p, p->lineno, "duplicate section [%s] (first at line %u)", type,
				*seen);
		p->sec = HBD_SEC_BAD;
		return;
	}
	*seen = p->lineno;
	p->sec = sec;
}

static void begin_vm(struct hbd_config_parse *p, const char *name)
{
	struct hbc_config *c = p->c;
	unsigned i;

	if (!hbd_config_valid_name(name, HBC_NAME_MAX - 1)) {
		hbd_config_fail(p, p->lineno,
				"[vm %s]: a name is 1 to %d letters, digits, '_', '.' or '-'", name,
				HBC_NAME_MAX - 1);
		return;
	}
	if (strcmp(name, "host") == 0) {
		hbd_config_fail(p, p->lineno,
				"[vm host]: \"host\" is domain 0 and cannot name a VM");
		return;
	}
	for (i = 0; i < c->n_vms; i++)
		if (strcmp(c->vms[i].name, name) == 0) {
			hbd_config_fail(p, p->lineno, "duplicate [vm %s] (first at line %u)", name,
					p->vms[i].line);
			return;
		}
	if (c->n_vms == HBC_CONFIG_MAX_VMS) {
		hbd_config_fail(p, p->lineno, "too many [vm] sections (at most %d)",
				HBC_CONFIG_MAX_VMS);
		return;
	}
	p->sec_index = c->n_vms++;
	strcpy(c->vms[p->sec_index].name, name);
	c->vms[p->sec_index].ports = 1;
	c->vms[p->sec_index].uid = HBC_ID_UNSET;
	c->vms[p->sec_index].gid = HBC_ID_UNSET;
	c->vms[p->sec_index].sock_gid = HBC_ID_UNSET;
	c->vms[p->sec_index].ivshmem_conns = 1;
	p->vms[p->sec_index].line = p->lineno;
	p->sec = HBD_SEC_VM;
}

static void begin_group(struct hbd_config_parse *p, const char *name)
{
	struct hbc_config *c = p->c;
	struct hbc_config_group *g;
	unsigned i;

	if (!hbd_config_valid_name(name, GROUP_NAME_MAX)) {
		hbd_config_fail(p, p->lineno,
				"[group %s]: a name is 1 to %zu letters, digits, '_', '.' or '-'",
				name, GROUP_NAME_MAX);
		return;
	}
	for (i = 0; i < c->n_groups; i++)
		if (strcmp(c->groups[i].name, name) == 0) {
			hbd_config_fail(p, p->lineno, "duplicate [group %s] (first at line %u)",
					name, p->groups[i].line);
			return;
		}
	if (c->n_groups == HBC_CONFIG_MAX_GROUPS) {
		hbd_config_fail(p, p->lineno, "too many [group] sections (at most %d)",
				HBC_CONFIG_MAX_GROUPS);
		return;
	}
	p->sec_index = c->n_groups++;
	g = &c->groups[p->sec_index];
	strcpy(g->name, name);
	g->id = p->sec_index + 1; /* 1.. in file order; 0 means "no group" on the wire */
	g->size = DEFAULT_GROUP_SIZE;
	g->vectors = 1;
	p->groups[p->sec_index].line = p->lineno;
	p->sec = HBD_SEC_GROUP;
}

/* s[0..len) is a trimmed line starting with '['. */
static void begin_section(struct hbd_config_parse *p, const char *s, size_t len)
{
	char inner[128], type[16];
	const char *close, *rest, *name;
	size_t n, tlen;

	memset(p->key_line, 0, sizeof(p->key_line));
	/* Until the header proves good: keys under a bad one are not reported. */
	p->sec = HBD_SEC_BAD;

	close = memchr(s, ']', len);
	if (!close) {
		hbd_config_fail(p, p->lineno, "section header without ']'");
		return;
	}
	for (rest = close + 1; rest < s + len && isspace((unsigned char)*rest); rest++)
		;
	if (rest < s + len && *rest != ';' && *rest != '#') {
		hbd_config_fail(p, p->lineno, "unexpected text after ']'");
		return;
	}
	n = (size_t)(close - s - 1);
	if (n >= sizeof(inner)) {
		hbd_config_fail(p, p->lineno, "section header too long");
		return;
	}
	memcpy(inner, s + 1, n);
	inner[n] = '\0';
	/* Trim, then split "TYPE NAME" at the first blank. */
	while (n > 0 && isspace((unsigned char)inner[n - 1]))
		inner[--n] = '\0';
	name = inner;
	while (isspace((unsigned char)*name))
		name++;
	for (tlen = 0; name[tlen] && !isspace((unsigned char)name[tlen]); tlen++)
		;
	if (tlen == 0 || tlen >= sizeof(type)) {
		hbd_config_fail(p, p->lineno, "unknown section [%s]", inner);
		return;
	}
	memcpy(type, name, tlen);
	type[tlen] = '\0';
	for (name += tlen; isspace((unsigned char)*name); name++)
		;
	snprintf(p->sec_title, sizeof(p->sec_title), "%s%s%s", type, *name ? " " : "", name);

	if (strcmp(type, "daemon") == 0) {
		begin_singleton(p, HBD_SEC_DAEMON, &p->daemon_line, type, name);
	} else if (strcmp(type, "limits") == 0) {
		begin_singleton(p, HBD_SEC_LIMITS, &p->limits_line, type, name);
	} else if (strcmp(type, "xen") == 0) {
		begin_singleton(p, HBD_SEC_XEN, &p->xen_line, type, name);
	} else if (strcmp(type, "vm") == 0 || strcmp(type, "group") == 0) {
		if (!*name) {
			hbd_config_fail(p, p->lineno, "[%s] needs a name: [%s NAME]", type, type);
			return;
		}
		if (type[0] == 'v')
			begin_vm(p, name);
		else
			begin_group(p, name);
	} else {
		hbd_config_fail(p, p->lineno, "unknown section [%s]", p->sec_title);
	}
}

/*
 * inih's line source. Returns one whole line per call (so its line count stays ours), without
 * leading blanks. A line too long for inih's buffer is reported here and replaced by an empty
 * one: inih would otherwise cut it and parse the tail as a line of its own.
 */
static char *read_line(char *buf, int num, void *stream)
{
	struct hbd_config_parse *p = stream;
	const char *start, *nl;
	size_t len;

	if (p->pos >= p->end)
		return NULL;
	start = p->pos;
	nl = memchr(start, '\n', (size_t)(p->end - start));
	len = (size_t)((nl ? nl : p->end) - start);
	p->pos = nl ? nl + 1 : p->end;
	p->lineno++;

	if (p->lineno == 1 && len >= 3 && memcmp(start, "\xef\xbb\xbf", 3) == 0) {
		start += 3; /* a UTF-8 BOM, as editors on some systems write */
		len -= 3;
	}
	while (len > 0 && (*start == ' ' || *start == '\t')) {
		start++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)start[len - 1]))
		len--;

	if (num < 2 || len > (size_t)num - 2) {
		hbd_config_fail(p, p->lineno, "line too long (at most %d characters)",
				num < 2 ? 0 : num - 2);
		buf[0] = '\0';
		return buf;
	}
	memcpy(buf, start, len);
	buf[len] = '\0';
	if (len > 0 && buf[0] == '[')
		begin_section(p, buf, len);
	return buf;
}

void hbd_config_read(struct hbd_config_parse *p, const char *text, size_t len)
{
	int r;

	p->pos = text;
	p->end = text + len;
	if (memchr(text, '\0', len)) {
		hbd_config_fail(p, 0, "contains a NUL byte: not a text file");
		return;
	}
	r = ini_parse_stream(read_line, p, hbd_config_handle_key, p);
	if (r == -2)
		p->oom = true; /* inih could not allocate its line buffer */
	if (p->oom)
		return;
	/* inih reports the first line it could not parse; what we found ourselves by then is
	 * the more precise message for the same or an earlier line. */
	if (r > 0 && (!p->failed || (unsigned)r < p->err_line)) {
		p->failed = false;
		hbd_config_fail(p, (unsigned)r, "expected 'key = value', '[section]' or a comment");
	}
}
