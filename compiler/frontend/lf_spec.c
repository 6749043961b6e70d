/*
** lf_spec.c: spec_load, and the conversion of the objects the rr prelude
** built into the plain structs of spec.h.
**
** By the time a table is read here, the prelude has validated every option
** and filled every default (rr.lua), and the data tables are unreachable
** from spec code, so their types are invariants (RRC_ASSERT), not user
** errors. This file does not check shapes; IR lowering does.
*/
#include "frontend/lf_internal.h"

#include <stddef.h>
#include <string.h>

#include <lauxlib.h>

typedef struct Conv {
    lua_State *L;
    Arena *a;
    int objs;                /* stack index of the prelude's objs table */
    const char **files;      /* arena copies of file names, so SrcLocs outlive the state */
    int nfiles;
} Conv;

static const char *conv_file(Conv *c, const char *f) {
    for (int i = 0; i < c->nfiles; i++)
        if (strcmp(c->files[i], f) == 0) return c->files[i];
    const char **n = arena_alloc(c->a, (size_t)(c->nfiles + 1) * sizeof *n);
    if (c->nfiles) memcpy(n, c->files, (size_t)c->nfiles * sizeof *n);
    n[c->nfiles] = arena_strdup(c->a, f);
    c->files = n;
    return n[c->nfiles++];
}

/* Replaces the object at the stack top by its data table. */
static void push_data(Conv *c) {
    lua_rawget(c->L, c->objs);
    RRC_ASSERT(lua_type(c->L, -1) == LUA_TTABLE);
}

static lua_Integer get_int(Conv *c, int t, const char *k) {
    lua_getfield(c->L, t, k);
    int isint;
    lua_Integer v = lua_tointegerx(c->L, -1, &isint);
    RRC_ASSERT(isint);
    lua_pop(c->L, 1);
    return v;
}

static double get_num(Conv *c, int t, const char *k) {
    lua_getfield(c->L, t, k);
    RRC_ASSERT(lua_type(c->L, -1) == LUA_TNUMBER);
    double v = lua_tonumber(c->L, -1);
    lua_pop(c->L, 1);
    return v;
}

static bool get_bool(Conv *c, int t, const char *k) {
    lua_getfield(c->L, t, k);
    RRC_ASSERT(lua_type(c->L, -1) == LUA_TBOOLEAN);
    bool v = lua_toboolean(c->L, -1);
    lua_pop(c->L, 1);
    return v;
}

/* A string field or NULL when absent, copied into the arena. */
static const char *get_str(Conv *c, int t, const char *k) {
    lua_getfield(c->L, t, k);
    const char *v = NULL;
    if (!lua_isnil(c->L, -1)) {
        RRC_ASSERT(lua_type(c->L, -1) == LUA_TSTRING);
        v = arena_strdup(c->a, lua_tostring(c->L, -1));
    }
    lua_pop(c->L, 1);
    return v;
}

/* List field k of t: n numbers into out[] (the prelude checked the count). */
static int get_nums(Conv *c, int t, const char *k, double *out, int max) {
    lua_getfield(c->L, t, k);
    RRC_ASSERT(lua_type(c->L, -1) == LUA_TTABLE);
    int n = (int)lua_rawlen(c->L, -1);
    RRC_ASSERT(n <= max);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(c->L, -1, i + 1);
        out[i] = lua_tonumber(c->L, -1);
        lua_pop(c->L, 1);
    }
    lua_pop(c->L, 1);
    return n;
}

static SrcLoc get_loc(Conv *c, int t) {
    lua_getfield(c->L, t, "file");
    SrcLoc loc = {conv_file(c, lua_tostring(c->L, -1)), 0};
    lua_pop(c->L, 1);
    loc.line = (int)get_int(c, t, "line");
    return loc;
}

static const char *get_kind(Conv *c, int t) {
    lua_getfield(c->L, t, "kind");
    const char *k = lua_tostring(c->L, -1);  /* stays valid: the data table holds it */
    lua_pop(c->L, 1);
    RRC_ASSERT(k != NULL);
    return k;
}

