/*
** test_llvm_init.c: LLVM's one-time set-up is safe from several threads.
**
** `rrc compile` builds its entries on two threads, and both reach the
** first use of LLVM's target registry together. Registering the target
** twice made the lookup fail ("Cannot choose between targets") on a cold
** machine's first run. Each child process starts two threads at a barrier
** that then ask for a target machine at once; the test runs many such
** children, since the race has to be met in a fresh process.
*/
#include <pthread.h>

#include "codegen/cg_llvm.h"
#include "test.h"

static pthread_barrier_t start;

static void *make_tm(void *ok) {
    pthread_barrier_wait(&start);
    LLVMTargetMachineRef tm = cg_target_machine(NULL, LLVMCodeModelDefault);
    *(bool *)ok = tm != NULL;
    if (tm) LLVMDisposeTargetMachine(tm);
    return NULL;
}

TEST_CHILD(llvm_init_two_threads) {
    enum { NT = 4 };
    pthread_t t[NT];
    bool ok[NT] = {0};
    pthread_barrier_init(&start, NULL, NT);
    for (int i = 0; i < NT; i++) pthread_create(&t[i], NULL, make_tm, &ok[i]);
    int bad = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        bad += !ok[i];
    }
    pthread_barrier_destroy(&start);
    return bad ? 1 : 0;
}

TEST(llvm_init_is_thread_safe) {
    int fails = 0, crashes = 0;
    for (int i = 0; i < 100; i++) {
        int st = test_child("llvm_init_two_threads");
        fails += st > 0;
        crashes += st < 0;
    }
    CHECKF(fails == 0 && crashes == 0, "%d of 100 fresh processes failed to get a target machine, %d crashed",
           fails, crashes);
}
