/*
** spec.h: the model description that a Lua spec evaluates to.
**
** The front end (frontend/lf_*.c + the rr prelude frontend/rr.lua) runs a
** spec in a sandboxed Lua state and turns the tables it returns into these
** plain C structs, every one stamped with the spec line that built it. It
** knows nothing about tensors or shapes: shape checking happens when the
** description is lowered to IR (frontend/lower.c), which reports problems at
** the layer's SrcLoc. Everything here lives in the Arena passed to
** spec_load and is freed with it.
*/
#ifndef RRC_SPEC_H
#define RRC_SPEC_H

#include "util.h"

typedef enum LayerKind {
#define LAYER(E, name, ctors, fields) LK_##E,
#include "frontend/layers.def"
#undef LAYER
} LayerKind;

typedef struct Layer Layer;
struct Layer {
    LayerKind kind;
    SrcLoc loc;
    const char *name;        /* module name (a parameter-name component) or NULL */
    int out;                 /* conv2d: out channels; linear: out features */
    int kernel, stride, padding;
    bool bias;               /* conv2d, linear */
    int dims;                /* batchnorm: 1 or 2 */
    double eps, momentum;    /* batchnorm (defaults 1e-5, 0.1) */
    double slope;            /* leaky_relu (default 0.01) */
    Layer **children;        /* sequential */
    int nchildren;
    Layer *body, *shortcut;  /* residual; shortcut NULL = identity */
};

typedef enum AugKind {
    AUG_RANDOM_RESIZED_CROP,  /* size, scale[2], ratio[2] */
    AUG_HFLIP,                /* p */
    AUG_COLOR_JITTER,         /* brightness, contrast, saturation, hue, p */
    AUG_GRAYSCALE,            /* p */
    AUG_NORMALIZE,            /* mean[3], std[3] */
    AUG_RANDOM_CROP,          /* size, padding */
} AugKind;

typedef struct AugOp {
    AugKind kind;
    SrcLoc loc;
    int size;
    double scale[2], ratio[2];
    double p;
    double brightness, contrast, saturation, hue;
    double mean[3], std[3];
    int padding;
} AugOp;

typedef enum Aggregation { AGG_CAT, AGG_SUM, AGG_MEAN, AGG_MAX } Aggregation;
typedef enum LossKind { LOSS_FOCAL, LOSS_BCE } LossKind;
typedef enum OptimKind { OPT_ADAM, OPT_SGD } OptimKind;

typedef struct RelationHead {
    SrcLoc loc;
    Aggregation aggregation;   /* default cat */
    int hidden;                /* default 256 */
    double slope;              /* leaky ReLU slope, default 0.01 */
    double bn_eps, bn_momentum;/* default 1e-5, 0.1 */
} RelationHead;

typedef struct Loss {
    SrcLoc loc;
    LossKind kind;             /* default focal */
    double gamma, alpha;       /* focal: default 2, 0.5 */
} Loss;

typedef struct Optimizer {
    SrcLoc loc;
    OptimKind kind;            /* default adam */
    double lr;                 /* adam 1e-3; sgd 0.1 */
    double beta1, beta2, eps;  /* adam: 0.9, 0.999, 1e-8 */
    double momentum;           /* sgd: 0.9 */
    double weight_decay;       /* 0 */
    int nmilestones;           /* sgd: lr x gamma at these fractions of the epochs */
    double milestones[8];      /* e.g. 0.5, 0.75 */
    double lr_gamma;           /* 0.1 */
} Optimizer;

/* What the training step learns from: relational reasoning (K, relation,
   loss), or one of the paper's baselines (BASELINES.md) with its head. */
typedef enum MethodKind { METHOD_RELATIONAL, METHOD_ROTATION, METHOD_SIMCLR, METHOD_DEEPCLUSTER, METHOD_DIM } MethodKind;

typedef struct Method {
    SrcLoc loc;
    MethodKind kind;           /* default relational */
    Layer *head;               /* baselines: the head on the backbone's features (named); dim: local_d */
    Layer *prior;              /* dim: prior_d */
    double beta, gamma;        /* dim: the local and prior terms' weights (1, 0.1) */
    double temperature;        /* simclr: default 0.5 */
    int clusters;              /* deepcluster: k (default 100) */
    const char *reset;         /* deepcluster: path of the head's last linear layer, reset each epoch */
} Method;

typedef struct Spec {
    const char *path;          /* the spec file as given */
    const char *name;          /* e.g. "conv4" */
    int in_c, in_h, in_w;      /* input image shape, e.g. 3, 32, 32 */
    Layer *backbone;           /* a LK_SEQUENTIAL */
    Method method;
    int K;                     /* views per image the runtime makes (relational: default 4;
                                  rotation 1, its step rotates it; simclr 2) */
    AugOp *aug;                /* the ordered pipeline of one view */
    int naug;
    RelationHead head;
    Loss loss;
    Optimizer optim;
    const char *data;          /* dataset name, e.g. "cifar10", "fashion-mnist" */
    int batch;                 /* default 64 */
    int epochs;                /* default 100 */
    uint64_t seed;             /* default 1 */
} Spec;

/*
** Runs the spec at `path` in a sandboxed Lua state (allowed globals only,
** instruction and memory caps) and returns its description, allocated in
** `a`. On failure prints every problem found as "file:line: message" on
** stderr (counted in d) and returns NULL.
*/
Spec *spec_load(const char *path, Arena *a, Diag *d);
/* Directories rr.include searches after the spec's own directory (and
   their lib/): the spec search path of the driver. The strings must live
   as long as specs are loaded. */
void spec_set_search_path(const char *const *dirs, int n);

const char *aggregation_name(Aggregation g);
const char *loss_name(LossKind k);
const char *layer_kind_name(LayerKind k);
const char *method_name(MethodKind k);
bool aggregation_parse(const char *s, Aggregation *out);
bool loss_parse(const char *s, LossKind *out);

#endif