/* ---- Layers ----------------------------------------------------------- */

static const struct {
    const char *name, *ctors, *fields;
} layer_kinds[] = {
#define LAYER(E, name, ctors, fields) [LK_##E] = {#name, ctors, fields},
#include "frontend/layers.def"
#undef LAYER
};

/* The Layer members that layers.def's fields name. */
static const struct {
    const char *name;
    char type;   /* i, b, f */
    size_t offset;
} layer_fields[] = {
    {"out", 'i', offsetof(Layer, out)},         {"kernel", 'i', offsetof(Layer, kernel)},
    {"stride", 'i', offsetof(Layer, stride)},   {"padding", 'i', offsetof(Layer, padding)},
    {"bias", 'b', offsetof(Layer, bias)},       {"dims", 'i', offsetof(Layer, dims)},
    {"eps", 'f', offsetof(Layer, eps)},         {"momentum", 'f', offsetof(Layer, momentum)},
    {"slope", 'f', offsetof(Layer, slope)},
};

/* Whether word w (length n) is one of the space-separated words of list. */
static bool word_in(const char *list, const char *w, size_t n) {
    for (const char *p = list; *p;) {
        size_t m = strcspn(p, " ");
        if (m == n && strncmp(p, w, n) == 0) return true;
        p += m + strspn(p + m, " ");
    }
    return false;
}

/* The kind whose constructors include rr.lua kind `ctor`. */
static LayerKind layer_kind_of(const char *ctor) {
    for (size_t i = 0; i < sizeof layer_kinds / sizeof layer_kinds[0]; i++)
        if (word_in(layer_kinds[i].ctors, ctor, strlen(ctor))) return (LayerKind)i;
    RRC_ABORT("layer object of kind '%s', which layers.def does not list", ctor);
}

/* Copies layers.def's fields of kind l->kind from the data table t. */
static void conv_fields(Conv *c, int t, Layer *l) {
    for (const char *p = layer_kinds[l->kind].fields; *p;) {
        size_t m = strcspn(p, " ");
        char key[32];
        RRC_ASSERT(m > 2 && m - 2 < sizeof key && p[1] == ':');
        memcpy(key, p + 2, m - 2);
        key[m - 2] = 0;
        size_t f = 0;
        while (f < sizeof layer_fields / sizeof layer_fields[0] && strcmp(layer_fields[f].name, key) != 0) f++;
        RRC_ASSERT(f < sizeof layer_fields / sizeof layer_fields[0] && layer_fields[f].type == p[0]);
        char *dst = (char *)l + layer_fields[f].offset;
        switch (p[0]) {
        case 'i': *(int *)dst = (int)get_int(c, t, key); break;
        case 'b': *(bool *)dst = get_bool(c, t, key); break;
        default: *(double *)dst = get_num(c, t, key); break;
        }
        p += m + strspn(p + m, " ");
    }
}

/* Converts the layer object at the stack top (popped). The prelude bounds
   nesting (MAX_DEPTH), so the recursion is shallow. */
static Layer *conv_layer(Conv *c, int depth) {
    lua_State *L = c->L;
    RRC_ASSERT(depth < 100);
    luaL_checkstack(L, 8, "layer conversion");
    push_data(c);
    int t = lua_gettop(L);
    Layer *l = arena_alloc(c->a, sizeof *l);
    l->kind = layer_kind_of(get_kind(c, t));
    l->loc = get_loc(c, t);
    l->name = get_str(c, t, "name");
    conv_fields(c, t, l);
    if (l->kind == LK_SEQUENTIAL) {
        lua_getfield(L, t, "children");
        l->nchildren = (int)lua_rawlen(L, -1);
        l->children = arena_alloc(c->a, (size_t)(l->nchildren ? l->nchildren : 1) * sizeof *l->children);
        for (int k = 0; k < l->nchildren; k++) {
            lua_rawgeti(L, -1, k + 1);
            l->children[k] = conv_layer(c, depth + 1);
        }
        lua_pop(L, 1);
    } else if (l->kind == LK_RESIDUAL) {
        lua_getfield(L, t, "body");
        l->body = conv_layer(c, depth + 1);
        lua_getfield(L, t, "shortcut");
        if (lua_isnil(L, -1)) lua_pop(L, 1);
        else l->shortcut = conv_layer(c, depth + 1);
    }
    lua_pop(L, 1);  /* the data table (it replaced the object) */
    return l;
}

