/*
** fuzz_program_json.c: libFuzzer target of the program description that
** AOT trainers parse at start (rt_program_from_json in
** runtime/rt_program_json.c).
**
** Input: the JSON text (the trainer holds it NUL-terminated; a NUL inside
** the input ends it). The entry functions are 4 slots, as `rrc compile`
** gives them. When accepted, the program is written back to JSON and that
** text must parse again to the same layout hash.
*/
#include "fuzz_common.h"

#include "rt_program_json.h"

static void fuzz_step_dummy(char *const regions[RT_NREGIONS]) { (void)regions; }

static int fuzz_program_json_one(const uint8_t *data, size_t size, char *err, size_t errlen) {
    char *json = malloc(size + 1);
    if (!json) abort();
    memcpy(json, data, size);
    json[size] = 0;
    rt_step_fn fns[RT_PROGRAM_SLOTS];
    for (int i = 0; i < RT_PROGRAM_SLOTS; i++) fns[i] = fuzz_step_dummy;
    rt_program p;
    err[0] = 0;
    int rc = rt_program_from_json(json, fns, RT_PROGRAM_SLOTS, &p, err, errlen);
    free(json);
    fuzz_check_err(rc, err);
    if (rc != 0) return rc;
    if (!p.train_full || !p.features) abort();
    /* the writer's slot -> function index map: fn of each entry */
    int idx[RT_PROGRAM_SLOTS] = {0, 1, 2, 3, 4, 5, 6, 7};
    char *again = rt_program_to_json(&p, idx);
    if (!again) abort();
    rt_program q;
    char err2[512];
    if (rt_program_from_json(again, fns, RT_PROGRAM_SLOTS, &q, err2, sizeof err2) != 0) {
        fprintf(stderr, "fuzz: the program's own JSON does not parse: %s\n", err2);
        abort();
    }
    if (q.layout_hash != p.layout_hash) abort();
    free(again);
    rt_program_free_parsed(&q);
    rt_program_free_parsed(&p);
    return 0;
}

#ifndef RRC_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    fuzz_program_json_one(data, size, err, sizeof err);
    return 0;
}
#endif
