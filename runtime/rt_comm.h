/*
** rt_comm.h: data-parallel ranks over MPI (Debian's Open MPI).
**
** A process started by mpirun (Open MPI's launcher sets
** OMPI_COMM_WORLD_SIZE; PMI/PMIx launchers set PMIX_RANK) is one rank of a
** run; any other process is the only rank of its own run and never calls
** MPI_Init, so no daemon starts and nothing is slower than without MPI.
**
** Every collective here is deterministic: sums are taken in rank order
** 0, 1, ..., N-1 on every rank, so every rank gets the same bits (MPI's
** own allreduce does not promise that, and the ranks' copies of the model
** must stay identical). All calls come from one thread (the one that
** called rt_comm_init: MPI_THREAD_FUNNELED). With one rank every
** collective is a copy or nothing.
**
** A collective that waits longer than the hang guard (rt_comm_set_timeout)
** prints which collective and rank waited and ends the process with exit
** status 3, so that mpirun ends the run: Open MPI 4.1 cannot survive a lost
** rank, and a rank stuck in a collective would otherwise wait forever.
*/
#ifndef RT_COMM_H
#define RT_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_comm {
    int rank, size;     /* this rank, ranks of the run (0, 1 without mpirun) */
    int local_size;     /* ranks on this machine (OMPI_COMM_WORLD_LOCAL_SIZE) */
    bool mpi;           /* MPI was started (launched by mpirun) */
} rt_comm;

/* Whether the process was launched by an MPI launcher (by the environment;
   starts nothing). */
bool rt_comm_launched(void);
/* Starts MPI when launched by mpirun, else does nothing. 0, or -1 with a
   one-line reason in err (MPI failed to start). Idempotent. */
int rt_comm_init(char *err, size_t errlen);
/* The run's ranks: {0, 1, 1, false} before rt_comm_init or without mpirun. */
const rt_comm *rt_comm_get(void);
/* Ends MPI if started (MPI_Finalize); a no-op otherwise. */
void rt_comm_finalize(void);
/* One rank failed alone (a bad flag on one rank, an I/O error of rank 0):
   ends the whole run with `code` (MPI_Abort under mpirun, exit otherwise).
   Prints nothing: the caller has said why. */
_Noreturn void rt_comm_abort(int code);

/* Rank r's share of n items split over N ranks: the first n % N ranks get
   one more. Returns the count, sets *offset (items before rank r's). */
int64_t rt_comm_share(int64_t n, int r, int N, int64_t *offset);

/* In-place sum over ranks of buf[0..n), every rank the same bits (sums in
   rank order, in the buffer's precision). */
void rt_comm_sum_f32(float *buf, int64_t n);
void rt_comm_sum_f64(double *buf, int64_t n);
/* recv = the ranks' send buffers in rank order; rank r sends counts[r]
   elements (n == counts[rank]). */
void rt_comm_allgather_f32(const float *send, int64_t n, float *recv, const int64_t *counts);
void rt_comm_allgather_f64(const double *send, int64_t n, double *recv, const int64_t *counts);
/* bytes from root to every rank */
void rt_comm_bcast(void *buf, size_t bytes, int root);

/* Whether every rank has the same `value` (a hash of its flags, of its
   program): 0 when they agree, else -1 and "<what> differs between ranks:
   rank 0 has ..., rank R has ..." in err, on every rank. */
int rt_comm_agree(uint64_t value, const char *what, char *err, size_t errlen);

/* The hang guard: a collective longer than this many seconds ends the
   process (see above). 0 turns it off. Default 60 s, or RRC_MPI_TIMEOUT. */
void rt_comm_set_timeout(double seconds);

/* Wall seconds spent in collectives, and their number, since the start
   (for the profile and the bench). */
double rt_comm_seconds(void);
int64_t rt_comm_calls(void);

/* For tests only (tools/comm_selftest.c): buffers of at most small_bytes
   per rank are summed by one allgather (default 4096), longer ones by
   reduce-scatter + allgather in rounds of at most segment elements
   (default 2^24). Either way the sums are the same bits; a negative
   small_bytes or a segment < 1 restores the default. */
void rt_comm_set_limits_for_tests(int64_t small_bytes, int64_t segment);

#endif
