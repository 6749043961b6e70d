/*
** test_flags.c: command lines from flag tables (runtime/rt_flags.c), the
** table that rrc and the AOT trainers share (rt_cli_flags) and rrc's own
** (rrc_flags, compiler/driver.c): parsing, checking values, and --help
** made from the same rows.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
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

/* Whether a row of rt_cli_flags or rrc_flags named `name` is rrc command cmd's. */
static bool rrc_takes(const char *name, int cmd) {
    for (int r = 0; r < rt_cli_flags.n; r++)
        if (!strcmp(rt_cli_flags.rows[r].name, name) && (rt_cli_flags.rows[r].cmds >> cmd & 1)) return true;
    for (int r = 0; r < rrc_flags.n; r++)
        if (!strcmp(rrc_flags.rows[r].name, name) && (rrc_flags.rows[r].cmds >> cmd & 1)) return true;
    return false;
}

/* rrc's own table: `rrc NAME --help` lists each flag that rrc_flags' rows
   give command NAME, with its value's name, and none that no row gives it. */
TEST(flags_rrc_help_from_the_table) {
    int ncmds = 0;
    for (int cmd = 0; cmd < RRC_CMD_END; cmd++) {
        const char *name = driver_cmd_name((RrcCmd)cmd);
        if (!name) continue;
        ncmds++;
        char line[512], *out = NULL;
        snprintf(line, sizeof line, "%s %s --help", test_rrc(), name);
        int rc = test_run(line, &out, NULL);
        CHECKF(rc == 0 && out && !strncmp(out, "usage: rrc ", 11) && strstr(out, "  -h, --help "), "rrc %s --help: exit %d: %s",
               name, rc, out ? out : "");
        for (int r = 0; out && r < rrc_flags.n; r++) {
            const rt_flag *x = &rrc_flags.rows[r];
            bool takes = x->cmds >> cmd & 1;
            char want[64];
            if (takes) snprintf(want, sizeof want, "  %s%s%s%s ", rt_flag_dashes(x), x->name, x->arg ? " " : "", x->arg ? x->arg : "");
            else snprintf(want, sizeof want, "  %s%s ", rt_flag_dashes(x), x->name);
            bool listed = strstr(out, want) != NULL;
            CHECKF(takes ? listed : rrc_takes(x->name, cmd) || !listed, "rrc %s --help: %s%s is %slisted", name,
                   rt_flag_dashes(x), x->name, listed ? "" : "not ");
        }
        free(out);
    }
    CHECKF(ncmds == 13, "%d commands", ncmds);
    for (int r = 0; r < rrc_flags.n; r++) {
        const rt_flag *x = &rrc_flags.rows[r];
        CHECKF(x->help && *x->help, "--%s has no help", x->name);
        CHECKF(x->id >= RT_F_FIRST_FREE, "--%s has id %d, one of the runtime's", x->name, x->id);
        CHECKF(!x->kind == !x->arg, "--%s: a value needs a name in --help, and only a value", x->name);
        CHECKF(x->cmds && x->cmds < 1u << RRC_CMD_END && !(x->cmds & (1u << RT_CMD_GRAD | 1u << RT_CMD_BENCH)),
               "--%s: commands %#x are not rrc's", x->name, x->cmds);
        /* two rows of a name never share a command */
        for (int q = 0; q < r; q++)
            CHECKF(strcmp(rrc_flags.rows[q].name, x->name) || !(rrc_flags.rows[q].cmds & x->cmds), "--%s: two rows for one command",
                   x->name);
    }
}

/* A short flag ("-o DIR", "-o=DIR") parses as its row; its values point
   into the caller's argv; rrc's own errors: a second SPEC. */
TEST(flags_rrc_short_flag_and_specs) {
    char a0[] = "-o", a1[] = "dir", a2[] = "spec", a3[] = "-o=other", a4[] = "--data", a5[] = "-o";
    char *argv[] = {a0, a1, a2, a3, a4, a5};
    rt_args a;
    REQUIRE(driver_parse(RRC_CMD_COMPILE, 6, argv, 1, NULL, &a) == -1);
    CHECK(a.nopts == 3 && a.npos == 1 && a.pos[0] == a2);
    CHECK(a.opts[0].flag->id == RRC_F_OUTDIR && a.opts[0].value == a1);
    CHECK(a.opts[1].flag->id == RRC_F_OUTDIR && a.opts[1].value == a3 + 3);
    CHECK(a.opts[2].flag->id == RRC_F_DATA && a.opts[2].value == a5);   /* a value, not a flag */
    rt_args_free(&a);
    char b0[] = "one", b1[] = "two", b2[] = "-o", b3[] = "x";
    char *bv[] = {b0, b1, b2, b3};
    CHECK(driver_parse(RRC_CMD_COMPILE, 2, bv, 1, NULL, &a) == EXIT_USAGE);   /* two SPECs */
    CHECK(driver_parse(RRC_CMD_SPECS, 1, bv, 0, NULL, &a) == EXIT_USAGE);     /* specs takes none */
    CHECK(driver_parse(RRC_CMD_DUMP_IR, 2, bv + 2, 1, NULL, &a) == EXIT_USAGE);   /* -o is compile's */
}
