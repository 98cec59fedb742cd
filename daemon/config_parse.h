/*
 * One config load in progress: the state the daemon's config files share, and nothing else
 * includes. A load goes
 *
 *   config_load.c    text and defaults in, a checked struct hbc_config or "FILE:LINE: what" out
 *   config_parse.c   the INI reading: lines and section headers
 *   config_keys.c    what every key accepts and what it sets
 *   config_values.c  the kinds of values: numbers, sizes, names, socket paths, lists
 *   config_check.c   the checks a whole config needs once every section is known
 *
 * Besides the model, a parse keeps where things were written, so an error can name the line.
 */
#ifndef HB_DAEMON_CONFIG_PARSE_H
#define HB_DAEMON_CONFIG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

enum hbd_config_section {
	HBD_SEC_NONE, /* before the first header */
	HBD_SEC_DAEMON,
	HBD_SEC_LIMITS,
	HBD_SEC_VM,
	HBD_SEC_GROUP,
	HBD_SEC_XEN,
	HBD_SEC_BAD, /* a header that was reported: its keys are skipped */
};

/* The most keys a section has ([limits]). */
#define HBD_CONFIG_MAX_KEYS 16

struct hbd_config_vm_source {
	unsigned line; /* of the [vm NAME] header */
	unsigned id_line;
	unsigned channel_line;
	unsigned ports_line;
};

struct hbd_config_group_source {
	unsigned line; /* of the [group NAME] header */
	unsigned members_line;
	unsigned ivshmem_line;
	char *members; /* raw list, resolved once every [vm] is known */
};

struct hbd_config_parse {
	struct hbc_config *c;
	const char *name; /* the file name in messages */
	char *base;       /* absolute folder that relative paths are relative to */

	/* The line reader's position. */
	const char *pos, *end;
	unsigned lineno;

	/* The section being read. */
	enum hbd_config_section sec;
	char sec_title[160];
	unsigned sec_index;
	unsigned key_line[HBD_CONFIG_MAX_KEYS];

	unsigned daemon_line, limits_line, xen_line;
	unsigned backend_line, socket_line, control_line, metrics_line;
	struct hbd_config_vm_source vms[HBC_CONFIG_MAX_VMS];
	struct hbd_config_group_source groups[HBC_CONFIG_MAX_GROUPS];

	/* The first error wins: later ones are usually consequences of it. */
	bool failed;
	bool oom;
	unsigned err_line;
	char err[400];
};

/* Records an error at line (0: about the file as a whole), unless one was recorded already. */
void hbd_config_fail(struct hbd_config_parse *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config_parse.c: reads text[0..len) into p->c, every key through hbd_config_handle_key().
 * Afterwards p->failed or p->oom says whether it went wrong. */
void hbd_config_read(struct hbd_config_parse *p, const char *text, size_t len);

/* config_keys.c: the inih handler for one key = value of the section being read. */
int hbd_config_handle_key(void *user, const char *section, const char *key, const char *value);

/* config_check.c: the checks that need the whole file; decides an unset backend. */
void hbd_config_check(struct hbd_config_parse *p);

/* config_values.c: one function per kind of value. Those given p record what is wrong with
 * the value, at p->lineno; the others only say whether it is well formed. */
bool hbd_config_parse_u64(const char *s, uint64_t *out);
bool hbd_config_number(struct hbd_config_parse *p, const char *key, const char *value, uint64_t min,
		       uint64_t max, uint64_t *out);
bool hbd_config_parse_size(const char *s, uint64_t *out);
bool hbd_config_valid_name(const char *s, size_t max);
char *hbd_config_join_path(const char *base, const char *rel);
bool hbd_config_path(struct hbd_config_parse *p, const char *key, const char *value,
		     char out[HBC_SUN_PATH_MAX]);
bool hbd_config_file_path(struct hbd_config_parse *p, const char *key, const char *value,
			  char out[HBC_CONFIG_PATH_MAX]);
bool hbd_config_user(struct hbd_config_parse *p, const char *key, const char *value,
		     uint32_t *uid, uint32_t *gid);
bool hbd_config_group(struct hbd_config_parse *p, const char *key, const char *value,
		      uint32_t *gid);
bool hbd_config_mode(struct hbd_config_parse *p, const char *key, const char *value,
		     unsigned *mode);
bool hbd_config_percent(struct hbd_config_parse *p, const char *key, const char *value,
			unsigned *pct);
bool hbd_config_placeholders(struct hbd_config_parse *p, const char *key, const char *path,
			     const char *ph);
bool hbd_config_for_each_item(char *list,
			      bool (*fn)(struct hbd_config_parse *, void *, const char *),
			      struct hbd_config_parse *p, void *arg);

#endif