/* Pushes the list of every layer constructor layers.def names (the
   prelude checks that it defines exactly these). */
void lf_push_layer_ctors(lua_State *L) {
    lua_newtable(L);
    int n = 0;
    for (size_t i = 0; i < sizeof layer_kinds / sizeof layer_kinds[0]; i++)
        for (const char *p = layer_kinds[i].ctors; *p;) {
            size_t m = strcspn(p, " ");
            lua_pushlstring(L, p, m);
            lua_rawseti(L, -2, ++n);
            p += m + strspn(p + m, " ");
        }
}

/* ---- The rest of the model -------------------------------------------- */

static void conv_aug(Conv *c, AugOp *op) {
    push_data(c);
    int t = lua_gettop(c->L);
    const char *kind = get_kind(c, t);
    op->loc = get_loc(c, t);
    if (strcmp(kind, "random_resized_crop") == 0) {
        op->kind = AUG_RANDOM_RESIZED_CROP;
        op->size = (int)get_int(c, t, "size");
        get_nums(c, t, "scale", op->scale, 2);
        get_nums(c, t, "ratio", op->ratio, 2);
    } else if (strcmp(kind, "hflip") == 0) {
        op->kind = AUG_HFLIP;
        op->p = get_num(c, t, "p");
    } else if (strcmp(kind, "color_jitter") == 0) {
        op->kind = AUG_COLOR_JITTER;
        op->brightness = get_num(c, t, "brightness");
        op->contrast = get_num(c, t, "contrast");
        op->saturation = get_num(c, t, "saturation");
        op->hue = get_num(c, t, "hue");
        op->p = get_num(c, t, "p");
    } else if (strcmp(kind, "grayscale") == 0) {
        op->kind = AUG_GRAYSCALE;
        op->p = get_num(c, t, "p");
    } else if (strcmp(kind, "normalize") == 0) {
        op->kind = AUG_NORMALIZE;
        RRC_ASSERT(get_nums(c, t, "mean", op->mean, 3) == 3);
        RRC_ASSERT(get_nums(c, t, "std", op->std, 3) == 3);
    } else if (strcmp(kind, "random_crop") == 0) {
        op->kind = AUG_RANDOM_CROP;
        op->size = (int)get_int(c, t, "size");
        op->padding = (int)get_int(c, t, "padding");
    } else {
        RRC_ABORT("unknown augmentation kind '%s'", kind);
    }
    lua_pop(c->L, 1);
}

static void conv_head(Conv *c, RelationHead *h) {
    push_data(c);
    int t = lua_gettop(c->L);
    h->loc = get_loc(c, t);
    lua_getfield(c->L, t, "aggregation");
    bool ok = aggregation_parse(lua_tostring(c->L, -1), &h->aggregation);
    RRC_ASSERT(ok);
    lua_pop(c->L, 1);
    h->hidden = (int)get_int(c, t, "hidden");
    h->slope = get_num(c, t, "slope");
    h->bn_eps = get_num(c, t, "bn_eps");
    h->bn_momentum = get_num(c, t, "bn_momentum");
    lua_pop(c->L, 1);
}

static void conv_loss(Conv *c, Loss *l) {
    push_data(c);
    int t = lua_gettop(c->L);
    l->loc = get_loc(c, t);
    bool ok = loss_parse(get_kind(c, t), &l->kind);
    RRC_ASSERT(ok);
    if (l->kind == LOSS_FOCAL) {
        l->gamma = get_num(c, t, "gamma");
        l->alpha = get_num(c, t, "alpha");
    } else {
        /* unused by BCE; the focal defaults, so that an override of the
           kind (rrc --loss focal) gets the paper's values, not zeros */
        l->gamma = 2;
        l->alpha = 0.5;
    }
    lua_pop(c->L, 1);
}

