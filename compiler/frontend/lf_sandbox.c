/*
** lf_sandbox.c: the Lua state a spec runs in.
**
** A spec is a program, so rrc runs it in a fresh lua_State that can compute
** but cannot touch the outside world: the base functions on an allow-list,
** string (without dump), table and math (without random); no io, os,
** debug, package, load or collectgarbage. Reading any other global is an
** error naming it. Memory is capped by the allocator, time by an
** instruction-count hook, and files can only be read through
** rr.include/require, from the spec's directory or its lib/ subdirectory,
** as Lua source (binary chunks are refused everywhere).
**
** It is not where specs are interpreted: the rr prelude (rr.lua) builds the
** objects and lf_spec.c converts them.
*/
#include "frontend/lf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

extern const char rr_prelude_lua[];
extern const size_t rr_prelude_lua_len;

static LfSandbox *sandbox_of(lua_State *L) {
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/*
** The allocator: plain realloc, refusing to grow past mem_cap. Lua turns
** the refusal into a "not enough memory" error; we remember where the spec
** was so the report can name the line.
*/
static void lf_hook(lua_State *L, lua_Debug *ar);

static void *lf_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    LfSandbox *sb = ud;
    size_t old = ptr ? osize : 0;  /* without ptr, osize encodes a type */
    if (nsize == 0) {
        free(ptr);
        sb->mem_used -= old;
        return NULL;
    }
    if (nsize > old && sb->mem_used - old + nsize > sb->mem_cap) {
        if (!sb->mem_exceeded && sb->L && !sb->querying) {
            sb->mem_exceeded = true;
            sb->limit_loc = lf_user_where(sb);
            /* from the next instruction on every instruction fails: a pcall
               that caught "not enough memory" cannot run on (lua_sethook
               may be called from anywhere, the allocator included) */
            lua_sethook(sb->L, lf_hook, LUA_MASKCOUNT, 1);
        }
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (!q) return nsize <= old ? ptr : NULL;  /* Lua assumes shrinking never fails */
    sb->mem_used = sb->mem_used - old + nsize;
    return q;
}

static int lf_panic(lua_State *L) {
    const char *m = lua_tostring(L, -1);
    RRC_ABORT("unprotected Lua error: %s", m ? m : "?");
}

const char *lf_intern_file(LfSandbox *sb, const char *path) {
    for (int i = 0; i < sb->nfiles; i++)
        if (strcmp(sb->files[i], path) == 0) return sb->files[i];
    sb->files = xrealloc(sb->files, (size_t)(sb->nfiles + 1) * sizeof *sb->files);
    return sb->files[sb->nfiles++] = xstrdup(path);
}

/*
** Frames of C functions have no current line and the prelude's chunk is
** named "=rr", so the first frame with an "@file" source and a line is the
** spec (or a file it included). lua_getinfo "S" gives the full source
** name, unlike short_src which Lua truncates to 60 characters.
*/
SrcLoc lf_user_where(LfSandbox *sb) {
    lua_State *L = sb->L;
    lua_Debug ar;
    sb->querying = true;
    SrcLoc loc = {sb->spec_path, 0};
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar)) continue;
        if (ar.currentline <= 0 || ar.source[0] != '@') continue;
        loc.file = lf_intern_file(sb, ar.source + 1);
        loc.line = ar.currentline;
        break;
    }
    sb->querying = false;
    return loc;
}

