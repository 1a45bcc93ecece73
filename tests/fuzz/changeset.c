/*
 * Fuzz target: the change set checker (lib/changeset.c), which sync-export
 * runs on a plan before it applies anything.
 */
#include <string.h>

#include "sync.h"
#include "main.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_err err;

	if (sync_changeset_check("fuzz", (const char *)data, size, &err) == -1 &&
	    strncmp(err.msg, "fuzz:", 5) != 0)
		__builtin_trap();
	return 0;
}
