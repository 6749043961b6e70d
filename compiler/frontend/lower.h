/*
** lower.h: from a model description (frontend/spec.h) to IR graphs.
** Shape inference happens here: every layer's shape rule runs as it is
** built, and a mismatch is reported at the layer's spec line.
*/
#ifndef RRC_LOWER_H
#define RRC_LOWER_H

#include "frontend/spec.h"
#include "ir/ir.h"

/* The training step: input "x" [K*B, C, H, W] (view k of image i in row
   k*B + i) -> backbone (BatchNorm in training mode) -> pairs -> relation
   head -> loss. Outputs: "loss" [1], "logits" [P], "targets" [P], and
   "state.<name>" for every updated BatchNorm running statistic. K,
   aggregation and loss come from the spec. Returns NULL after reporting
   errors to d. */
/* Images through the backbone per image of the batch in a training step:
   K views, each rotated 4 times by RotationNet. */
int spec_backbone_views(const Spec *s);

Graph *lower_train(const Spec *s, int64_t B, int64_t C, int64_t H, int64_t W, Arena *a, Diag *d);
/* The step of one rank of a data-parallel run (compiler/ir/ops_dist.c):
   input "x" holds its b of the step's B images (rt_comm_share), the
   backbone's BatchNorm statistics and features are combined over ranks,
   the rest is the one-process step's. b == B: lower_train. */
Graph *lower_train_rank(const Spec *s, int64_t B, int64_t b, int64_t C, int64_t H, int64_t W, Arena *a, Diag *d);

/* The evaluation backbone: input "x" [N, C, H, W] -> output "features"
   [N, F], BatchNorm with running statistics. */
Graph *lower_features(const Spec *s, int64_t N, int64_t C, int64_t H, int64_t W, Arena *a, Diag *d);

/* Supervised training (the upper bound of METHOD.md): input "x" [B,C,H,W]
   and labels "y" [B] (class indices as floats) -> backbone -> linear
   classifier (params "classifier.weight", "classifier.bias") -> softmax
   cross-entropy. Outputs "loss", "logits" [B,classes] and the running
   statistics. With train = false: BatchNorm in eval mode, no labels, no
   loss: the classifier's logits of a test batch. */
Graph *lower_supervised(const Spec *s, int64_t B, int64_t classes, int64_t C, int64_t H, int64_t W, bool train, Arena *a,
                        Diag *d);

/* One layer (and its children) applied to x, with parameter names under
   `path`; for tests and tools that build graphs by hand. */
Node *lower_module(Graph *g, const Layer *ly, Node *x, const char *path, bool train);

/* The parameter initialisation of METHOD.md for a tensor made by a layer. */
rt_init init_conv_weight(int64_t out, int64_t k);
rt_init init_linear(int64_t fan_in);

#endif
