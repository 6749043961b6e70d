/*
** test_flags.c: command lines from flag tables (runtime/rt_flags.c) and
** the table that rrc and the AOT trainers share (rt_cli_flags): parsing,
** checking values, and --help made from the same rows.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cli.h"
#include "rt_flags.h"
#include "test.h"

enum { A_COUNT = 1, A_NAME, A_MODE, A_QUIET, A_RESUME, A_RESUME_ANYWAY, A_OTHER };
static const rt_flag ROWS[] = {
    {"count", A_COUNT, 1, 'i', 1, 10, NULL, NULL, "N", "how many"},
    {"name", A_NAME, 1, 's', 0, 0, NULL, NULL, "S", "a name"},
    {"mode", A_MODE, 1, 'c', 0, 0, "fast|slow", NULL, "M", "speed"},
    {"quiet", A_QUIET, 1, 0, 0, 0, NULL, NULL, NULL, "no output"},
    {"resume", A_RESUME, 1, 's', 0, 0, NULL, NULL, "RUN", "continue"},
    {"resume-anyway", A_RESUME_ANYWAY, 1, 0, 0, 0, NULL, NULL, NULL, "continue all the same"},
    {"other", A_OTHER, 2, 0, 0, 0, NULL, NULL, NULL, "a flag of command 1 only"},
};
static const rt_flag_table TABLE = {ROWS, (int)(sizeof ROWS / sizeof ROWS[0])};

/* Parses the space-separated words of line for command 0. */
static bool parse_line(const char *line, int max_pos, rt_args *a) {
    static char buf[512];
    static char *argv[32];
    snprintf(buf, sizeof buf, "%s", line);
    int argc = 0;
    for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " ")) argv[argc++] = t;
    return rt_flags_parse(&TABLE, 1, 0, "test", argc, argv, max_pos, a);
}

TEST(flags_parse_values_and_order) {
    rt_args a;
    REQUIRE(parse_line("--count 3 --name=x --mode slow --quiet --count=7 pos", 1, &a));
    CHECK(a.nopts == 5 && a.npos == 1 && !a.help && strcmp(a.pos[0], "pos") == 0);
    CHECK(a.opts[0].flag->id == A_COUNT && a.opts[0].ival == 3);
    CHECK(a.opts[1].flag->id == A_NAME && strcmp(a.opts[1].value, "x") == 0);
    CHECK(a.opts[2].flag->id == A_MODE && strcmp(a.opts[2].value, "slow") == 0);
    CHECK(a.opts[3].flag->id == A_QUIET && a.opts[3].value == NULL);
    const rt_opt *last = rt_args_last(&a, A_COUNT);
    CHECK(last && last->ival == 7);
    CHECK(rt_args_last(&a, A_RESUME) == NULL);
    rt_args_free(&a);
    /* a unique prefix names its flag; an exact name wins over a longer one */
    REQUIRE(parse_line("--cou 2 --resume r", 0, &a));
    CHECK(a.nopts == 2 && a.opts[0].flag->id == A_COUNT && a.opts[1].flag->id == A_RESUME);
    rt_args_free(&a);
    REQUIRE(parse_line("-h", 0, &a));
    CHECK(a.help);
    rt_args_free(&a);
    /* a value may start with '-' */
    REQUIRE(parse_line("--name -x", 0, &a));
    CHECK(a.nopts == 1 && strcmp(a.opts[0].value, "-x") == 0);
    rt_args_free(&a);
}

TEST(flags_refuse_bad_command_lines) {
    static const char *bad[] = {
        "--count 0",          /* below the range */
        "--count 11",         /* above */
        "--count 3x",         /* not an integer */
        "--mode medium",      /* not a choice */
        "--mode=",            /* empty */
        "--bogus",            /* unknown */
        "--res x",            /* ambiguous */
        "--quiet=1",          /* takes no value */
        "--count",            /* needs a value */
        "--other",            /* another command's flag */
        "-x",                 /* unknown short flag */
        "a b",                /* one argument too many */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rt_args a;
        bool ok = parse_line(bad[i], 1, &a);
        CHECKF(!ok, "'%s' was accepted", bad[i]);
        if (ok) rt_args_free(&a);
    }
}

/* --help is made from the rows: every flag of the command is in it, with
   its value's name, and no flag of another command. */
TEST(flags_usage_from_the_table) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    REQUIRE(f);
    rt_flags_usage(f, &TABLE, 1, 0);
    fclose(f);
    CHECK(strstr(text, "  --count N           how many\n") != NULL);
    CHECK(strstr(text, "  --quiet             no output\n") != NULL);
    CHECK(strstr(text, "--other") == NULL);
    free(text);
    /* the shared table: each command's --help lists each of its flags */
    for (int cmd = RT_CMD_TRAIN; cmd <= RT_CMD_BENCH; cmd++) {
        text = NULL;
        f = open_memstream(&text, &len);
        REQUIRE(f);
        rt_cli_usage(f, (rt_cli_cmd)cmd, "prog", "", NULL, 0);
        fclose(f);
        for (int r = 0; r < rt_cli_flags.n; r++) {
            const rt_flag *x = &rt_cli_flags.rows[r];
            char want[64];
            bool takes = x->cmds >> cmd & 1, any = false;
            for (int q = 0; q < rt_cli_flags.n; q++)   /* a flag may have a row per meaning */
                any |= !strcmp(rt_cli_flags.rows[q].name, x->name) && (rt_cli_flags.rows[q].cmds >> cmd & 1);
            if (takes) snprintf(want, sizeof want, "  --%s%s%s ", x->name, x->arg ? " " : "", x->arg ? x->arg : "");
            else snprintf(want, sizeof want, "  --%s ", x->name);
            bool listed = strstr(text, want) != NULL;
            CHECKF(takes ? listed : any || !listed, "command %d: --%s is %slisted in --help", cmd, x->name,
                   listed ? "" : "not ");
            CHECKF(x->help && *x->help, "--%s has no help", x->name);
            CHECKF(x->id > 0 && x->id < RT_F_FIRST_FREE, "--%s has id %d", x->name, x->id);
        }
        free(text);
    }
}

/* A parsed option written back (how rrc passes flags on to the runtime)
   parses to the same option. */
TEST(flags_pass_on_round_trip) {
    rt_args a, b;
    REQUIRE(parse_line("--name=a=b --quiet --mode fast", 0, &a));
    char *argv[3];
    for (int i = 0; i < 3; i++) argv[i] = rt_opt_text(&a.opts[i]);
    CHECK(strcmp(argv[0], "--name=a=b") == 0 && strcmp(argv[1], "--quiet") == 0 && strcmp(argv[2], "--mode=fast") == 0);
    REQUIRE(rt_flags_parse(&TABLE, 1, 0, "test", 3, argv, 0, &b));
    CHECK(b.nopts == 3 && strcmp(b.opts[0].value, "a=b") == 0 && b.opts[1].flag->id == A_QUIET);
    rt_args_free(&b);
    for (int i = 0; i < 3; i++) free(argv[i]);
    rt_args_free(&a);
}
