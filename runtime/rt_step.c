/*
** rt_step.c: small helpers of the step ABI (rt_step.h).
*/
#include "rt_step.h"

const char *rt_region_name(int region) {
    static const char *names[RT_NREGIONS] = {"param", "state", "input", "output", "scratch"};
    return region >= 0 && region < RT_NREGIONS ? names[region] : "?";
}
