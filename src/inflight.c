/*
 * The in-flight queue (see inflight.h): a ring that starts inside the
 * queue and moves to the heap, doubling, when a pipeline outgrows it.
 */
#include "mcfault/inflight.h"

#include <stdlib.h>
#include <string.h>

void inflight_init(struct inflight *q)
{
    q->slots = q->small;
    q->cap = INFLIGHT_INLINE;
    q->head = 0;
    q->len = 0;
    q->marked = 0;
    q->group_open = false;
}

void inflight_deinit(struct inflight *q)
{
    if (q->slots != q->small) {
        free(q->slots);
    }
    inflight_init(q);
}

int inflight_push(struct inflight *q, struct inflight_entry e)
{
    if (q->len == q->cap) {
        uint32_t cap = q->cap * 2;
        struct inflight_entry *s;
        if (q->slots == q->small) {
            if ((s = malloc(sizeof(*s) * cap)) == NULL) {
                return -1;
            }
            for (uint32_t i = 0; i < q->len; i++) {
                s[i] = *inflight_at(q, i);
            }
            q->head = 0;
        } else {
            /* realloc keeps a long queue's pages (never held twice); the
             * entries that wrapped to the front move up behind the
             * others. */
            if ((s = realloc(q->slots, sizeof(*s) * cap)) == NULL) {
                return -1;
            }
            uint32_t wrapped = q->head + q->len - q->cap;
            if (q->head > 0) {
                memcpy(s + q->cap, s, sizeof(*s) * wrapped);
            }
        }
        q->slots = s;
        q->cap = cap;
    }
    *inflight_at(q, q->len) = e;
    q->len++;
    q->marked += e.marks != 0;
    return 0;
}

void inflight_pop(struct inflight *q)
{
    q->marked -= inflight_at(q, 0)->marks != 0;
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    if (q->len == 0 && q->slots != q->small) {
        /* An idle connection goes back to its inline slots. */
        bool open = q->group_open;
        free(q->slots);
        inflight_init(q);
        q->group_open = open;
    }
}

void inflight_mark_shape(struct inflight *q)
{
    struct inflight_entry *e = inflight_at(q, q->len - 1);

    q->marked += e->marks == 0;
    e->shape = 1;
}

static int close_group(struct inflight *q, bool strip)
{
    struct inflight_entry e = {.type = IF_BARRIER, .strip = strip};

    q->group_open = false;
    return inflight_push(q, e);
}

int inflight_forward(struct inflight *q, uint8_t kind, bool noreply, bool mn,
                     bool swallow)
{
    if (q->group_open) {
        /* A client's own mn closes the group; its MN goes to it. Anything
         * else joins the group: its replies pass through. */
        return mn ? close_group(q, false) : 0;
    }
    struct inflight_entry e = {
        .type = IF_ONE, .kind = kind, .swallow = swallow};
    if (noreply) {
        e.type = IF_GROUP;
        q->group_open = true;
    }
    return inflight_push(q, e);
}

int inflight_fence(struct inflight *q)
{
    if (!q->group_open) {
        return 0;
    }
    return close_group(q, true) == 0 ? 1 : -1;
}

enum inflight_end inflight_reply_end(struct inflight *q, bool mn)
{
    struct inflight_entry *e = inflight_head(q);

    if (e == NULL) {
        return INFLIGHT_NEXT;
    }
    if (e->type == IF_ONE) {
        inflight_pop(q);
        return INFLIGHT_NEXT;
    }
    if (e->type == IF_GROUP && mn && q->len > 1 &&
        inflight_at(q, 1)->type == IF_BARRIER) {
        bool strip = inflight_at(q, 1)->strip;
        inflight_pop(q);
        inflight_pop(q);
        return strip ? INFLIGHT_STRIP_MN : INFLIGHT_GROUP_MN;
    }
    return INFLIGHT_GOES_ON;
}
