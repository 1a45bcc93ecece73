/*
 * main.h: a main() for the fuzz targets in tests/fuzz, so that they build
 * and run as plain programs: "target FILE..." feeds each file to
 * LLVMFuzzerTestOneInput.  Built with -DSYNC_LIBFUZZER (and
 * -fsanitize=fuzzer), libFuzzer provides main() instead.
 */
#ifndef SYNC_FUZZ_MAIN_H
#define SYNC_FUZZ_MAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SYNC_LIBFUZZER
int
main(int argc, char *argv[])
{
	unsigned char *buf;
	size_t len, cap;
	FILE *fp;
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		if ((fp = fopen(argv[i], "rb")) == NULL) {
			perror(argv[i]);
			rc = 2;
			continue;
		}
		buf = NULL;
		len = cap = 0;
		for (;;) {
			if (len == cap) {
				unsigned char *nb;

				cap = cap ? cap * 2 : 4096;
				if ((nb = realloc(buf, cap)) == NULL) {
					perror(argv[i]);
					exit(2);
				}
				buf = nb;
			}
			size_t n = fread(buf + len, 1, cap - len, fp);

			if (n == 0)
				break;
			len += n;
		}
		if (ferror(fp)) {
			perror(argv[i]);
			rc = 2;
		} else
			LLVMFuzzerTestOneInput(buf, len);
		fclose(fp);
		free(buf);
	}
	return rc;
}
#endif

#endif
