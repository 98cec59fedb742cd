/* An intrusive doubly linked list (the Wayland wl_list shape). */
#ifndef HB_LIST_H
#define HB_LIST_H

#include <stddef.h>

struct hbc_list {
	struct hbc_list *prev, *next;
};

static inline void hbc_list_init(struct hbc_list *l)
{
	l->prev = l->next = l;
}

static inline void hbc_list_insert_tail(struct hbc_list *head, struct hbc_list *e)
{
	e->prev = head->prev;
	e->next = head;
	head->prev->next = e;
	head->prev = e;
}

static inline void hbc_list_remove(struct hbc_list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

static inline int hbc_list_empty(const struct hbc_list *l)
{
	return l->next == l;
}

static inline size_t hbc_list_length(const struct hbc_list *l)
{
	size_t n = 0;
	for (const struct hbc_list *e = l->next; e != l; e = e->next)
		n++;
	return n;
}

#define hbc_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Iterates over a list whose elements may be removed (the current one) inside the loop. */
#define hbc_list_for_each_safe(pos, head, type, member)                                            \
	for (struct hbc_list *pos##_l = (head)->next, *pos##_n = pos##_l->next;                    \
	     pos##_l != (head) && ((pos) = hbc_container_of(pos##_l, type, member), 1);            \
	     pos##_l = pos##_n, pos##_n = pos##_l->next)

#endif
