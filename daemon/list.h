/* An intrusive doubly linked list (the Wayland wl_list shape). */
#ifndef HB_LIST_H
#define HB_LIST_H

#include <stddef.h>

struct hb_list {
	struct hb_list *prev, *next;
};

static inline void hb_list_init(struct hb_list *l)
{
	l->prev = l->next = l;
}

static inline void hb_list_insert_tail(struct hb_list *head, struct hb_list *e)
{
	e->prev = head->prev;
	e->next = head;
	head->prev->next = e;
	head->prev = e;
}

static inline void hb_list_remove(struct hb_list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = e;
}

static inline int hb_list_empty(const struct hb_list *l)
{
	return l->next == l;
}

static inline size_t hb_list_length(const struct hb_list *l)
{
	size_t n = 0;
	for (const struct hb_list *e = l->next; e != l; e = e->next)
		n++;
	return n;
}

#define hb_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Iterates over a list whose elements may be removed (the current one) inside the loop. */
#define hb_list_for_each_safe(pos, head, type, member)                                       \
	for (struct hb_list *pos##_l = (head)->next, *pos##_n = pos##_l->next;               \
	     pos##_l != (head) && ((pos) = hb_container_of(pos##_l, type, member), 1);       \
	     pos##_l = pos##_n, pos##_n = pos##_l->next)

#endif