/* Raises "file:line: message" at the innermost spec frame. */
static int lf_error_here(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lf_error_here(lua_State *L, const char *fmt, ...) {
    SrcLoc loc = lf_user_where(sandbox_of(L));
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (loc.line > 0) lua_pushfstring(L, "%s:%d: %s", loc.file, loc.line, msg);
    else lua_pushfstring(L, "%s: %s", loc.file, msg);
    return lua_error(L);
}

/*
** Message handler: no traceback (one line per error), and a position for
** messages raised without one (error("x", 0), error({})), taken from the
** spec frame that raised it. It runs where the error happened, before the
** stack unwinds, so that frame is still there.
*/
static int lf_msgh(lua_State *L) {
    LfSandbox *sb = sandbox_of(L);
    const char *msg;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
        msg = lua_tostring(L, 1);
    else  /* no __tostring call: the handler runs no spec code */
        msg = lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
    SrcLoc loc;
    if (lf_split_message(sb, msg, &loc)) return 1;
    loc = lf_user_where(sb);
    if (loc.line > 0) lua_pushfstring(L, "%s:%d: %s", loc.file, loc.line, msg);
    else lua_pushfstring(L, "%s: %s", loc.file, msg);
    return 1;
}

/* ---- Globals ---------------------------------------------------------- */

/* What a spec might reach for and cannot have; reading one says so. */
static const char *const forbidden[] = {
    "io", "os", "debug", "package", "load", "loadstring", "dofile", "loadfile",
    "collectgarbage", "coroutine", "utf8", "setfenv", "getfenv", "module", NULL,
};

static bool in_list(const char *const *list, const char *s) {
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}

/* __index of _G: every global a spec reads must exist. */
static int lf_global_index(lua_State *L) {
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    if (!k) return lf_error_here(L, "undefined global of type %s", luaL_typename(L, 2));
    if (in_list(forbidden, k)) return lf_error_here(L, "'%s' is not available in a spec (sandbox)", k);
    if (strcmp(k, "unpack") == 0) return lf_error_here(L, "undefined global 'unpack' (use table.unpack)");
    return lf_error_here(L, "undefined global '%.100s'", k);
}

/* __index of the string and math tables: the removed functions say why. */
static int lf_lib_index(lua_State *L) {
    const char *lib = lua_tostring(L, lua_upvalueindex(1));
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "dump") == 0 || strcmp(k, "random") == 0 || strcmp(k, "randomseed") == 0)
        if ((lib[0] == 's') == (k[0] == 'd'))  /* string.dump, math.random[seed] */
            return lf_error_here(L, "'%s.%s' is not available in a spec (sandbox%s)", lib, k,
                                 k[0] == 'r' ? ": a spec must give the same model on every run" : "");
    lua_pushnil(L);
    return 1;
}

/* print() goes to stderr: stdout may carry rrc's own output. */
static int lf_print(lua_State *L) {
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1) fputc('\t', stderr);
        fwrite(s, 1, len, stderr);
        lua_pop(L, 1);
    }
    fputc('\n', stderr);
    return 0;
}

/*
** xpcall(f, msgh, ...) as pcall(f, ...) followed, on an error, by
** msgh(error): Lua's own xpcall runs the handler where the error was
** raised, and an error raised by the instruction hook is raised with hooks
** switched off, so a looping handler escaped the instruction cap. Here the
** handler runs after the unwinding, with hooks on, and its own errors
** propagate (as "error in error handling" would). Specs get the same
** results but for tracebacks, which the sandbox does not offer anyway.
*/
static int lf_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checkstack(L, n + 2, "too many arguments to xpcall");
    lua_pushvalue(L, 1);   /* f, then its arguments */
    for (int i = 3; i <= n; i++) lua_pushvalue(L, i);
    if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) {   /* f's results from n + 1 on */
        lua_pushboolean(L, 1);
        lua_insert(L, n + 1);
        return lua_gettop(L) - n;
    }
    lua_pushvalue(L, 2);
    lua_insert(L, -2);     /* msgh, error */
    lua_call(L, 1, 1);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/*
** setmetatable without __gc: Lua runs finalizers with hooks switched off
** (lgc.c, GCTM), so a __gc loop would escape the instruction cap, and it
** could run after the spec, during lua_close. Lua registers an object for
** finalization only if its metatable has __gc when it is set, so checking
** here is enough.
*/
static int lf_setmetatable(lua_State *L) {
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        bool gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (gc) return lf_error_here(L, "'__gc' metamethods are not available in a spec (sandbox)");
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static const char *const allowed_base[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select",
    "tonumber", "tostring", "type", "rawequal", "rawget", "rawlen", "rawset",
    "setmetatable", "getmetatable", "_G", "_VERSION", NULL,
};

static void open_libs(lua_State *L) {
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    /* drop every base function not on the allow-list (clearing fields
       during lua_next is allowed) */
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && !in_list(allowed_base, lua_tostring(L, -1))) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, -4);
        }
    }
    lua_pushcfunction(L, lf_print);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, lf_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, lf_xpcall);
    lua_setfield(L, -2, "xpcall");
    lua_pop(L, 1);

    static const struct { const char *name; lua_CFunction open; const char *drop[3]; } libs[] = {
        {LUA_STRLIBNAME, luaopen_string, {"dump", NULL, NULL}},
        {LUA_TABLIBNAME, luaopen_table, {NULL, NULL, NULL}},
        {LUA_MATHLIBNAME, luaopen_math, {"random", "randomseed", NULL}},
    };
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 1);
        for (int j = 0; libs[i].drop[j]; j++) {
            lua_pushnil(L);
            lua_setfield(L, -2, libs[i].drop[j]);
        }
        if (libs[i].drop[0]) {
            lua_createtable(L, 0, 1);
            lua_pushstring(L, libs[i].name);
            lua_pushcclosure(L, lf_lib_index, 1);
            lua_setfield(L, -2, "__index");
            lua_setmetatable(L, -2);
        }
        lua_pop(L, 1);
    }
    /* luaL_requiref also recorded the libraries in package.loaded-like
       registry table _LOADED; that is harmless (no Lua access to it). */
}

