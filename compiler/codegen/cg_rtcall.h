/*
** cg_rtcall.h: typed calls from generated code into the runtime.
**
** Every runtime function the generated code calls has one row in
** cg_runtime.def, RTCALL(function, T1, T2, ...), its parameter kinds in
** order. From the row this header makes
**   - call_<function>(CG *cg, a1, a2, ...): emits the call, with C-typed
**     arguments (LLVMValueRef for pointers, int64_t, double for floats), so
**     a call with a wrong number or kind of arguments does not compile;
**   - a static assertion that <function>'s C type, as rt_kernels.h (or
**     rt_pool.h, rt_prof.h) declares it, is exactly the row's, so a changed
**     kernel signature fails the build of rrc instead of corrupting memory
**     at run time.
** Kinds:
**   P float *      C const float *     D const double *    R rt_rows_fn
**   A void **      S rt_prof_site *    I int64_t           F float
**   W double *
*/
#ifndef RRC_CG_RTCALL_H
#define RRC_CG_RTCALL_H

#include "codegen/cg_util.h"
#include "rt_kernels.h"
#include "rt_pool.h"
#include "rt_prof.h"

/* C type of each kind, as the runtime declares it */
#define CGK_CT_P float *
#define CGK_CT_C const float *
#define CGK_CT_D const double *
#define CGK_CT_R rt_rows_fn
#define CGK_CT_A void **
#define CGK_CT_S rt_prof_site *
#define CGK_CT_I int64_t
#define CGK_CT_F float
#define CGK_CT_W double *
/* the argument type of call_<function> */
#define CGK_AT_P LLVMValueRef
#define CGK_AT_C LLVMValueRef
#define CGK_AT_D LLVMValueRef
#define CGK_AT_R LLVMValueRef
#define CGK_AT_A LLVMValueRef
#define CGK_AT_S LLVMValueRef
#define CGK_AT_I int64_t
#define CGK_AT_F double
#define CGK_AT_W LLVMValueRef
/* 'p' pointer, 'i' int64, 'f' float: what cg_call_typed builds */
#define CGK_LL_P 'p'
#define CGK_LL_C 'p'
#define CGK_LL_D 'p'
#define CGK_LL_R 'p'
#define CGK_LL_A 'p'
#define CGK_LL_S 'p'
#define CGK_LL_I 'i'
#define CGK_LL_F 'f'
#define CGK_LL_W 'p'

/* Emits `fn(args)`: kinds[i] is 'p' (args[i].v), 'i' (args[i].i) or 'f'
   (args[i].f, as float). */
typedef union CgArg {
    LLVMValueRef v;
    int64_t i;
    double f;
} CgArg;
void cg_call_typed(CG *cg, const char *fn, int n, const char *kinds, const CgArg *args);

/* ---- the preprocessor's part: a macro applied to each kind of a row,
   numbered from the last (n) down to 1, for rows of up to 20 kinds ---- */
