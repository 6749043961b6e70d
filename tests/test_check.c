/*
** test_check.c: `rrc check` (issue 19) passes a bundled spec and a test
** spec, and names the op whose backward rule is wrong when one is planted
** (RRC_TEST_WRONG_BACKWARD doubles the gradients a rule makes).
*/
#include <stdlib.h>
#include <string.h>

#include "test.h"

TEST(check_passes_specs) {
    static const char *const specs[] = {"conv4", "tests/specs/small_conv.lua"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char cmd[1024], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof cmd, "%s check %s", test_rrc(), specs[i]);
        int rc = test_run(cmd, &out, &err);
        CHECKF(rc == 0 && strstr(out, ": passed (") && strstr(out, "worst error"), "%s: exit %d: %s%s", specs[i], rc, out, err);
        free(out);
        free(err);
    }
}

TEST(check_names_a_wrong_backward_rule) {
    static const char *const ops[][2] = {{"relu", "(relu) at "}, {"bn_train", "(bn_train) at "}, {"linear", "(linear) at "}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char cmd[1024], *out = NULL, *err = NULL, want[128];
        snprintf(cmd, sizeof cmd, "RRC_TEST_WRONG_BACKWARD=%s %s check tests/specs/small_conv.lua --engine interp", ops[i][0],
                 test_rrc());
        int rc = test_run(cmd, &out, &err);
        snprintf(want, sizeof want, "the backward rule of op %s gives a wrong gradient", ops[i][0]);
        CHECKF(rc == 1 && strstr(out, ": FAILED (") && strstr(out, want) && strstr(out, ops[i][1]) &&
                   strstr(out, "small_conv.lua:"),
               "planted %s: exit %d: %s%s", ops[i][0], rc, out, err);
        free(out);
        free(err);
    }
}
