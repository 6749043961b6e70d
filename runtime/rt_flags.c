/*
** rt_flags.c: command lines from flag tables (see rt_flags.h).
*/
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "rt_flags.h"

#define FIRST_ID 256   /* getopt_long's val of row k: FIRST_ID + k (above every short option) */

static bool takes(const rt_flag *f, int cmd) { return (f->cmds >> cmd) & 1u; }

static bool is_short(const rt_flag *f) { return f->name[0] == '-' && f->name[1] && !f->name[2]; }

const char *rt_flag_dashes(const rt_flag *f) { return is_short(f) ? "" : "--"; }

/* "a, b or c" from "a|b|c" */
static void choices_text(char *buf, size_t n, const char *choices) {
    size_t k = 0;
    buf[0] = 0;
    for (const char *c = choices; *c && k + 6 < n; c++) {
        if (*c != '|') {
            buf[k++] = *c;
            continue;
        }
        k += (size_t)snprintf(buf + k, n - k, strchr(c + 1, '|') ? ", " : " or ");
    }
    buf[k < n ? k : n - 1] = 0;
}

static bool choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *c = choices; c; c = strchr(c, '|') ? strchr(c, '|') + 1 : NULL)
        if (strncmp(c, v, n) == 0 && (c[n] == 0 || c[n] == '|')) return n > 0;
    return false;
}

/* One flag's value against its row; prints the error. */
static bool value_ok(const char *prog, const rt_flag *f, const char *v, long long *ival) {
    if (f->kind == 'i') {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < f->lo || x > f->hi) {
            fprintf(stderr, "%s: %s%s must be an integer in [%lld, %lld] (got \"%s\")\n", prog, rt_flag_dashes(f), f->name, f->lo,
                    f->hi, v);
            return false;
        }
        *ival = x;
    } else if (f->kind == 'c' && !choice_ok(f->choices, v)) {
        char text[160];
        choices_text(text, sizeof text, f->choices);
        fprintf(stderr, "%s: %s%s must be %s (got \"%s\")%s\n", prog, rt_flag_dashes(f), f->name, text, v, f->why ? f->why : "");
        return false;
    }
    return true;
}

/* Says why getopt_long refused long flag `arg`: unknown, or a prefix of
   several names. */
static void unknown_flag(const char *prog, const rt_flag **rows, int nrows, const char *arg) {
    size_t n = strcspn(arg + 2, "=");
    char names[256] = "";
    int hits = 0;
    for (int k = 0; k < nrows; k++)
        if (strncmp(rows[k]->name, arg + 2, n) == 0 && strlen(names) + strlen(rows[k]->name) + 8 < sizeof names) {
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s--%s", hits ? ", " : "", rows[k]->name);
            hits++;
        }
    if (hits > 1 && n > 0)
        fprintf(stderr, "%s: ambiguous flag '%.*s' (%s)\n", prog, (int)n + 2, arg, names);
    else
        fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", prog, arg);
}

