/*
** trainer/main.c: the main() of AOT trainers (generated/NAME/NAME-train).
** `rrc compile` links it with the generated object, which provides the
** compiled entry functions and the program's description, and with the
** runtime library. No compiler code is in a trainer.
**
**   NAME-train [train] [flags]     train (rrc train's flags, without the spec)
**   NAME-train lineval [flags]     linear evaluation (rrc lineval's flags)
**   NAME-train grad [flags]        one training-mode step (rrc grad's flags)
**   NAME-train knn [flags]         weighted kNN evaluation of a backbone (rrc knn's flags)
**   NAME-train retrieval [flags]   retrieval evaluation of a backbone (rrc retrieval's flags)
**   NAME-train eval [flags]        several protocols, one report (rrc eval's flags)
**   NAME-train finetune [flags]    fine-tune a backbone (a --method supervised trainer)
**   NAME-train bench [flags]       time the training step alone
**   NAME-train info                what was compiled
*/
#include <stdio.h>
#include <string.h>

#include "rt_blas.h"
#include "rt_cli.h"
#include "rt_comm.h"
#include "rt_program_json.h"

extern const char rrc_program_json[];
extern const rt_step_fn rrc_program_fns[];
extern const int rrc_program_nfns;

static void usage(FILE *f, const char *prog) {
    fprintf(f,
            "usage: %s [COMMAND] [flags]\n"
            "\n"
            "A trainer compiled by rrc (AOT). Commands:\n"
            "  train     (default) self-supervised relational reasoning; %s train --help\n"
            "  lineval   linear evaluation of a backbone; %s lineval --help\n"
            "  knn       weighted kNN evaluation of a backbone; %s knn --help\n"
            "  retrieval retrieval evaluation (precision@k, mAP) of a backbone; %s retrieval --help\n"
            "  eval      several protocols on a backbone, one report (eval.json); %s eval --help\n"
            "  grad      one training-mode step on given views; %s grad --help\n"
            "  finetune  fine-tune a backbone with a new classifier (a trainer compiled with\n"
            "            --method supervised); %s finetune --help\n"
            "  bench     time the training step alone (no augmentation)\n"
            "  info      the compiled program: spec, K, batch, entries, memory\n",
            prog, prog, prog, prog, prog, prog, prog, prog);
}

static void info(const rt_program *p) {
    printf("spec %s (%s), input %dx%dx%d%s, K=%d, batch %d, aggregation %s, loss %s, %lld-d features\n", p->spec_name,
           p->method == RT_METHOD_SUPERVISED ? "supervised" : "relational", p->in_c, p->in_h, p->in_w,
           p->gray_input ? " (gray images: trains on their first channel)" : "", p->K, p->batch, p->aggregation, p->loss,
           (long long)p->feat_dim);
    const rt_entry *es[] = {p->train_full, p->train_last, p->features, p->classify};
    for (int i = 0; i < 4; i++) {
        if (!es[i]) continue;
        int64_t total = 0;
        for (int r = 0; r < RT_NREGIONS; r++) total += es[i]->region_bytes[r];
        printf("  entry %-16s B=%-5lld regions (bytes): param %lld, state %lld, input %lld, output %lld, scratch %lld; total %lld\n",
               es[i]->name, (long long)es[i]->B, (long long)es[i]->region_bytes[0], (long long)es[i]->region_bytes[1],
               (long long)es[i]->region_bytes[2], (long long)es[i]->region_bytes[3], (long long)es[i]->region_bytes[4],
               (long long)total);
    }
}

/* eval's fine-tuning in an AOT trainer: its own program, when it was
   compiled with --method supervised for this many training images. */
static const rt_program *own_supervised(void *ctx, int64_t n_train, int classes, char *err, size_t errlen) {
    const rt_program *p = ctx;
    (void)classes;
    if (p->method != RT_METHOD_SUPERVISED || !p->classify) {
        snprintf(err, errlen, "needs a trainer compiled with --method supervised (rrc eval compiles what it needs)");
        return NULL;
    }
    int64_t last = n_train % p->batch;
    if (last && (!p->train_last || p->train_last->B != last)) {
        snprintf(err, errlen, "%lld training images leave a last batch of %lld, which this trainer was not compiled for",
                 (long long)n_train, (long long)last);
        return NULL;
    }
    return p;
}

int main(int argc, char **argv) {
    rt_blas_select(argv);
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    rt_program p;
    char err[1024];
    if (rt_program_from_json(rrc_program_json, rrc_program_fns, rrc_program_nfns, &p, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    int rc;
    const char *cmd = argc > 1 ? argv[1] : "train";
    /* under mpirun: one rank of a data-parallel run (rt_comm.h), with the
       steps of its share of the batch; only training is split over ranks */
    if (rt_comm_launched()) {
        if (rt_comm_init(err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            rt_program_free_parsed(&p);
            return 1;
        }
        const rt_comm *cm = rt_comm_get();
        const char *why = NULL;
        if (cm->size > 1 && strcmp(cmd, "train") && cmd[0] != '-')
            why = "runs in one process; only train runs over several ranks";
        else if (rt_program_for_rank(&p, cm->rank, cm->size, err, sizeof err) != 0)
            why = err;
        if (why) {
            if (cm->rank == 0) fprintf(stderr, "%s %s: %s\n", prog, cmd, why);
            rt_comm_finalize();
            rt_program_free_parsed(&p);
            return 1;
        }
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { usage(stdout, prog); rc = 0; }
    else if (!strcmp(cmd, "info")) { info(&p); rc = 0; }
    else if (!strcmp(cmd, "train")) rc = rt_cli_train(&p, prog, argc - 2, argv + 2);
    else if (!strcmp(cmd, "lineval")) rc = rt_cli_lineval(&p, prog, argc - 2, argv + 2);
    else if (!strcmp(cmd, "grad")) rc = rt_cli_grad(&p, prog, argc - 2, argv + 2);
    else if (!strcmp(cmd, "finetune")) rc = rt_cli_finetune(&p, prog, argc - 2, argv + 2);
    else if (!strcmp(cmd, "knn")) rc = rt_cli_knn(&p, prog, argc - 2, argv + 2);
    else if (!strcmp(cmd, "retrieval")) rc = rt_cli_retrieval(&p, prog, argc - 2, argv + 2);
    else if (!strcmp(cmd, "eval")) {
        rt_eval_programs ps = {&p, own_supervised, &p};
        rc = rt_cli_eval(&ps, prog, argc - 2, argv + 2);
    }
    else if (!strcmp(cmd, "bench")) rc = rt_cli_bench(&p, prog, argc - 2, argv + 2);
    else if (cmd[0] == '-') rc = rt_cli_train(&p, prog, argc - 1, argv + 1);
    else { fprintf(stderr, "%s: unknown command '%s' (see %s help)\n", prog, cmd, prog); rc = 1; }
    rt_comm_finalize();
    rt_program_free_parsed(&p);
    return rc;
}