static void conv_optim(Conv *c, Optimizer *o) {
    push_data(c);
    int t = lua_gettop(c->L);
    o->loc = get_loc(c, t);
    const char *kind = get_kind(c, t);
    o->lr = get_num(c, t, "lr");
    o->weight_decay = get_num(c, t, "weight_decay");
    /* the other kind's fields hold their defaults too (spec.h), in case
       a caller switches the kind */
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->momentum = 0.9;
    o->nmilestones = 2;
    o->milestones[0] = 0.5;
    o->milestones[1] = 0.75;
    o->lr_gamma = 0.1;
    if (strcmp(kind, "adam") == 0) {
        o->kind = OPT_ADAM;
        double b[2];
        get_nums(c, t, "betas", b, 2);
        o->beta1 = b[0];
        o->beta2 = b[1];
        o->eps = get_num(c, t, "eps");
    } else {
        RRC_ASSERT(strcmp(kind, "sgd") == 0);
        o->kind = OPT_SGD;
        o->momentum = get_num(c, t, "momentum");
        o->nmilestones = get_nums(c, t, "milestones", o->milestones, 8);
        o->lr_gamma = get_num(c, t, "gamma");
    }
    lua_pop(c->L, 1);
}

/* The parameter path of the last linear layer under l (NULL: none), the
   layer DeepCluster resets each epoch. */
static const char *last_linear(Arena *a, const Layer *l, const char *prefix) {
    const char *path = !l->name ? prefix : prefix ? arena_printf(a, "%s.%s", prefix, l->name) : l->name;
    if (l->kind == LK_LINEAR) return path;
    const char *found = NULL;
    for (int i = 0; i < l->nchildren; i++) {
        const char *p = last_linear(a, l->children[i], path);
        if (p) found = p;
    }
    if (l->kind == LK_RESIDUAL) {
        const char *b = l->body ? last_linear(a, l->body, path) : NULL, *sc = l->shortcut ? last_linear(a, l->shortcut, path) : NULL;
        found = sc ? sc : b;
    }
    return found;
}

/* The method object at the stack top (popped); nil leaves relational. */
static void conv_method(Conv *c, Spec *s) {
    Method *m = &s->method;
    if (lua_isnil(c->L, -1)) {
        lua_pop(c->L, 1);
        m->kind = METHOD_RELATIONAL;
        return;
    }
    push_data(c);
    int t = lua_gettop(c->L);
    m->loc = get_loc(c, t);
    const char *kind = get_kind(c, t);
    if (strcmp(kind, "rotation") == 0) {
        m->kind = METHOD_ROTATION;
        s->K = 1;
    } else if (strcmp(kind, "dim") == 0) {
        m->kind = METHOD_DIM;
        m->beta = get_num(c, t, "beta");
        m->gamma = get_num(c, t, "gamma");
        s->K = 1;
        lua_getfield(c->L, t, "local_d");
        m->head = conv_layer(c, 0);
        lua_getfield(c->L, t, "prior_d");
        m->prior = conv_layer(c, 0);
        lua_pop(c->L, 1);
        return;
    } else if (strcmp(kind, "deepcluster") == 0) {
        m->kind = METHOD_DEEPCLUSTER;
        m->clusters = (int)get_int(c, t, "clusters");
        s->K = 1;
    } else {
        RRC_ASSERT(strcmp(kind, "simclr") == 0);
        m->kind = METHOD_SIMCLR;
        m->temperature = get_num(c, t, "temperature");
        s->K = 2;
    }
    lua_getfield(c->L, t, "head");
    m->head = conv_layer(c, 0);
    lua_pop(c->L, 1);
    if (m->kind == METHOD_DEEPCLUSTER) m->reset = last_linear(c->a, m->head, NULL);
}

