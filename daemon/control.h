/*
 * The rows of hyperbufctl's views, shared by the whole reply (control.c) and its pages
 * (control_list.c). A row points into the daemon's objects (names, hids): it is packed before
 * the loop runs again and freed with its reply (hbd_control_free), never on its own.
 */
#ifndef HB_DAEMON_CONTROL_H
#define HB_DAEMON_CONTROL_H

#include <stddef.h>

#include "daemon/hyperbufd.h"

CtlDomain *hbd_ctl_domain(const struct hbd_domain *dom);
CtlExport *hbd_ctl_export(const struct hbd_buffer *b);
CtlImport *hbd_ctl_import(const struct hbd_session *s, const struct hbd_import *im);
CtlTimeline *hbd_ctl_timeline(const struct hbd_session *s, const struct hbd_timeline *tl);

/* Room for one more entry in the list at listp (a reply's `Ctl... **`), 0 or -ENOMEM. */
int hbd_ctl_reserve(void *listp, size_t n, size_t *cap);

/* Appends a new row (NULL: out of memory) to list, of n entries and capacity cap: 0, or
 * -ENOMEM with the row freed. */
#define HBD_CTL_PUSH(list, n, cap, make)                                                           \
	({                                                                                         \
		__typeof__(*(list)) hbd_row_ = (make);                                             \
		int hbd_err_ = hbd_row_ ? hbd_ctl_reserve(&(list), (n), &(cap)) : -ENOMEM;         \
		if (hbd_err_ == 0)                                                                 \
			(list)[(n)++] = hbd_row_;                                                  \
		else                                                                               \
			free(hbd_row_);                                                            \
		hbd_err_;                                                                          \
	})

#endif
