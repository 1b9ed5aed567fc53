/* datetime: RFC 3339 text <-> UTC milliseconds since 1970-01-01T00:00:00Z,
 * the form `datetime` fields are stored in. Pure arithmetic on the proleptic
 * Gregorian calendar: no locale, no TZ, no libc time conversion. */
#ifndef TALLY_CORE_DATETIME_H
#define TALLY_CORE_DATETIME_H

#include <stddef.h>
#include <stdint.h>

/* Bounds of the representable range: 0000-01-01T00:00:00.000Z and
 * 9999-12-31T23:59:59.999Z. */
#define TALLY_DATETIME_MIN_MS (-62167219200000LL)
#define TALLY_DATETIME_MAX_MS (253402300799999LL)

/* Parses RFC 3339 ("2026-11-23T15:07:41Z", "2026-11-23T15:07:41.5+01:00";
 * lower-case t/z accepted, 'T' or ' ' separator, a fraction of 1-9 digits
 * truncated to ms). Returns 0 and sets *out_ms, or -1 on anything malformed
 * (bad month/day incl. Feb 29 on non-leap years, hour>23, minute>59,
 * second>60 (60, a leap second, is clamped to 59), offset hour>23 or
 * minute>59, missing offset, trailing garbage). Years 0000-9999; an offset
 * that moves the UTC instant outside TALLY_DATETIME_MIN_MS..MAX_MS is also
 * refused, so whatever parses can be formatted. s need not be NUL-terminated. */
int tally_datetime_parse(const char *s, size_t len, int64_t *out_ms);

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (always 3 fraction digits, UTC) plus NUL
 * into out (at least TALLY_DATETIME_MAX bytes); returns the length (24) or 0
 * if ms is out of the 0000..9999 year range (out is then the empty string). */
#define TALLY_DATETIME_MAX 32
size_t tally_datetime_format(int64_t ms, char *out);

/* Current wall-clock time in UTC ms (CLOCK_REALTIME). */
int64_t tally_now_ms(void);

#endif