#define CGK_NARGS(...) CGK_NARGS_(__VA_ARGS__, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define CGK_NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, n, ...) n
#define CGK_CAT(a, b) CGK_CAT_(a, b)
#define CGK_CAT_(a, b) a##b
#define CGK_EACH(m, ...) CGK_CAT(CGK_EACH_, CGK_NARGS(__VA_ARGS__))(m, __VA_ARGS__)
#define CGK_EACH_1(m, x) m(1, x)
#define CGK_EACH_2(m, x, ...) m(2, x) CGK_EACH_1(m, __VA_ARGS__)
#define CGK_EACH_3(m, x, ...) m(3, x) CGK_EACH_2(m, __VA_ARGS__)
#define CGK_EACH_4(m, x, ...) m(4, x) CGK_EACH_3(m, __VA_ARGS__)
#define CGK_EACH_5(m, x, ...) m(5, x) CGK_EACH_4(m, __VA_ARGS__)
#define CGK_EACH_6(m, x, ...) m(6, x) CGK_EACH_5(m, __VA_ARGS__)
#define CGK_EACH_7(m, x, ...) m(7, x) CGK_EACH_6(m, __VA_ARGS__)
#define CGK_EACH_8(m, x, ...) m(8, x) CGK_EACH_7(m, __VA_ARGS__)
#define CGK_EACH_9(m, x, ...) m(9, x) CGK_EACH_8(m, __VA_ARGS__)
#define CGK_EACH_10(m, x, ...) m(10, x) CGK_EACH_9(m, __VA_ARGS__)
#define CGK_EACH_11(m, x, ...) m(11, x) CGK_EACH_10(m, __VA_ARGS__)
#define CGK_EACH_12(m, x, ...) m(12, x) CGK_EACH_11(m, __VA_ARGS__)
#define CGK_EACH_13(m, x, ...) m(13, x) CGK_EACH_12(m, __VA_ARGS__)
#define CGK_EACH_14(m, x, ...) m(14, x) CGK_EACH_13(m, __VA_ARGS__)
#define CGK_EACH_15(m, x, ...) m(15, x) CGK_EACH_14(m, __VA_ARGS__)
#define CGK_EACH_16(m, x, ...) m(16, x) CGK_EACH_15(m, __VA_ARGS__)
#define CGK_EACH_17(m, x, ...) m(17, x) CGK_EACH_16(m, __VA_ARGS__)
#define CGK_EACH_18(m, x, ...) m(18, x) CGK_EACH_17(m, __VA_ARGS__)
#define CGK_EACH_19(m, x, ...) m(19, x) CGK_EACH_18(m, __VA_ARGS__)
#define CGK_EACH_20(m, x, ...) m(20, x) CGK_EACH_19(m, __VA_ARGS__)

#define CGK_PARAM(n, k) , CGK_AT_##k a##n
#define CGK_CTYPE(n, k) , CGK_CT_##k
#define CGK_KIND(n, k) CGK_LL_##k,
#define CGK_VALUE_P(n) {.v = a##n}
#define CGK_VALUE_C(n) {.v = a##n}
#define CGK_VALUE_D(n) {.v = a##n}
#define CGK_VALUE_W(n) {.v = a##n}
#define CGK_VALUE_R(n) {.v = a##n}
#define CGK_VALUE_A(n) {.v = a##n}
#define CGK_VALUE_S(n) {.v = a##n}
#define CGK_VALUE_I(n) {.i = a##n}
#define CGK_VALUE_F(n) {.f = a##n}
#define CGK_VALUE(n, k) CGK_VALUE_##k(n),

/* The row's checked C type (first kind apart: no leading comma) and its
   typed emitter. */
#define RTCALL(fn, k1, ...)                                                                                  \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&fn), void (*)(CGK_CT_##k1 CGK_EACH(CGK_CTYPE,    \
                                                                                         __VA_ARGS__))),    \
                   #fn ": its declaration differs from its row in cg_runtime.def");                          \
    static inline void call_##fn(CG *cg CGK_PARAM(0, k1) CGK_EACH(CGK_PARAM, __VA_ARGS__)) {                   \
        static const char kinds[] = {CGK_LL_##k1, CGK_EACH(CGK_KIND, __VA_ARGS__) 0};                         \
        const CgArg args[] = {CGK_VALUE(0, k1) CGK_EACH(CGK_VALUE, __VA_ARGS__)};                           \
        cg_call_typed(cg, #fn, (int)(sizeof args / sizeof args[0]), kinds, args);                            \
    }
#define RTCALL1(fn, k1)                                                                                      \
    _Static_assert(__builtin_types_compatible_p(__typeof__(&fn), void (*)(CGK_CT_##k1)),                     \
                   #fn ": its declaration differs from its row in cg_runtime.def");                          \
    static inline void call_##fn(CG *cg CGK_PARAM(0, k1)) {                                                    \
        static const char kinds[] = {CGK_LL_##k1, 0};                                                       \
        const CgArg args[] = {CGK_VALUE(0, k1)};                                                            \
        cg_call_typed(cg, #fn, 1, kinds, args);                                                              \
    }
#include "codegen/cg_runtime.def"
#undef RTCALL
#undef RTCALL1

#endif