/* ---- Files ------------------------------------------------------------ */

/* Reads a whole file (at most LF_FILE_CAP bytes). On failure returns NULL
   and a reason in err. */
static char *read_file(const char *path, size_t *len, char *err, size_t errsz) {
    /* opened without blocking and checked to be a regular file: opening a
       FIFO for reading waits for a writer, forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errsz, "cannot open: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "not a regular file (%s)", S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket");
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        snprintf(err, errsz, "cannot open: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap > LF_FILE_CAP) break;
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool failed = ferror(f) != 0;
    int e = errno;
    fclose(f);
    if (failed) snprintf(err, errsz, "cannot read: %s", strerror(e));
    else if (n > LF_FILE_CAP) snprintf(err, errsz, "file is larger than %zu MiB", LF_FILE_CAP >> 20);
    if (failed || n > LF_FILE_CAP) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/*
** Loads a file as a text chunk named "@path" (so messages say
** "path:line:"). Binary chunks are refused before Lua sees them (with a
** clearer message than Lua's), and by mode "t" as well.
** Pushes the function, or an error message; returns a Lua status.
*/
static int load_file(LfSandbox *sb, const char *path) {
    lua_State *L = sb->L;
    char err[256];
    size_t len = 0;
    char *buf = read_file(path, &len, err, sizeof err);
    if (!buf) {
        lua_pushfstring(L, "%s: %s", path, err);
        return LUA_ERRFILE;
    }
    lf_intern_file(sb, path);
    /* skip a "#!" first line as the lua command does, keeping its newline
       so that line numbers stay right */
    const char *src = buf;
    if (len > 0 && src[0] == '#')
        while (len > 0 && *src != '\n') { src++; len--; }
    int st;
    if (len > 0 && src[0] == LUA_SIGNATURE[0]) {
        lua_pushfstring(L, "%s: is a precompiled (binary) chunk; specs must be Lua source", path);
        st = LUA_ERRSYNTAX;
    } else {
        lua_pushfstring(L, "@%s", path);
        const char *chunkname = lua_tostring(L, -1);
        st = luaL_loadbufferx(L, src, len, chunkname, "t");
        lua_remove(L, -2);
    }
    free(buf);
    return st;
}

/* An include path: relative, plain characters, no "." or ".." components,
   ending in ".lua". Keeps every read inside the two allowed directories. */
static bool include_path_ok(const char *p) {
    size_t n = strlen(p);
    if (n < 5 || n > 200 || strcmp(p + n - 4, ".lua") != 0 || p[0] == '/') return false;
    for (const char *c = p; *c; c++) {
        bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                     (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.' || *c == '/';
        if (!plain) return false;
    }
    for (const char *s = p; *s;) {  /* each component */
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return false;
        s += len + (e ? 1 : 0);
    }
    return true;
}

/* The spec search path (spec_set_search_path): where rr.include looks
   after the spec's own directory. */
static const char *const *search_dirs;
static int nsearch_dirs;

void spec_set_search_path(const char *const *dirs, int n) {
    search_dirs = dirs;
    nsearch_dirs = n;
}

/*
** rr.include(path): runs a helper file once and returns what it returned
** (cached, like require). Looks in the spec's directory and its lib/, then
** in each directory of the spec search path and its lib/.
*/
static int lf_include_path(lua_State *L, const char *name, const char *who) {
    LfSandbox *sb = sandbox_of(L);
    if (!include_path_ok(name))
        return lf_error_here(L, "%s: '%.200s' is not allowed: give a relative path to a .lua file in the "
                             "spec's directory or its lib/ (no '..', no absolute path)", who, name);
    const char *path = NULL;
    const char *dirs[2] = {"", "lib/"};
    for (int d = -1; d < nsearch_dirs && !path; d++) {
        const char *base = d < 0 ? sb->dir : search_dirs[d];
        const char *sep = d < 0 || !base[0] || base[strlen(base) - 1] == '/' ? "" : "/";
        for (int i = 0; i < 2 && !path; i++) {
            path = lua_pushfstring(L, "%s%s%s%s", base, sep, dirs[i], name);  /* stays on the stack */
            FILE *f = fopen(path, "rb");
            if (f) fclose(f);
            else path = NULL;
        }
    }
    if (!path) {
        luaL_Buffer places;
        luaL_buffinit(L, &places);
        for (int d = 0; d < nsearch_dirs; d++) {
            luaL_addstring(&places, ", ");
            luaL_addstring(&places, search_dirs[d]);
            luaL_addstring(&places, " (and lib/)");
        }
        luaL_pushresult(&places);
        return lf_error_here(L, "%s: cannot find '%s' (looked in %s and %slib/%s)", who, name,
                             sb->dir[0] ? sb->dir : "./", sb->dir, lua_tostring(L, -1));
    }
    lua_getfield(L, LUA_REGISTRYINDEX, "rrc.included");
    int cache = lua_gettop(L);
    lua_getfield(L, cache, path);
    if (lua_toboolean(L, -1) && lua_type(L, -1) == LUA_TLIGHTUSERDATA)
        return lf_error_here(L, "%s: '%s' includes itself (directly or through other files)", who, path);
    if (!lua_isnil(L, -1)) return 1;  /* already run: same value again */
    lua_pop(L, 1);
    lua_pushlightuserdata(L, sb);      /* marks "being loaded" */
    lua_setfield(L, cache, path);
    if (load_file(sb, path) != LUA_OK) {
        lua_pushnil(L);
        lua_setfield(L, cache, path);
        return lua_error(L);
    }
    lua_pushcfunction(L, lf_msgh);
    lua_insert(L, -2);
    if (lua_pcall(L, 0, 1, -2) != LUA_OK) {
        lua_pushnil(L);
        lua_setfield(L, cache, path);
        return lua_error(L);           /* the message already names the file and line */
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, cache, path);
    return 1;  /* the result (the handler below it is dropped) */
}

static int lf_include(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return lf_error_here(L, "include: expects a file name such as \"resnet.lua\" (got a %s)",
                             luaL_typename(L, 1));
    return lf_include_path(L, lua_tostring(L, 1), "include");
}

/* require(name): rr.include of name.lua (dots become '/'); the standard
   libraries a spec may use are returned as they are, the others refused. */
static int lf_require(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING)
        return lf_error_here(L, "require: expects a module name (got a %s)", luaL_typename(L, 1));
    const char *name = lua_tostring(L, 1);
    if (strcmp(name, "string") == 0 || strcmp(name, "table") == 0 || strcmp(name, "math") == 0) {
        lua_getglobal(L, name);
        return 1;
    }
    size_t n = strlen(name);
    bool plain = n > 0 && n < 190;
    for (size_t i = 0; plain && i < n; i++) {
        char c = name[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || (c == '.' && i > 0 && i + 1 < n && name[i - 1] != '.');
    }
    const char *dot = strchr(name, '.');
    char head[200];
    snprintf(head, sizeof head, "%.*s", dot ? (int)(dot - name) : (int)n, name);
    if (!plain || in_list(forbidden, head))
        return lf_error_here(L, "require: '%.100s' is not available in a spec (sandbox)", name);
    char file[200];
    snprintf(file, sizeof file, "%s.lua", name);
    for (char *c = file; c < file + n; c++)
        if (*c == '.') *c = '/';
    return lf_include_path(L, file, "require");
}

/* A constructor: calls the prelude's impl(file, line, nargs, options)
   with the spec's file:line. Being a C function matters: a tail call
   (`return rr.model{...}`) to a C function keeps the caller's frame, so
   the line is still there to be found. */
static int lf_ctor(lua_State *L) {
    SrcLoc loc = lf_user_where(sandbox_of(L));
    int nargs = lua_gettop(L);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushstring(L, loc.file);
    lua_pushinteger(L, loc.line);
    lua_pushinteger(L, nargs);
    lua_pushvalue(L, 1);
    lua_call(L, 4, 1);
    return 1;
}

static int lf_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushcclosure(L, lf_ctor, 1);
    return 1;
}

/* ---- Running ---------------------------------------------------------- */

static void lf_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    LfSandbox *sb = sandbox_of(L);
    if (!sb->instr_exceeded && !sb->mem_exceeded) {
        sb->instr_exceeded = true;
        sb->limit_loc = lf_user_where(sb);
    }
    /* fire again at the next instruction: a pcall in the spec may catch
       this error, but cannot run on */
    lua_sethook(L, lf_hook, LUA_MASKCOUNT, 1);
    lua_pushstring(L, sb->mem_exceeded ? "not enough memory" : "instruction limit exceeded");
    lua_error(L);
}

