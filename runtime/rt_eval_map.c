/*
** rt_eval_map.c: a picture of features (rt_feature_map in rt_eval.h): the
** rows projected on their two principal components, one colour per class,
** drawn by gnuplot. The covariance is made in double and its eigenvectors
** come from LAPACK's dsyevd (OpenBLAS ships it).
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_eval.h"
#include "rt_file.h"

/* LAPACK (Fortran calling convention): eigenvalues ascending in w, the
   eigenvectors in the columns of a (column-major). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info);

#define MAP_SECONDS 60.0   /* gnuplot's time limit, as for curves.png */

int rt_pca2(const float *x, int64_t n, int64_t F, double *out, double *explained, char *err, size_t errlen) {
    if (n < 2 || F < 2 || F > 4096) {
        snprintf(err, errlen, "a map needs at least 2 rows of 2 to 4096 features (got %lld x %lld)", (long long)n, (long long)F);
        return -1;
    }
    double *mean = calloc((size_t)F, sizeof *mean), *cov = calloc((size_t)(F * F), sizeof *cov), *w = malloc((size_t)F * sizeof *w);
    int nF = (int)F, lwork = 1 + 6 * nF + 2 * nF * nF, liwork = 3 + 5 * nF, info = 0;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    int rc = -1;
    if (!mean || !cov || !w || !work || !iwork) {
        snprintf(err, errlen, "out of memory for the map");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < F; j++) mean[j] += x[i * F + j];
    for (int64_t j = 0; j < F; j++) mean[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < F; a++) {
            double da = x[i * F + a] - mean[a];
            for (int64_t b = 0; b <= a; b++) cov[a * F + b] += da * (x[i * F + b] - mean[b]);
        }
    for (int64_t a = 0; a < F; a++)
        for (int64_t b = 0; b <= a; b++) cov[b * F + a] = cov[a * F + b] /= (double)(n - 1);
    double total = 0;
    for (int64_t a = 0; a < F; a++) total += cov[a * F + a];
    dsyevd_("V", "U", &nF, cov, &nF, w, work, &lwork, iwork, &liwork, &info);
    if (info != 0) {
        snprintf(err, errlen, "the covariance's eigenvectors were not found (dsyevd info %d)", info);
        goto done;
    }
    const double *v1 = cov + (F - 1) * F, *v2 = cov + (F - 2) * F;   /* the two largest */
    for (int64_t i = 0; i < n; i++) {
        double p = 0, q = 0;
        for (int64_t j = 0; j < F; j++) {
            double d = x[i * F + j] - mean[j];
            p += d * v1[j];
            q += d * v2[j];
        }
        out[2 * i] = p;
        out[2 * i + 1] = q;
    }
    if (explained) explained[0] = total > 0 ? w[F - 1] / total : 0, explained[1] = total > 0 ? w[F - 2] / total : 0;
    rc = 0;
done:
    free(mean), free(cov), free(w), free(work), free(iwork);
    return rc;
}

int rt_feature_map(const float *x, const int32_t *labels, int64_t n, int64_t F, int classes, const char *title,
                   const char *png, char *err, size_t errlen) {
    char dat[1100], gp[1100], tmp[4200], setout[4300];
    if (strpbrk(png, "'\n") || strpbrk(title, "'\n")) {
        snprintf(err, errlen, "%s: gnuplot cannot quote this name", png);
        return -1;
    }
    double *pc = malloc((size_t)(2 * n) * sizeof *pc), ex[2];
    if (!pc) {
        snprintf(err, errlen, "out of memory for the map");
        return -1;
    }
    if (rt_pca2(x, n, F, pc, ex, err, errlen) != 0) {
        free(pc);
        return -1;
    }
    /* PNG.dat: "pc1 pc2 class" rows, one block per class (gnuplot's index) */
    snprintf(dat, sizeof dat, "%.*s.dat", (int)(strlen(png) > 4 ? strlen(png) - 4 : strlen(png)), png);
    snprintf(gp, sizeof gp, "%.*s.gp", (int)(strlen(png) > 4 ? strlen(png) - 4 : strlen(png)), png);
    int rc = -1;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        snprintf(err, errlen, "out of memory for the map");
        goto out;
    }
    for (int c = 0; c < classes; c++) {
        fprintf(m, "# class %d\n", c);
        for (int64_t i = 0; i < n; i++)
            if (labels[i] == c) fprintf(m, "%.6g %.6g\n", pc[2 * i], pc[2 * i + 1]);
        fprintf(m, "\n\n");
    }
    fclose(m);
    int wrc = rt_write_atomic(dat, buf, len, err, errlen);
    free(buf);
    if (wrc != 0) goto out;
    char text[4096];
    int k = snprintf(text, sizeof text,
                     "# made by rrc: the two principal components of the features in %s, a colour per class\n"
                     "if (!exists('out')) out = '%s'\n"
                     "set terminal png size 900,800\n"
                     "set output out\n"
                     "set title '%s'\n"
                     "set xlabel 'PC1 (%.1f%% of the variance)'\n"
                     "set ylabel 'PC2 (%.1f%%)'\n"
                     "set key outside right\n"
                     "set grid\n"
                     "plot for [c=0:%d] '%s' index c using 1:2 with points pt 7 ps 0.35 title sprintf('class %%d', c)\n"
                     "set output\n",
                     dat, png, title, 100 * ex[0], 100 * ex[1], classes - 1, dat);
    if (k < 0 || (size_t)k >= sizeof text) {
        snprintf(err, errlen, "%s: name too long", png);
        goto out;
    }
    if (rt_write_atomic(gp, text, (size_t)k, err, errlen) != 0) goto out;
    if (!rt_tmp_path(tmp, sizeof tmp, png)) {
        snprintf(err, errlen, "%s: name too long", png);
        goto out;
    }
    snprintf(setout, sizeof setout, "out = '%s'", tmp);
    const char *argv[] = {"gnuplot", "-e", setout, gp, NULL};
    int g = rt_run_bounded(argv, MAP_SECONDS);
    if (g == 0 && rename(tmp, png) == 0) {
        rc = 0;
    } else {
        unlink(tmp);
        snprintf(err, errlen, "no %s: %s", png,
                 g == 127 ? "gnuplot not found (apt-get install gnuplot-nox)" : g == -2 ? "gnuplot took too long" : "gnuplot failed");
    }
out:
    free(pc);
    return rc;
}
