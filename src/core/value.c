/* value.c — small helpers on values and names; see value.h. */
#include "core/value.h"

double tally_value_as_double(const tally_value *v)
{
    switch (v->kind) {
    case TALLY_VALUE_INT: return (double)v->u.i;
    case TALLY_VALUE_FLOAT: return v->u.f;
    default: return 0;
    }
}

size_t tally_utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) /* count lead bytes, skip continuations */
            n++;
    return n;
}

bool tally_is_identifier(const char *s, size_t len)
{
    if (len == 0 || len > 63)
        return false;
    char c = s[0];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
        return false;
    for (size_t i = 1; i < len; i++) {
        c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}
