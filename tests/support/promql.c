/* The metric names of a PromQL expression (see promql.h). */
#include "promql.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static int ident_start(char c) {
    return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static int ident_char(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* Past the string literal that starts at s (quote ", ' or `); NULL if it does not end. */
static const char *skip_string(const char *s) {
    char q = *s++;
    for (; *s; s++) {
        if (*s == '\\' && q != '`' && s[1])
            s++;
        else if (*s == q)
            return s + 1;
    }
    return NULL;
}

/* Past the bracket that closes the one at s ({, [ or ( ), with strings inside skipped; NULL if it
 * does not close. */
static const char *skip_group(const char *s) {
    char open = *s, close = open == '{' ? '}' : open == '[' ? ']' : ')';
    int depth = 0;
    while (*s) {
        if (*s == '"' || *s == '\'' || *s == '`') {
            s = skip_string(s);
            if (!s)
                return NULL;
            continue;
        }
        if (*s == open)
            depth++;
        else if (*s == close && --depth == 0)
            return s + 1;
        s++;
    }
    return NULL;
}

/* A matcher list {...} from s to end: reports the value of __name__="..." (an exact match). */
static void name_matchers(const char *s, const char *end, promql_name_fn fn, void *ctx) {
    static const char key[] = "__name__";
    for (const char *p = s; p && p < end; p++) {
        if (*p == '"' || *p == '\'' || *p == '`') {
            p = skip_string(p);
            if (!p)
                return;
            p--;
            continue;
        }
        if (strncmp(p, key, sizeof(key) - 1) != 0 || (p > s && ident_char(p[-1])))
            continue;
        const char *q = p + sizeof(key) - 1;
        while (isspace((unsigned char)*q))
            q++;
        if (q[0] != '=' || q[1] == '~' || q[1] == '=')
            continue;
        q++;
        while (isspace((unsigned char)*q))
            q++;
        if (*q == '"' || *q == '\'') {
            const char *e = skip_string(q);
            if (e && e <= end)
                fn(ctx, q + 1, (size_t)(e - q - 2));
        }
    }
}

static int is_word(const char *s, size_t n, const char *const *words) {
    for (; *words; words++)
        if (strlen(*words) == n && strncasecmp(s, *words, n) == 0)
            return 1;
    return 0;
}

int promql_metric_names(const char *expr, promql_name_fn fn, void *ctx) {
    /* followed by a list of label names in parentheses */
    static const char *const label_lists[] = {"by",         "without",     "on", "ignoring",
                                              "group_left", "group_right", NULL};
    /* binary operators and modifiers spelled as words, and the float literals */
    static const char *const keywords[] = {"and",   "or",  "unless", "bool", "offset",
                                           "atan2", "inf", "nan",    NULL};
    const char *s = expr;
    while (*s) {
        char c = *s;
        if (c == '"' || c == '\'' || c == '`') {
            s = skip_string(s);
            if (!s)
                return -1;
        } else if (c == '{' || c == '[' || c == '(') {
            const char *end = skip_group(s);
            if (!end)
                return -1;
            if (c == '{') {
                name_matchers(s + 1, end - 1, fn, ctx);
                s = end;
            } else if (c == '[') {
                s = end; /* a range or a subquery's durations */
            } else {
                s++; /* the group's contents are an expression too */
            }
        } else if (c == '}' || c == ']') {
            return -1; /* closes nothing */
        } else if (c == '$') {
            /* a Grafana variable: $name, ${name} or ${name:format} */
            s++;
            if (*s == '{') {
                const char *end = strchr(s, '}');
                if (!end)
                    return -1;
                s = end + 1;
            } else {
                while (ident_char(*s))
                    s++;
            }
        } else if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[1]))) {
            /* a number or a duration: 0.99, 1e3, 0x1f, 5m, 1h30m */
            while (isalnum((unsigned char)*s) || *s == '.' || *s == '_' ||
                   ((*s == '+' || *s == '-') && (s[-1] == 'e' || s[-1] == 'E')))
                s++;
        } else if (ident_start(c)) {
            const char *start = s;
            while (ident_char(*s))
                s++;
            size_t n = (size_t)(s - start);
            const char *next = s;
            while (isspace((unsigned char)*next))
                next++;
            static const char *const modifiers[] = {"by", "without", NULL};
            const char *word = next;
            while (ident_char(*word))
                word++;
            const char *after = word;
            while (isspace((unsigned char)*after))
                after++;
            /* sum by (le) (...): an aggregation whose modifier comes before its arguments */
            int modified =
                word > next && is_word(next, (size_t)(word - next), modifiers) && *after == '(';
            if (is_word(start, n, label_lists) && *next == '(') {
                const char *end = skip_group(next);
                if (!end)
                    return -1;
                s = end;
            } else if (*next == '(' || modified || is_word(start, n, keywords)) {
                /* a function or an aggregation (its arguments follow), or a keyword */
            } else {
                fn(ctx, start, n);
            }
        } else {
            s++; /* operators, commas, closing parentheses, white space */
        }
    }
    return 0;
}
