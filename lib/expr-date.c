/*
 * expr-date.c: the date functions of the expression language (CDate,
 * DateAdd, DateDiff, DateFromNum, NumFromDate, FormatDateTime, Now,
 * IsDate), see sync-expr(7).
 *
 * A date is a V_DATE item: num holds .NET ticks (100 ns since
 * 0001-01-01 00:00:00 UTC, DateTime.Ticks), so that FILETIME values
 * (100 ns since 1601) convert without loss, and p holds its text form,
 * "M/d/yyyy h:mm:ss tt" as the provisioning service documents for CDate,
 * DateAdd and Now, so that every function that wants text gets one.
 * There is no local time zone: every date is UTC.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sync.h"
#include "sync-expr.h"
#include "expr-int.h"

#define TPS             10000000LL              /* ticks a second */
#define TPD             (86400LL * TPS)         /* ticks a day */
#define MAXTICKS        3155378975999999999LL   /* 9999-12-31 23:59:59.9999999 */
#define FILETIME0       504911232000000000LL    /* ticks at 1601-01-01 */
#define UNIX0           621355968000000000LL    /* ticks at 1970-01-01 */

static const char *const monthname[12] = {
	"January", "February", "March", "April", "May", "June", "July",
	"August", "September", "October", "November", "December"
};
static const char *const dayname[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
	"Saturday"
};

struct tm7 {
	int64_t y;
	int mo, d, h, mi, s;
	int64_t frac;           /* ticks in the second, 0..9999999 */
	int dow;                /* 0 Sunday */
};

/* Days from 0001-01-01 to y-m-d, proleptic Gregorian (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468 + 719162;
}

static void
civil_from_ticks(int64_t t, struct tm7 *tm)
{
	int64_t days = t / TPD, rem = t % TPD, z, era, doe, yoe, doy, mp;

	tm->dow = (int)((days + 1) % 7);        /* 0001-01-01 is a Monday */
	z = days - 719162 + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	tm->d = (int)(doy - (153 * mp + 2) / 5 + 1);
	tm->mo = (int)(mp < 10 ? mp + 3 : mp - 9);
	tm->y = yoe + era * 400 + (tm->mo <= 2);
	tm->h = (int)(rem / (3600 * TPS));
	tm->mi = (int)(rem / (60 * TPS) % 60);
	tm->s = (int)(rem / TPS % 60);
	tm->frac = rem % TPS;
}