int lf_sandbox_run(LfSandbox *sb) {
    lua_State *L = sb->L;
    lua_pushcfunction(L, lf_msgh);
    int h = lua_gettop(L);
    int st = load_file(sb, sb->spec_path);
    if (st == LUA_OK) {
        /* the spec counts as "being loaded": including it is a cycle */
        lua_getfield(L, LUA_REGISTRYINDEX, "rrc.included");
        lua_pushlightuserdata(L, sb);
        lua_setfield(L, -2, sb->spec_path);
        lua_pop(L, 1);
        lua_sethook(L, lf_hook, LUA_MASKCOUNT, LF_INSTR_CAP);
        st = lua_pcall(L, 0, 1, h);
        lua_sethook(L, NULL, 0, 0);
    }
    /* the caps are for the spec; reading its results must not hit them */
    sb->mem_cap = (size_t)-1;
    lua_remove(L, h);
    return st;
}

const char *lf_split_message(LfSandbox *sb, const char *msg, SrcLoc *loc) {
    for (int i = 0; i < sb->nfiles; i++) {
        const char *f = sb->files[i];
        size_t n = strlen(f);
        /* the name as given, or Lua's short_src form of a long one: "..." + tail */
        size_t shown_len = 0;
        if (strncmp(msg, f, n) == 0) {
            shown_len = n;
        } else if (strncmp(msg, "...", 3) == 0) {
            size_t tail = strcspn(msg + 3, ":");
            if (tail > 0 && tail < n && strncmp(f + n - tail, msg + 3, tail) == 0) shown_len = tail + 3;
        }
        if (!shown_len) continue;
        const char *p = msg + shown_len;
        if (p[0] != ':' || p[1] < '0' || p[1] > '9') continue;
        char *end;
        long line = strtol(p + 1, &end, 10);
        if (end[0] != ':' || line <= 0 || line > 1000000000) continue;
        loc->file = f;
        loc->line = (int)line;
        return end[1] == ' ' ? end + 2 : end + 1;
    }
    return NULL;
}