bool rt_flags_parse(const rt_flag_table *tables, int ntables, int cmd, const char *prog, int argc, char **argv,
                    int max_pos, rt_args *out) {
    *out = (rt_args){0};
    int nrows = 0;
    for (int t = 0; t < ntables; t++)
        for (int r = 0; r < tables[t].n; r++) nrows += takes(&tables[t].rows[r], cmd);
    const rt_flag **rows = calloc((size_t)nrows + 1, sizeof *rows);
    struct option *lo = calloc((size_t)nrows + 2, sizeof *lo);
    char **av = calloc((size_t)argc + 2, sizeof *av);
    out->opts = calloc((size_t)argc + 1, sizeof *out->opts);
    out->pos = calloc((size_t)argc + 1, sizeof *out->pos);
    if (!rows || !lo || !av || !out->opts || !out->pos) {
        fprintf(stderr, "%s: out of memory\n", prog);
        free(rows), free(lo), free(av), rt_args_free(out);
        return false;
    }
    int k = 0, nlong = 0;
    char shorts[2 + 2 * 32 + 1] = ":h";   /* getopt's: ':' first, so a missing value is told apart */
    const rt_flag *by_letter[128] = {0};
    for (int t = 0; t < ntables; t++)
        for (int r = 0; r < tables[t].n; r++) {
            const rt_flag *f = &tables[t].rows[r];
            if (!takes(f, cmd)) continue;
            rows[k++] = f;
            if (is_short(f)) {
                unsigned char ch = (unsigned char)f->name[1];
                if (ch < 128 && ch != 'h' && !by_letter[ch] && strlen(shorts) + 3 < sizeof shorts) {
                    by_letter[ch] = f;
                    size_t n = strlen(shorts);
                    shorts[n] = (char)ch;
                    shorts[n + 1] = f->kind ? ':' : 0;
                    shorts[n + 2] = 0;
                }
                continue;
            }
            lo[nlong++] = (struct option){f->name, f->kind ? required_argument : no_argument, NULL, FIRST_ID + k - 1};
        }
    lo[nlong] = (struct option){"help", no_argument, NULL, 'h'};
    av[0] = (char *)prog;
    memcpy(av + 1, argv, (size_t)argc * sizeof *av);   /* getopt_long permutes its copy, not the caller's */
    bool ok = true;
    opterr = 0;
    optind = 0;   /* glibc: start afresh (a command may parse twice) */
    int c;
    while (ok && (c = getopt_long(argc + 1, av, shorts, lo, NULL)) != -1) {
        const rt_flag *f = c >= FIRST_ID ? rows[c - FIRST_ID] : c > 0 && c < 128 && c != 'h' ? by_letter[c] : NULL;
        if (c == 'h') {
            out->help = true;
        } else if (c == ':') {
            const rt_flag *m = optopt >= FIRST_ID ? rows[optopt - FIRST_ID] : optopt > 0 && optopt < 128 ? by_letter[optopt] : NULL;
            fprintf(stderr, "%s: flag %s%s needs a value\n", prog, m ? rt_flag_dashes(m) : "", m ? m->name : "?");
            ok = false;
        } else if (c == '?' || !f) {
            const char *arg = av[optind - 1];
            if (optopt >= FIRST_ID)
                fprintf(stderr, "%s: flag --%s takes no value\n", prog, rows[optopt - FIRST_ID]->name);
            else if (strncmp(arg, "--", 2) == 0)
                unknown_flag(prog, rows, nrows, arg);
            else
                fprintf(stderr, "%s: unknown flag '-%c' (see --help)\n", prog, optopt ? optopt : '?');
            ok = false;
        } else {
            rt_opt *o = &out->opts[out->nopts++];
            o->flag = f;
            /* "-o=V" means V, as the hand-written parsers took it */
            o->value = optarg && is_short(f) && optarg[0] == '=' ? optarg + 1 : optarg;
            if (f->kind) ok = value_ok(prog, f, o->value, &o->ival);
        }
    }
    for (int i = optind; ok && i <= argc; i++) {
        if (out->npos == max_pos) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, av[i]);
            ok = false;
        } else {
            out->pos[out->npos++] = av[i];
        }
    }
    free(rows);
    free(lo);
    free(av);
    if (!ok) rt_args_free(out);
    return ok;
}

void rt_args_free(rt_args *a) {
    free(a->opts);
    free(a->pos);
    *a = (rt_args){0};
}

const rt_opt *rt_args_last(const rt_args *a, int id) {
    for (int i = a->nopts - 1; i >= 0; i--)
        if (a->opts[i].flag->id == id) return &a->opts[i];
    return NULL;
}

#define HELP_COL 22   /* where help text starts */

void rt_flags_usage(FILE *f, const rt_flag_table *tables, int ntables, int cmd) {
    for (int t = 0; t < ntables; t++)
        for (int r = 0; r < tables[t].n; r++) {
            const rt_flag *x = &tables[t].rows[r];
            if (!takes(x, cmd)) continue;
            int w = fprintf(f, "  %s%s%s%s", rt_flag_dashes(x), x->name, x->arg ? " " : "", x->arg ? x->arg : "");
            const char *h = x->help ? x->help : "";
            fprintf(f, "%*s", w < HELP_COL ? HELP_COL - w : 2, "");
            for (; *h; h++) {
                fputc(*h, f);
                if (*h == '\n') fprintf(f, "%*s", HELP_COL, "");
            }
            fputc('\n', f);
        }
}

char *rt_opt_text(const rt_opt *o) {
    size_t n = strlen(o->flag->name) + (o->value ? strlen(o->value) : 0) + 4;
    char *s = malloc(n);
    if (!s) return NULL;
    if (is_short(o->flag)) snprintf(s, n, "%s%s", o->flag->name, o->value ? o->value : "");
    else if (o->value) snprintf(s, n, "--%s=%s", o->flag->name, o->value);
    else snprintf(s, n, "--%s", o->flag->name);
    return s;
}