static int
leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
mdays(int64_t y, int m)
{
	static const int n[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	return m == 2 && leap(y) ? 29 : n[m - 1];
}

/* Ticks of a valid local time at offset off (minutes east of UTC); -1
 * when a field is out of range or the result is outside 0001..9999. */
static int
to_ticks(const struct tm7 *tm, int off, int64_t *out)
{
	int64_t t;

	if (tm->y < 1 || tm->y > 9999 || tm->mo < 1 || tm->mo > 12 ||
	    tm->d < 1 || tm->d > mdays(tm->y, tm->mo) || tm->h < 0 ||
	    tm->h > 23 || tm->mi < 0 || tm->mi > 59 || tm->s < 0 ||
	    tm->s > 59 || tm->frac < 0 || tm->frac >= TPS)
		return -1;
	t = days_from_civil(tm->y, tm->mo, tm->d) * TPD + tm->h * 3600 * TPS +
	    tm->mi * 60 * TPS + tm->s * TPS + tm->frac - off * 60 * TPS;
	if (t < 0 || t > MAXTICKS)
		return -1;
	*out = t;
	return 0;
}

/* ------------------------------------------------------------ parsing */

struct scan {
	const char *p, *e;
};

static int
digits(struct scan *sc, int min, int max, int64_t *v)
{
	int n = 0;

	*v = 0;
	while (n < max && sc->p < sc->e && isdigit((unsigned char)*sc->p)) {
		*v = *v * 10 + (*sc->p++ - '0');
		n++;
	}
	return n >= min ? 0 : -1;
}

static void
spaces(struct scan *sc)
{
	while (sc->p < sc->e && isspace((unsigned char)*sc->p))
		sc->p++;
}

static int
peek(const struct scan *sc)
{
	return sc->p < sc->e ? (unsigned char)*sc->p : -1;
}

/* Fraction digits after the point: the first 7 are ticks, more are
 * dropped. */
static int
fraction(struct scan *sc, int64_t *frac)
{
	int n = 0;

	*frac = 0;
	while (sc->p < sc->e && isdigit((unsigned char)*sc->p)) {
		if (n++ < 7)
			*frac = *frac * 10 + (*sc->p - '0');
		sc->p++;
	}
	for (; n < 7; n++)
		*frac *= 10;
	return 0;
}

/* Z, or +h, +hh, +hhmm, +hh:mm (and -); *off in minutes.  Nothing there
 * leaves *off alone and succeeds. */
static int
zone(struct scan *sc, int *off)
{
	int64_t h, m = 0;
	int neg;

	spaces(sc);
	if (peek(sc) == 'Z' || peek(sc) == 'z') {
		sc->p++;
		*off = 0;
		return 0;
	}
	if (peek(sc) != '+' && peek(sc) != '-')
		return 0;
	neg = *sc->p++ == '-';
	if (digits(sc, 1, 2, &h) == -1 || h > 14)
		return -1;
	if (peek(sc) == ':')
		sc->p++;
	if (isdigit(peek(sc)) && (digits(sc, 2, 2, &m) == -1 || m > 59))
		return -1;
	*off = (int)((neg ? -1 : 1) * (h * 60 + m));
	return 0;
}

/* AM or PM (any case), A or P: *pm 0 or 1; -1 when there is none. */
static int
ampm(struct scan *sc, int *pm, int whole)
{
	int c = peek(sc);

	if (c != 'A' && c != 'a' && c != 'P' && c != 'p')
		return -1;
	*pm = c == 'P' || c == 'p';
	sc->p++;
	if (whole || peek(sc) == 'M' || peek(sc) == 'm') {
		if (peek(sc) != 'M' && peek(sc) != 'm')
			return -1;
		sc->p++;
	}
	return 0;
}

static int
hour12(struct tm7 *tm, int pm)
{
	if (tm->h < 1 || tm->h > 12)
		return -1;
	tm->h = tm->h % 12 + (pm ? 12 : 0);
	return 0;
}

/* H:mm[:ss[.fffffff]] [AM|PM] */
static int
timeofday(struct scan *sc, struct tm7 *tm)
{
	int64_t v;
	int pm;

	if (digits(sc, 1, 2, &v) == -1)
		return -1;
	tm->h = (int)v;
	if (peek(sc) != ':')
		return -1;
	sc->p++;
	if (digits(sc, 2, 2, &v) == -1)
		return -1;
	tm->mi = (int)v;
	if (peek(sc) == ':') {
		sc->p++;
		if (digits(sc, 2, 2, &v) == -1)
			return -1;
		tm->s = (int)v;
		if (peek(sc) == '.' || peek(sc) == ',') {
			sc->p++;
			if (!isdigit(peek(sc)))
				return -1;
			fraction(sc, &tm->frac);
		}
	}
	spaces(sc);
	if (ampm(sc, &pm, 0) == 0 && hour12(tm, pm) == -1)
		return -1;
	return 0;
}

/*
 * The forms CDate reads (sync-expr(7)): generalized time
 * (yyyyMMddHHmm[ss][.f]), ISO 8601 (yyyy-M-d, then T or blanks and a
 * time), US M/d/yyyy (then a time), each with an optional zone; no zone
 * is UTC.  Returns 0, or -1 when s is not such a date.
 */
static int
parse_free(const char *s, size_t len, int64_t *out)
{
	struct scan sc = { s, s + len };
	struct tm7 tm;
	int64_t v, a;
	const char *start;
	int off = 0, n;

	memset(&tm, 0, sizeof tm);
	spaces(&sc);
	start = sc.p;
	if (digits(&sc, 1, 14, &a) == -1)
		return -1;
	n = (int)(sc.p - start);
	if (n == 14 || n == 12) {
		sc.p = start;
		digits(&sc, 4, 4, &tm.y);
		digits(&sc, 2, 2, &v), tm.mo = (int)v;
		digits(&sc, 2, 2, &v), tm.d = (int)v;
		digits(&sc, 2, 2, &v), tm.h = (int)v;
		digits(&sc, 2, 2, &v), tm.mi = (int)v;
		if (n == 14)
			digits(&sc, 2, 2, &v), tm.s = (int)v;
		if (peek(&sc) == '.' || peek(&sc) == ',') {
			sc.p++;
			if (!isdigit(peek(&sc)))
				return -1;
			fraction(&sc, &tm.frac);
		}
	} else if (n == 4 && peek(&sc) == '-') {
		tm.y = a;
		sc.p++;
		if (digits(&sc, 1, 2, &v) == -1 || peek(&sc) != '-')
			return -1;
		tm.mo = (int)v;
		sc.p++;
		if (digits(&sc, 1, 2, &v) == -1)
			return -1;
		tm.d = (int)v;
		if (peek(&sc) == 'T' || peek(&sc) == 't') {
			sc.p++;
			if (timeofday(&sc, &tm) == -1)
				return -1;
		} else {
			spaces(&sc);
			if (isdigit(peek(&sc)) && timeofday(&sc, &tm) == -1)
				return -1;
		}
	} else if (n <= 2 && peek(&sc) == '/') {
		tm.mo = (int)a;
		sc.p++;
		if (digits(&sc, 1, 2, &v) == -1 || peek(&sc) != '/')
			return -1;
		tm.d = (int)v;
		sc.p++;
		if (digits(&sc, 4, 4, &tm.y) == -1)
			return -1;
		spaces(&sc);
		if (isdigit(peek(&sc)) && timeofday(&sc, &tm) == -1)
			return -1;
	} else
		return -1;
	if (zone(&sc, &off) == -1)
		return -1;
	spaces(&sc);
	if (sc.p != sc.e)
		return -1;
	return to_ticks(&tm, off, out);
}

/*
 * The custom format string of a one-letter standard format (en-US, the
 * culture of Microsoft's examples), or fmt itself.
 */
static const char *
standard(const char *fmt, size_t *len)
{
	static const struct { char c; const char *f; } std[] = {
		{ 'd', "M/d/yyyy" }, { 'D', "dddd, MMMM d, yyyy" },
		{ 'f', "dddd, MMMM d, yyyy h:mm tt" },
		{ 'F', "dddd, MMMM d, yyyy h:mm:ss tt" },
		{ 'g', "M/d/yyyy h:mm tt" }, { 'G', "M/d/yyyy h:mm:ss tt" },
		{ 'm', "MMMM d" }, { 'M', "MMMM d" },
		{ 'o', "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK" },
		{ 'O', "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK" },
		{ 'r', "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'" },
		{ 'R', "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'" },
		{ 's', "yyyy'-'MM'-'dd'T'HH':'mm':'ss" },
		{ 't', "h:mm tt" }, { 'T', "h:mm:ss tt" },
		{ 'u', "yyyy'-'MM'-'dd HH':'mm':'ss'Z'" },
		{ 'U', "dddd, MMMM d, yyyy h:mm:ss tt" },
		{ 'y', "MMMM yyyy" }, { 'Y', "MMMM yyyy" },
	};
	size_t i;

	if (*len != 1)
		return fmt;
	for (i = 0; i < sizeof std / sizeof *std; i++)
		if (std[i].c == fmt[0]) {
			*len = strlen(std[i].f);
			return std[i].f;
		}
	return NULL;
}

/* The length of the run of fmt[i] at i. */
static size_t
run(const char *fmt, size_t len, size_t i)
{
	size_t k = i;

	while (k < len && fmt[k] == fmt[i])
		k++;
	return k - i;
}

/* A name of list (full, or its first three letters when abbr). */
static int
name(struct scan *sc, const char *const *list, int n, int abbr, int *out)
{
	int i;
	size_t l;

	for (i = 0; i < n; i++) {
		l = abbr ? 3 : strlen(list[i]);
		if ((size_t)(sc->e - sc->p) >= l &&
		    strncasecmp(sc->p, list[i], l) == 0) {
			sc->p += l;
			*out = i;
			return 0;
		}
	}
	return -1;
}

/*
 * Reads s by the .NET custom format fmt (DateTime.ParseExact, without a
 * culture's surprises): 1 when it matches, 0 when not, -1 with *why set
 * when fmt itself is bad.  Leading and trailing blanks are allowed, as
 * the provisioning service's default DateTimeStyles allow them.
 */
static int
parse_exact(const char *s, size_t slen, const char *fmt, size_t flen,
    int64_t *out, const char **why)
{
	struct scan sc = { s, s + slen };
	struct tm7 tm;
	int64_t v;
	int off = 0, pm = -1, k, yy = 0, h12 = 0;
	size_t i, n;
	char c, q;

	memset(&tm, 0, sizeof tm);
	tm.y = 1, tm.mo = 1, tm.d = 1;
	if ((fmt = standard(fmt, &flen)) == NULL) {
		*why = "unknown standard format";
		return -1;
	}
	spaces(&sc);
	for (i = 0; i < flen; i += n) {
		c = fmt[i];
		n = run(fmt, flen, i);
		switch (c) {
		case 'y':
			if (n <= 2) {
				if (digits(&sc, n, 2, &v) == -1)
					return 0;
				tm.y = v;
				yy = 1;
			} else if (digits(&sc, (int)n, (int)n, &tm.y) == -1)
				return 0;
			break;
		case 'M':
			if (n >= 3) {
				if (name(&sc, monthname, 12, n == 3, &k) == -1)
					return 0;
				tm.mo = k + 1;
				break;
			}
			/* FALLTHROUGH */
		case 'd': case 'h': case 'H': case 'm': case 's':
			if (c == 'd' && n >= 3) {
				if (name(&sc, dayname, 7, n == 3, &k) == -1)
					return 0;
				break;
			}
			if (n > 2) {
				*why = "too many pattern letters";
				return -1;
			}
			if (digits(&sc, (int)n, 2, &v) == -1)
				return 0;
			if (c == 'M')
				tm.mo = (int)v;
			else if (c == 'd')
				tm.d = (int)v;
			else if (c == 'h' || c == 'H')
				tm.h = (int)v, h12 = c == 'h';
			else if (c == 'm')
				tm.mi = (int)v;
			else
				tm.s = (int)v;
			break;
		case 'f': case 'F':
			if (n > 7) {
				*why = "more than 7 fraction digits";
				return -1;
			}
			{
				const char *p0 = sc.p;

				if (digits(&sc, c == 'f' ? (int)n : 0, (int)n,
				    &v) == -1)
					return 0;
				for (k = (int)(sc.p - p0); k < 7; k++)
					v *= 10;
				tm.frac = v;
			}
			break;
		case 't':
			if (ampm(&sc, &pm, n >= 2) == -1)
				return 0;
			break;
		case 'z':
		case 'K':
			if (c == 'z' && peek(&sc) != '+' && peek(&sc) != '-')
				return 0;
			if (zone(&sc, &off) == -1)
				return 0;
			break;
		case '\'': case '"':
			q = c;
			for (n = 1; i + n < flen && fmt[i + n] != q; n++)
				if (peek(&sc) != fmt[i + n])
					return 0;
				else
					sc.p++;
			if (i + n == flen) {
				*why = "a quote is not closed";
				return -1;
			}
			n++;
			break;
		case '\\':
			if (i + 1 == flen) {
				*why = "'\\' at the end";
				return -1;
			}
			if (peek(&sc) != fmt[i + 1])
				return 0;
			sc.p++;
			n = 2;
			break;
		case '%':
			n = 1;
			break;
		default:
			for (k = 0; k < (int)n; k++) {
				if (peek(&sc) != c)
					return 0;
				sc.p++;
			}
		}
	}
	spaces(&sc);
	if (sc.p != sc.e)
		return 0;
	if (yy)
		tm.y += tm.y < 50 ? 2000 : 1900;       /* .NET's 2049 rule */
	if (h12 && hour12(&tm, pm == 1) == -1)
		return 0;
	if (!h12 && pm == 1 && tm.h < 12)
		tm.h += 12;
	return to_ticks(&tm, off, out) == 0;
}

/* ------------------------------------------------------------ formatting */

/*
 * Appends ticks t formatted by the .NET custom format fmt (or a one-letter
 * standard one) to b.  Returns 0, -1 with *why set when fmt is bad, -2
 * when out of memory.
 */
static int
format(struct sync_buf *b, int64_t t, const char *fmt, size_t flen,
    const char **why)
{
	struct tm7 tm;
	size_t i, n, k;
	int r = 0, h12;
	char c, q, d[8];

	civil_from_ticks(t, &tm);
	h12 = tm.h % 12 ? tm.h % 12 : 12;
	if ((fmt = standard(fmt, &flen)) == NULL) {
		*why = "unknown standard format";
		return -1;
	}
	for (i = 0; i < flen && r == 0; i += n) {
		c = fmt[i];
		n = run(fmt, flen, i);
		switch (c) {
		case 'd':
			if (n <= 2)
				r = sync_buf_addf(b, "%0*d", (int)n, tm.d);
			else
				r = sync_buf_addf(b, "%.*s", n == 3 ? 3 : 9,
				    dayname[tm.dow]);
			break;
		case 'M':
			if (n <= 2)
				r = sync_buf_addf(b, "%0*d", (int)n, tm.mo);
			else
				r = sync_buf_addf(b, "%.*s", n == 3 ? 3 : 9,
				    monthname[tm.mo - 1]);
			break;
		case 'y':
			if (n <= 2)
				r = sync_buf_addf(b, "%0*d", (int)n,
				    (int)(tm.y % 100));
			else
				r = sync_buf_addf(b, "%0*lld", (int)n,
				    (long long)tm.y);
			break;
		case 'h': case 'H': case 'm': case 's':
			r = sync_buf_addf(b, "%0*d", n >= 2 ? 2 : 1,
			    c == 'h' ? h12 : c == 'H' ? tm.h : c == 'm' ?
			    tm.mi : tm.s);
			break;
		case 'f': case 'F':
			if (n > 7) {
				*why = "more than 7 fraction digits";
				return -1;
			}
			snprintf(d, sizeof d, "%07lld", (long long)tm.frac);
			k = n;
			if (c == 'F')
				while (k > 0 && d[k - 1] == '0')
					k--;
			if (k == 0 && b->len > 0 && b->p[b->len - 1] == '.')
				b->len--;       /* .NET drops the point too */
			else
				r = sync_buf_add(b, d, k);
			break;
		case 't':
			r = sync_buf_add(b, tm.h < 12 ? "AM" : "PM",
			    n >= 2 ? 2 : 1);
			break;
		case 'z':
			r = sync_buf_adds(b, n == 1 ? "+0" : n == 2 ? "+00" :
			    "+00:00");
			break;
		case 'K':
			r = sync_buf_adds(b, "Z");
			break;
		case 'g':
			r = sync_buf_adds(b, "A.D.");
			break;
		case '\'': case '"':
			q = c;
			for (k = i + 1; k < flen && fmt[k] != q; k++)
				;
			if (k == flen) {
				*why = "a quote is not closed";
				return -1;
			}
			r = sync_buf_add(b, fmt + i + 1, k - i - 1);
			n = k - i + 1;
			break;
		case '\\':
			if (i + 1 == flen) {
				*why = "'\\' at the end";
				return -1;
			}
			r = sync_buf_add(b, fmt + i + 1, 1);
			n = 2;
			break;
		case '%':
			n = 1;
			break;
		default:
			r = sync_buf_add(b, fmt + i, n);
		}
	}
	if (r == 0 && b->len > EXPR_MAXVALUE)
		return -2;
	return r == -1 ? -2 : 0;
}

/* ------------------------------------------------------------ values */

/* Pushes a date: ticks, and its text form. */
static int
push_date(struct ectx *c, const struct node *n, struct val *out, int64_t t)
{
	struct sync_buf b = { NULL, 0, 0 };
	const char *why = NULL;
	int r;

	if (format(&b, t, "M/d/yyyy h:mm:ss tt", 19, &why) != 0) {
		sync_buf_release(&b);
		return rterr(c, n, "out of memory");
	}
	r = val_push(c, out, V_DATE, b.p, b.len, t);
	sync_buf_release(&b);
	return r;
}

/* ticks from FILETIME ft, as DateTime.FromFileTimeUtc */
static int
from_filetime(struct ectx *c, const struct node *n, int64_t ft, int64_t *t)
{
	if (ft < 0 || ft > MAXTICKS - FILETIME0)
		return rterr(c, n, "%s: %lld is not a date: FILETIME values "
		    "go from 0 (1601-01-01) to 2650467743999999999 "
		    "(9999-12-31)%s", n->fn->name, (long long)ft,
		    ft == INT64_MAX ? "; accountExpires uses "
		    "9223372036854775807 for never" : "");
	*t = ft + FILETIME0;
	return 0;
}

/*
 * The ticks of a date argument: a date, a number or a string of digits
 * (FILETIME, as DateFromNum reads it), or a string CDate reads.
 */
static int
item_date(struct ectx *c, const struct node *n, const struct item *it,
    int64_t *t)
{
	int64_t v;

	switch (it->t) {
	case V_DATE:
		*t = it->num;
		return 0;
	case V_NUM:
		return from_filetime(c, n, it->num, t);
	case V_STR:
	case V_REF:
		if (it->len > 0 && strspn(it->p, "0123456789") == it->len &&
		    parse_num(it->p, it->len, &v) == 0)
			return from_filetime(c, n, v, t);
		if (!memchr(it->p, 0, it->len) &&
		    parse_free(it->p, it->len, t) == 0)
			return 0;
		return rterr(c, n, "%s: '%.*s' is not a date", n->fn->name,
		    it->len > 64 ? 64 : (int)it->len, it->p);
	case V_BOOL:
		return rterr(c, n, "%s: a Boolean is not a date", n->fn->name);
	case V_BIN:
		break;
	}
	return rterr(c, n, "%s: a binary value is not a date", n->fn->name);
}

/* The text of a string argument (format, interval), NUL-terminated. */
static int
item_text(struct ectx *c, const struct node *n, const struct item *it,
    struct sync_buf *b)
{
	sync_buf_reset(b);
	if (item_str(c, n, it, b) == -1)
		return -1;
	if (sync_buf_add(b, "", 1) == -1)
		return sync_errf(c->err, "out of memory");
	b->len--;
	if (memchr(b->p, 0, b->len))
		return rterr(c, n, "%s: a NUL byte in an argument",
		    n->fn->name);
	return 0;
}

int
f_cdate(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	int64_t t;

	(void)na;
	if (item_date(c, n, a[0], &t) == -1)
		return -1;
	return push_date(c, n, out, t);
}

int
f_datefromnum(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	int64_t v, t = 0;

	(void)na;
	if (item_num(c, n, a[0], "DateFromNum", &v) == -1 ||
	    from_filetime(c, n, v, &t) == -1)
		return -1;
	return push_date(c, n, out, t);
}

int
f_numfromdate(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	int64_t t;

	(void)na;
	if (item_date(c, n, a[0], &t) == -1)
		return -1;
	if (t < FILETIME0)
		return rterr(c, n, "NumFromDate: '%s' is before 1601-01-01, "
		    "where FILETIME starts", a[0]->p ? a[0]->p : "");
	return val_push(c, out, V_NUM, NULL, 0, t - FILETIME0);
}

/* The interval letters of DateAdd and DateDiff; -1 for none. */
enum { I_YEAR, I_QUARTER, I_MONTH, I_DAYOFYEAR, I_DAY, I_WEEKDAY, I_WEEK,
	I_HOUR, I_MINUTE, I_SECOND };

static int
interval(struct ectx *c, const struct node *n, const struct item *it)
{
	static const char *const names[] = { "yyyy", "q", "m", "y", "d", "w",
	    "ww", "h", "n", "s" };
	struct sync_buf b = { NULL, 0, 0 };
	size_t i;

	if (item_text(c, n, it, &b) == -1) {
		sync_buf_release(&b);
		return -1;
	}
	for (i = 0; i < sizeof names / sizeof *names; i++)
		if (strcasecmp(b.p, names[i]) == 0) {
			sync_buf_release(&b);
			return (int)i;
		}
	rterr(c, n, "%s: unknown interval '%.*s' (yyyy, q, m, y, d, w, ww, "
	    "h, n or s)", n->fn->name, b.len > 16 ? 16 : (int)b.len, b.p);
	sync_buf_release(&b);
	return -1;
}

/* .NET AddMonths: the day is clamped to the end of the new month. */
static int
add_months(int64_t t, int64_t months, int64_t *out)
{
	struct tm7 tm;
	int64_t m;

	if (months > 120000 || months < -120000)
		return -1;
	civil_from_ticks(t, &tm);
	m = tm.y * 12 + (tm.mo - 1) + months;
	tm.y = m / 12;
	tm.mo = (int)(m % 12) + 1;
	if (tm.y < 1 || tm.y > 9999)
		return -1;
	if (tm.d > mdays(tm.y, tm.mo))
		tm.d = mdays(tm.y, tm.mo);
	return to_ticks(&tm, 0, out);
}

int
f_dateadd(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	static const int64_t unit[] = { 0, 0, 0, TPD, TPD, TPD, 7 * TPD,
	    3600 * TPS, 60 * TPS, TPS };
	int64_t v, t, r, d;
	int iv;

	(void)na;
	if ((iv = interval(c, n, a[0])) == -1 ||
	    item_num(c, n, a[1], "DateAdd", &v) == -1 ||
	    item_date(c, n, a[2], &t) == -1)
		return -1;
	if (iv <= I_MONTH) {
		if (add_months(t, v * (iv == I_YEAR ? 12 : iv == I_QUARTER ?
		    3 : 1), &r) == -1)
			goto range;
	} else if (__builtin_mul_overflow(v, unit[iv], &d) ||
	    __builtin_add_overflow(t, d, &r) || r < 0 || r > MAXTICKS)
		goto range;
	return push_date(c, n, out, r);
range:
	return rterr(c, n, "DateAdd: the result is outside the years 1 to "
	    "9999");
}

/*
 * Microsoft.VisualBasic's DateDiff, which the provisioning service's
 * examples follow: whole units of the difference for d, h, n, s and w,
 * boundaries crossed for yyyy, q, m, and Sundays crossed for ww.
 */
int
f_datediff(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	struct tm7 x, y;
	int64_t t1, t2, d, r;
	int iv;

	(void)na;
	if ((iv = interval(c, n, a[0])) == -1 ||
	    item_date(c, n, a[1], &t1) == -1 ||
	    item_date(c, n, a[2], &t2) == -1)
		return -1;
	civil_from_ticks(t1, &x);
	civil_from_ticks(t2, &y);
	d = t2 - t1;
	switch (iv) {
	case I_YEAR:
		r = y.y - x.y;
		break;
	case I_QUARTER:
		r = (y.y - x.y) * 4 + (y.mo - 1) / 3 - (x.mo - 1) / 3;
		break;
	case I_MONTH:
		r = (y.y - x.y) * 12 + y.mo - x.mo;
		break;
	case I_DAYOFYEAR:
	case I_DAY:
		r = d / TPD;
		break;
	case I_WEEKDAY:
		r = d / TPD / 7;
		break;
	case I_WEEK:
		r = ((t2 - y.dow * TPD) - (t1 - x.dow * TPD)) / TPD / 7;
		break;
	case I_HOUR:
		r = d / (3600 * TPS);
		break;
	case I_MINUTE:
		r = d / (60 * TPS);
		break;
	default:
		r = d / TPS;
	}
	return val_push(c, out, V_NUM, NULL, 0, r);
}

/*
 * FormatDateTime: by the argument count, Entra Connect's (date, format),
 * Cloud Sync's (source, inputFormat, outputFormat) or the provisioning
 * service's (source, dateTimeStyles, inputFormat, outputFormat).
 */
int
f_formatdatetime(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	struct sync_buf in = { NULL, 0, 0 }, f = { NULL, 0, 0 },
	    b = { NULL, 0, 0 };
	const char *why = NULL;
	int64_t t = 0;
	int r = -1, m;

	if (na == 2) {
		if (item_date(c, n, a[0], &t) == -1)
			goto done;
	} else {
		if (item_text(c, n, a[0], &in) == -1 ||
		    item_text(c, n, a[na - 2], &f) == -1)
			goto done;
		if ((m = parse_exact(in.p, in.len, f.p, f.len, &t,
		    &why)) == -1) {
			rterr(c, n, "FormatDateTime: bad input format '%s': "
			    "%s", f.p, why);
			goto done;
		}
		if (m == 0) {
			rterr(c, n, "FormatDateTime: '%.*s' does not match "
			    "the input format '%s'", in.len > 64 ? 64 :
			    (int)in.len, in.p, f.p);
			goto done;
		}
	}
	if (item_text(c, n, a[na - 1], &f) == -1)
		goto done;
	if ((m = format(&b, t, f.p, f.len, &why)) == -1) {
		rterr(c, n, "FormatDateTime: bad format '%s': %s", f.p, why);
		goto done;
	}
	if (m == -2) {
		rterr(c, n, "FormatDateTime: out of memory or value too long");
		goto done;
	}
	r = val_push(c, out, V_STR, b.p ? b.p : "", b.len, 0);
done:
	sync_buf_release(&in);
	sync_buf_release(&f);
	sync_buf_release(&b);
	return r;
}

/*
 * The dateTimeStyles argument of the 4-argument form may be left empty
 * (", ,"), which is NULL: it is then "" rather than making the result
 * NULL.  The styles are checked and otherwise ignored: every date is UTC
 * and blanks around the source are always allowed.
 */
int
c_formatdatetime(struct ectx *c, const struct node *n, struct val *out)
{
	static const char *const styles[] = { "None", "AllowLeadingWhite",
	    "AllowTrailingWhite", "AllowInnerWhite", "AllowWhiteSpaces",
	    "NoCurrentDateDefault", "AdjustToUniversal", "AssumeLocal",
	    "AssumeUniversal", "RoundtripKind", NULL };
	struct val v[4];
	size_t i, k;
	int r;

	for (i = 0; i < n->nargs; i++)
		v[i].kind = K_NULL, v[i].it = NULL, v[i].n = v[i].cap = 0;
	for (i = 0; i < n->nargs; i++) {
		if ((r = expr_eval(c, n->args[i], &v[i])) == -1)
			goto done;
		if (v[i].kind == K_IGNORE) {
			val_null(out, K_IGNORE);
			goto done;
		}
	}
	if (n->nargs == 4) {
		if (v[1].n == 0 && (r = val_push(c, &v[1], V_STR, "", 0,
		    0)) == -1)
			goto done;
		for (k = 0; k < v[1].n; k++) {
			const char *p = v[1].it[k].p, *e;
			size_t l;

			if (v[1].it[k].t != V_STR)
				continue;
			for (; p && *p; p = *e ? e + 1 : e) {
				p += strspn(p, " ,|");
				e = p + strcspn(p, " ,|");
				if ((l = (size_t)(e - p)) == 0)
					continue;
				for (i = 0; styles[i]; i++)
					if (strlen(styles[i]) == l &&
					    strncasecmp(styles[i], p, l) == 0)
						break;
				if (styles[i] == NULL) {
					r = rterr(c, n, "FormatDateTime: "
					    "unknown DateTimeStyles '%.*s'",
					    (int)(l > 32 ? 32 : l), p);
					goto done;
				}
			}
		}
	}
	r = expr_map(c, n, v, n->nargs, out);
done:
	for (i = 0; i < n->nargs; i++)
		val_release(&v[i]);
	return r;
}

int
c_now(struct ectx *c, const struct node *n, struct val *out)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return rterr(c, n, "Now: cannot read the clock");
	return push_date(c, n, out, UNIX0 + (int64_t)ts.tv_sec * TPS +
	    ts.tv_nsec / 100);
}

/* IsDate: True when x has values and each is a date to CDate. */
int
c_isdate(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	struct sync_err quiet;
	struct sync_err *keep = c->err;
	size_t i;
	int64_t t;
	int ok;

	if (expr_eval(c, n->args[0], &v) == -1)
		return -1;
	if (v.kind == K_IGNORE) {
		val_release(&v);
		val_null(out, K_IGNORE);
		return 0;
	}
	ok = v.n > 0;
	c->err = &quiet;
	for (i = 0; i < v.n && ok; i++)
		ok = item_date(c, n, &v.it[i], &t) == 0;
	c->err = keep;
	val_release(&v);
	return val_push(c, out, V_BOOL, NULL, 0, ok);
}