/* ---- Creation --------------------------------------------------------- */

LfSandbox *lf_sandbox_new(const char *spec_path, Diag *d) {
    LfSandbox *sb = xcalloc(1, sizeof *sb);
    sb->mem_cap = LF_MEM_CAP;
    sb->spec_path = spec_path;
    const char *slash = strrchr(spec_path, '/');
    size_t dl = slash ? (size_t)(slash - spec_path) + 1 : 0;
    sb->dir = xmalloc(dl + 1);
    memcpy(sb->dir, spec_path, dl);
    sb->dir[dl] = 0;
    lua_State *L = lua_newstate(lf_alloc, sb);
    if (!L) {
        diag_error(d, (SrcLoc){spec_path, 0}, "cannot create a Lua state");
        lf_sandbox_free(sb);
        return NULL;
    }
    sb->L = L;
    lua_atpanic(L, lf_panic);
    open_libs(L);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "rrc.included");

    /* the prelude: chunk arguments are the C helpers and the spec path */
    if (luaL_loadbufferx(L, rr_prelude_lua, rr_prelude_lua_len, "=rr", "t") != LUA_OK)
        RRC_ABORT("the rr prelude does not load: %s", lua_tostring(L, -1));
    lua_createtable(L, 0, 3);
    lf_push_layer_ctors(L);
    lua_setfield(L, -2, "layer_ctors");
    lua_pushcfunction(L, lf_include);
    lua_setfield(L, -2, "include");
    lua_pushcfunction(L, lf_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pushstring(L, spec_path);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
        RRC_ABORT("the rr prelude fails: %s", lua_tostring(L, -1));
    lua_getfield(L, -1, "rr");
    lua_setglobal(L, "rr");
    lua_setfield(L, LUA_REGISTRYINDEX, LF_INTERNAL);
    lua_pushcfunction(L, lf_require);
    lua_setglobal(L, "require");

    /* strict globals, installed last so that setting up can define them */
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lf_global_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    return sb;
}

void lf_sandbox_free(LfSandbox *sb) {
    if (!sb) return;
    if (sb->L) lua_close(sb->L);
    for (int i = 0; i < sb->nfiles; i++) free(sb->files[i]);
    free(sb->files);
    free(sb->dir);
    free(sb);
}
