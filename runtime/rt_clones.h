/*
** rt_clones.h: RRC_HOT_KERNEL, for plain-C loops that run per element of
** large arrays (the interpreter's convolutions; kNN's and retrieval's
** per-similarity passes): clones for x86-64-v4 (AVX-512) and x86-64-v3
** (AVX2) beside the generic x86-64 one, chosen by the loader from the CPU
** the program runs on. rrc and its runtime are built once for any x86-64,
** so without clones these loops get SSE2 only.
**
** Every clone computes the same bits: ISO C mode (-std=c11) fuses no
** multiply-add (-ffp-contract=off) even where the clone has FMA, and the
** vectoriser does not reorder float sums without -ffast-math. Not on other
** architectures, and not in sanitizer builds, whose runtime is not up yet
** when the loader picks a clone (the tests crashed before main).
*/
#ifndef RT_CLONES_H
#define RT_CLONES_H

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RRC_NO_CLONES 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define RRC_NO_CLONES 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(RRC_NO_CLONES)
#define RRC_HOT_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RRC_HOT_KERNEL
#endif

#endif