/* Converts the model object at the stack top (left there). */
static Spec *conv_model(Conv *c, const char *path) {
    lua_State *L = c->L;
    lua_pushvalue(L, -1);
    push_data(c);
    int t = lua_gettop(L);
    Spec *s = arena_alloc(c->a, sizeof *s);
    s->path = arena_strdup(c->a, path);
    s->name = get_str(c, t, "name");
    double in[3];
    get_nums(c, t, "input", in, 3);
    s->in_c = (int)in[0];
    s->in_h = (int)in[1];
    s->in_w = (int)in[2];

    lua_getfield(L, t, "backbone");
    Layer *b = conv_layer(c, 0);
    if (b->kind != LK_SEQUENTIAL) {  /* the contract: the backbone is a sequential */
        Layer *seq = arena_alloc(c->a, sizeof *seq);
        seq->kind = LK_SEQUENTIAL;
        seq->loc = b->loc;
        seq->children = arena_alloc(c->a, sizeof *seq->children);
        seq->children[0] = b;
        seq->nchildren = 1;
        b = seq;
    }
    s->backbone = b;
    s->K = (int)get_int(c, t, "K");

    lua_getfield(L, t, "augment");
    s->naug = (int)lua_rawlen(L, -1);
    s->aug = arena_alloc(c->a, (size_t)(s->naug ? s->naug : 1) * sizeof *s->aug);
    for (int i = 0; i < s->naug; i++) {
        lua_rawgeti(L, -1, i + 1);
        conv_aug(c, &s->aug[i]);
    }
    lua_pop(L, 1);

    lua_getfield(L, t, "relation");
    conv_head(c, &s->head);
    lua_getfield(L, t, "loss");
    conv_loss(c, &s->loss);
    lua_getfield(L, t, "optimizer");
    conv_optim(c, &s->optim);
    lua_getfield(L, t, "method");
    conv_method(c, s);

    s->data = get_str(c, t, "data");
    s->batch = (int)get_int(c, t, "batch");
    s->epochs = (int)get_int(c, t, "epochs");
    s->seed = (uint64_t)get_int(c, t, "seed");
    lua_pop(L, 1);
    return s;
}

/* ---- Errors ----------------------------------------------------------- */

/* Prints the errors the constructors collected, in the order they happened. */
static void report_collected(LfSandbox *sb, Diag *d) {
    lua_State *L = sb->L;
    lua_getfield(L, LUA_REGISTRYINDEX, LF_INTERNAL);
    lua_getfield(L, -1, "errors");
    int n = (int)lua_rawlen(L, -1);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "file");
        lua_getfield(L, -2, "line");
        lua_getfield(L, -3, "msg");
        SrcLoc loc = {lf_intern_file(sb, lua_tostring(L, -3)), (int)lua_tointeger(L, -2)};
        diag_error(d, loc, "%s", lua_tostring(L, -1));
        lua_pop(L, 4);
    }
    lua_pop(L, 2);
}

