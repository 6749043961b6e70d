/*
** rt_program_json.h: a program's description as JSON (see rt_program_json.c),
** how AOT trainers carry it.
*/
#ifndef RT_PROGRAM_JSON_H
#define RT_PROGRAM_JSON_H

#include <stddef.h>

#include "rt_program.h"

/* train_full, train_last, features, classify, rank_full[0..1], rank_last[0..1] */
enum { RT_PROGRAM_SLOTS = 8 };

/* malloc'd JSON text; fn_index[slot] is the index of the slot's function in
   the array the trainer will hold */
char *rt_program_to_json(const rt_program *p, const int fn_index[RT_PROGRAM_SLOTS]);
/* Parses and validates; entries get fns[fn]. Returns 0, or -1 with a
   message. Free with rt_program_free_parsed. */
int rt_program_from_json(const char *json, const rt_step_fn *fns, int nfns, rt_program *p, char *err, size_t errlen);
void rt_program_free_parsed(rt_program *p);

#endif
