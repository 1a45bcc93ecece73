/*
 * util.c: errors, buffers, string vectors, UTF-8, base64, GUIDs and SIDs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync.h"

/* ---------------------------------------------------------------- errors */

int
sync_errf(struct sync_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return -1;
}

int
sync_errno(struct sync_err *err, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;
	size_t len;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	snprintf(err->msg + len, sizeof err->msg - len, ": %s", strerror(saved));
	errno = saved;
	return -1;
}

int
sync_errpre(struct sync_err *err, const char *fmt, ...)
{
	char old[SYNC_ERRMAX];
	va_list ap;
	size_t len;

	if (err == NULL)
		return -1;
	memcpy(old, err->msg, sizeof old);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	snprintf(err->msg + len, sizeof err->msg - len, ": %s", old);
	return -1;
}

/* ---------------------------------------------------------------- buffers */

int
sync_buf_grow(struct sync_buf *b, size_t extra)
{
	size_t want, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -1;
	want = b->len + extra + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
sync_buf_add(struct sync_buf *b, const void *data, size_t n)
{
	if (sync_buf_grow(b, n) == -1)
		return -1;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
sync_buf_adds(struct sync_buf *b, const char *s)
{
	return sync_buf_add(b, s, strlen(s));
}

int
sync_buf_addc(struct sync_buf *b, int c)
{
	char ch = (char)c;

	return sync_buf_add(b, &ch, 1);
}

int
sync_buf_addf(struct sync_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sync_buf_grow(b, (size_t)n) == -1)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
sync_buf_reset(struct sync_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void
sync_buf_release(struct sync_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *
sync_buf_detach(struct sync_buf *b)
{
	char *p = b->p;

	if (p == NULL)
		p = calloc(1, 1);
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

/* --------------------------------------------------------- string vectors */

int
sync_strv_take(struct sync_strv *sv, char *s)
{
	char **v;
	size_t cap;

	if (s == NULL)
		return -1;
	if (sv->n + 2 > sv->cap) {
		cap = sv->cap ? sv->cap * 2 : 8;
		if ((v = realloc(sv->v, cap * sizeof *v)) == NULL) {
			free(s);
			return -1;
		}
		sv->v = v;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

int
sync_strv_add(struct sync_strv *sv, const char *s)
{
	return sync_strv_take(sv, sync_strdup(s));
}

int
sync_strv_addn(struct sync_strv *sv, const char *s, size_t len)
{
	return sync_strv_take(sv, sync_strndup(s, len));
}

int
sync_strv_contains(const struct sync_strv *sv, const char *s)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return 1;
	return 0;
}

int
sync_strv_casecontains(const struct sync_strv *sv, const char *s)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		if (strcasecmp(sv->v[i], s) == 0)
			return 1;
	return 0;
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
sync_strv_sort(struct sync_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof *sv->v, strp_cmp);
}

void
sync_strv_release(struct sync_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

char *
sync_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *
sync_strndup(const char *s, size_t n)
{
	char *p;

	if ((p = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* ------------------------------------------------------------------ UTF-8 */

/*
 * The length of the valid UTF-8 sequence that starts at p (before end):
 * 1 to 4, or 0 when the bytes there are not valid UTF-8 (a stray
 * continuation byte, a truncated sequence, an overlong form, a surrogate
 * or a code point past U+10FFFF).
 */
static int
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned int c = *p;
	int n, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 1;
	else if (c >= 0xe0 && c <= 0xef)
		n = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 3;
	else
		return 0;
	if (end - p <= n)
		return 0;
	for (i = 1; i <= n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
		return 0;
	return n + 1;
}

int
sync_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	int n;

	for (; p < end; p += n)
		if (*p == 0 || (n = utf8_len(p, end)) == 0)
			return 0;
	return 1;
}

/* ------------------------------------------------------ terminal escapes */

int
sync_buf_addesc(struct sync_buf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	const unsigned char *run;
	int n;

	while (p < end) {
		/* Runs of harmless bytes are copied as they are. */
		for (run = p; p < end; p += n) {
			if (*p < 0x20 || *p == 0x7f)
				break;
			if ((n = utf8_len(p, end)) == 0 ||
			    (p[0] == 0xc2 && p[1] < 0xa0))
				break;
		}
		if (p > run && sync_buf_add(b, run, (size_t)(p - run)) == -1)
			return -1;
		if (p == end)
			break;
		if (*p == '\n' || *p == '\r' || *p == '\t') {
			if (sync_buf_addc(b, '\\') == -1 || sync_buf_addc(b,
			    *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't') == -1)
				return -1;
			p++;
		} else if (*p < 0x80) {
			if (sync_buf_addf(b, "\\x%02x", *p) == -1)
				return -1;
			p++;
		} else if (utf8_len(p, end) == 2) {
			/* U+0080 to U+009F: C1 controls, CSI among them. */
			if (sync_buf_addf(b, "\\u%04x", p[1]) == -1)
				return -1;
			p += 2;
		} else {
			/* Not UTF-8: the byte alone could be a C1 control. */
			if (sync_buf_addf(b, "\\x%02x", *p) == -1)
				return -1;
			p++;
		}
	}
	/* An empty string still gives a string. */
	return sync_buf_grow(b, 0);
}

int
sync_fputs_esc(const char *s, FILE *fp)
{
	struct sync_buf b = { 0 };
	int rc;

	if (sync_buf_addesc(&b, s, strlen(s)) == -1) {
		sync_buf_release(&b);
		errno = ENOMEM;
		return -1;
	}
	rc = fputs(b.p, fp) == EOF ? -1 : 0;
	sync_buf_release(&b);
	return rc;
}

int
sync_msg(FILE *fp, const char *prog, const char *fmt, ...)
{
	struct sync_buf b = { 0 }, e = { 0 };
	const char *p, *q;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sync_buf_grow(&b, (size_t)n) == -1) {
		sync_buf_release(&b);
		return fprintf(fp, "%s: out of memory\n", prog) < 0 ? -1 : 0;
	}
	va_start(ap, fmt);
	vsnprintf(b.p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b.len = (size_t)n;
	rc = sync_buf_adds(&e, prog) == -1 || sync_buf_adds(&e, ": ") == -1;
	for (p = b.p; rc == 0; p = q + 3) {
		/* A newline and two spaces: a continuation line of ours. */
		if ((q = strstr(p, "\n  ")) == NULL)
			q = b.p + b.len;
		rc = sync_buf_addesc(&e, p, (size_t)(q - p)) == -1 ||
		    sync_buf_add(&e, "\n  ", *q ? 3 : 1) == -1;
		if (*q == '\0')
			break;
	}
	if (rc)
		rc = fprintf(fp, "%s: out of memory\n", prog) < 0 ? -1 : 0;
	else
		rc = fputs(e.p, fp) == EOF ? -1 : 0;
	sync_buf_release(&b);
	sync_buf_release(&e);
	return rc;
}

/* ----------------------------------------------------------------- base64 */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
sync_base64_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out, *o;
	size_t i;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		*o++ = b64[in[i] >> 2];
		*o++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = b64[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = b64[in[i + 2] & 63];
	}
	if (i < len) {
		*o++ = b64[in[i] >> 2];
		if (i + 1 < len) {
			*o++ = b64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*o++ = b64[(in[i + 1] & 15) << 2];
		} else {
			*o++ = b64[(in[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* A base64 digit's value + 1; 0 for any other byte. */
static const unsigned char b64dec[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17,
	['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27,
	['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
	['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,
	['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
	['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47,
	['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52,
	['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62,
	['+'] = 63, ['/'] = 64
};

/* The offset of the first of s[0..n) that is not a base64 digit. */
static size_t
b64_bad(const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && b64dec[s[i]]; i++)
		;
	return i;
}

long
sync_base64_decode_into(const char *str, size_t len, unsigned char *out,
    size_t *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i, o = 0, n, pad = 0;
	uint32_t a, b, c, d;

	if (len % 4 != 0) {
		*bad = len;
		return -1;
	}
	if (len >= 1 && s[len - 1] == '=')
		pad++;
	if (len >= 2 && s[len - 2] == '=')
		pad++;
	n = len - pad;
	/* whole groups of four digits: three bytes each (read before the
	 * bytes are written, so that out may be s) */
	for (i = 0; i + 4 <= n; i += 4) {
		a = b64dec[s[i]];
		b = b64dec[s[i + 1]];
		c = b64dec[s[i + 2]];
		d = b64dec[s[i + 3]];
		if (!a || !b || !c || !d) {
			*bad = i + b64_bad(s + i, 4);
			return -1;
		}
		a = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
		out[o++] = (unsigned char)(a >> 16);
		out[o++] = (unsigned char)(a >> 8);
		out[o++] = (unsigned char)a;
	}
	if (n - i >= 2) {
		a = b64dec[s[i]];
		b = b64dec[s[i + 1]];
		c = n - i == 3 ? b64dec[s[i + 2]] : 1;
		if (!a || !b || !c) {
			*bad = i + b64_bad(s + i, n - i);
			return -1;
		}
		a = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6;
		/* canonical form only: the bits the padding drops are zero */
		if (a & (n - i == 2 ? 0xffff : 0xff)) {
			*bad = n - 1;
			return -1;
		}
		out[o++] = (unsigned char)(a >> 16);
		if (n - i == 3)
			out[o++] = (unsigned char)(a >> 8);
	}
	out[o] = '\0';
	return (long)o;
}

int
sync_base64_decode(const char *s, size_t len, unsigned char **out,
    size_t *outlen, struct sync_err *err)
{
	unsigned char *buf;
	size_t bad;
	long n;

	if (len % 4 != 0)
		return sync_errf(err, "invalid base64: length %zu is not a "
		    "multiple of 4", len);
	if ((buf = malloc(len / 4 * 3 + 1)) == NULL)
		return sync_errno(err, "cannot decode base64");
	if ((n = sync_base64_decode_into(s, len, buf, &bad)) < 0) {
		free(buf);
		if (b64dec[(unsigned char)s[bad]] && bad == len - 1 -
		    (s[len - 1] == '=') - (len >= 2 && s[len - 2] == '='))
			return sync_errf(err, "invalid base64: non-zero padding "
			    "bits");
		return sync_errf(err, "invalid base64: unexpected "
		    "character at offset %zu", bad);
	}
	*out = buf;
	*outlen = (size_t)n;
	return 0;
}

/* --------------------------------------------------------- GUIDs and SIDs */

void
sync_guid_string(const unsigned char r[16], char out[37])
{
	/* The first three groups are little-endian in the packet layout. */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", r[3], r[2], r[1], r[0], r[5], r[4],
	    r[7], r[6], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
sync_guid_parse(const char *s, unsigned char raw[16])
{
	static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6,
	    8, 9, 10, 11, 12, 13, 14, 15 };
	unsigned char b[16];
	size_t len = strlen(s);
	int i, k = 0, hi, lo;

	if (len == 38 && s[0] == '{' && s[37] == '}') {
		s++;
		len = 36;
	}
	if (len != 36)
		return -1;
	for (i = 0; i < 36;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			i++;
			continue;
		}
		if ((hi = hexval((unsigned char)s[i])) < 0 ||
		    (lo = hexval((unsigned char)s[i + 1])) < 0)
			return -1;
		b[k++] = (unsigned char)(hi << 4 | lo);
		i += 2;
	}
	for (i = 0; i < 16; i++)
		raw[order[i]] = b[i];
	return 0;
}

char *
sync_sid_string(const unsigned char *raw, size_t len)
{
	struct sync_buf b = { 0 };
	uint64_t auth = 0;
	unsigned int n, i;

	if (len < 8 || raw[0] != 1)
		return NULL;
	n = raw[1];
	if (len != 8 + 4 * (size_t)n)
		return NULL;
	for (i = 2; i < 8; i++)
		auth = auth << 8 | raw[i];   /* big-endian authority */
	if (sync_buf_addf(&b, "S-%u-%llu", raw[0],
	    (unsigned long long)auth) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		const unsigned char *p = raw + 8 + 4 * i;
		uint32_t sub = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
		    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;

		if (sync_buf_addf(&b, "-%lu", (unsigned long)sub) == -1)
			goto fail;
	}
	return sync_buf_detach(&b);
fail:
	sync_buf_release(&b);
	return NULL;
}

/* ------------------------------------------------------------------- time */

void
sync_time_now(char out[32])
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	time_t t = time(NULL);
	struct tm tm;
	char *end;

	if (sde && *sde) {
		long long v = strtoll(sde, &end, 10);

		if (*end == '\0' && v >= 0)
			t = (time_t)v;
	}
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

double
sync_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
sync_sleep_for(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	/* A signal (SIGWINCH, SIGCHLD) must not cut a back-off short. */
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}