/* Prints the error that stopped the run (message at the stack top). */
static void report_failure(LfSandbox *sb, int status, Diag *d) {
    if (sb->instr_exceeded) {
        int e = 0;  /* the cap as a power of ten, as the README writes it */
        for (long c = LF_INSTR_CAP; c >= 10 && c % 10 == 0; c /= 10) e++;
        diag_error(d, sb->limit_loc, "instruction limit exceeded (10^%d instructions): endless loop?", e);
        return;
    }
    if (sb->mem_exceeded) {
        diag_error(d, sb->limit_loc, "memory limit exceeded (%zu MiB): runaway allocation?", LF_MEM_CAP >> 20);
        return;
    }
    const char *msg = lua_tostring(sb->L, -1);
    if (!msg) msg = status == LUA_ERRMEM ? "not enough memory" : "unknown error";
    /* one line per error: keep only the first line of a multi-line message */
    size_t len = strcspn(msg, "\n");
    SrcLoc loc;
    const char *rest = lf_split_message(sb, msg, &loc);
    if (rest) {
        diag_error(d, loc, "%.*s", (int)(len - (size_t)(rest - msg)), rest);
    } else if (status == LUA_ERRSYNTAX || status == LUA_ERRFILE) {
        /* "path: problem" from load_file, or Lua's own file-level message */
        size_t pl = strlen(sb->spec_path);
        if (strncmp(msg, sb->spec_path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ')
            diag_error(d, (SrcLoc){sb->spec_path, 0}, "%.*s", (int)(len - pl - 2), msg + pl + 2);
        else
            diag_error(d, (SrcLoc){sb->spec_path, 0}, "%.*s", (int)len, msg);
    } else {
        diag_error(d, (SrcLoc){sb->spec_path, 0}, "%.*s", (int)len, msg);
    }
}

Spec *spec_load(const char *path, Arena *a, Diag *d) {
    int before = d->nerrors;
    LfSandbox *sb = lf_sandbox_new(path, d);
    if (!sb) return NULL;
    lua_State *L = sb->L;
    int status = lf_sandbox_run(sb);
    report_collected(sb, d);
    Spec *s = NULL;
    if (status != LUA_OK) {
        report_failure(sb, status, d);
    } else {
        lua_getfield(L, LUA_REGISTRYINDEX, LF_INTERNAL);
        lua_getfield(L, -1, "objs");
        lua_remove(L, -2);
        int objs = lua_gettop(L);
        lua_pushvalue(L, objs - 1);  /* the spec's result */
        lua_rawget(L, objs);
        bool is_model = false;
        char got[64];
        if (lua_type(L, -1) == LUA_TTABLE) {  /* an rr object */
            lua_getfield(L, -1, "cat");
            is_model = strcmp(lua_tostring(L, -1), "model") == 0;
            lua_getfield(L, -2, "kind");
            snprintf(got, sizeof got, "rr.%s{...}", lua_tostring(L, -1));
            lua_pop(L, 2);
        } else if (lua_isnil(L, objs - 1)) {
            snprintf(got, sizeof got, "nothing");
        } else {
            snprintf(got, sizeof got, "a %s", luaL_typename(L, objs - 1));
        }
        lua_pop(L, 1);
        if (!is_model) {
            diag_error(d, (SrcLoc){path, 0}, "spec must return rr.model{...} (got %s)", got);
        } else if (d->nerrors == before) {
            Conv c = {.L = L, .a = a, .objs = objs};
            lua_pushvalue(L, objs - 1);
            s = conv_model(&c, path);
            lua_pop(L, 1);
        }
    }
    lf_sandbox_free(sb);
    return d->nerrors == before ? s : NULL;
}

/* ---- Names ------------------------------------------------------------ */

static const char *const agg_names[] = {"cat", "sum", "mean", "max"};     /* ORDER Aggregation */
static const char *const loss_names[] = {"focal", "bce"};                 /* ORDER LossKind */

const char *aggregation_name(Aggregation g) {
    return (unsigned)g < 4 ? agg_names[g] : "?";
}

const char *loss_name(LossKind k) {
    return (unsigned)k < 2 ? loss_names[k] : "?";
}

bool aggregation_parse(const char *s, Aggregation *out) {
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, agg_names[i]) == 0) { *out = (Aggregation)i; return true; }
    return false;
}

bool loss_parse(const char *s, LossKind *out) {
    for (int i = 0; s && i < 2; i++)
        if (strcmp(s, loss_names[i]) == 0) { *out = (LossKind)i; return true; }
    return false;
}

const char *method_name(MethodKind k) {
    static const char *const names[] = {"relational", "rotation", "simclr", "deepcluster", "dim"};   /* ORDER MethodKind */
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

const char *layer_kind_name(LayerKind k) {
    return (unsigned)k < sizeof layer_kinds / sizeof layer_kinds[0] ? layer_kinds[k].name : "?";
}
