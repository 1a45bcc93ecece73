/*
 * Fuzz target: the snapshot reader of sync-diff (lib/snapread.c).  Any
 * input must give a snapshot or a "name:line:col: ..." error, never a
 * crash or a leak.  The skeleton reader of delta imports too, which
 * must find the anchor, id, DN, type and line start that the full
 * reader finds wherever that one succeeds.
 */
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_err err;
	struct snap *s, *k;
	char *buf, *kbuf;
	size_t i;

	if ((buf = malloc(size + 2)) == NULL)
		return 0;
	if ((kbuf = malloc(size + 2)) == NULL) {
		free(buf);
		return 0;
	}
	buf[0] = '\0';
	memcpy(buf + 1, data, size);
	buf[size + 1] = '\0';
	memcpy(kbuf, buf, size + 2);
	s = snap_parse("fuzz", buf, size, &err);
	if (s == NULL && strncmp(err.msg, "fuzz:", 5) != 0)
		abort();
	k = snap_parse_skel("fuzz", kbuf, size, &err);
	if (k == NULL && (s != NULL || strncmp(err.msg, "fuzz:", 5) != 0))
		abort();
	for (i = 0; s && k && i < s->nobjs; i++) {
		const struct dobj *a = &s->objs[i], *b = &k->objs[i];

		if (k->nobjs != s->nobjs || a->type != b->type ||
		    a->off != b->off || (a->dn == 0) != (b->dn == 0) ||
		    strcmp(s->buf + a->anchor, k->buf + b->anchor) != 0 ||
		    strcmp(s->buf + a->id, k->buf + b->id) != 0 ||
		    (a->dn && strcmp(s->buf + a->dn, k->buf + b->dn) != 0))
			abort();
	}
	snap_free(s);
	snap_free(k);
	return 0;
}
