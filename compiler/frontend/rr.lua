-- rr.lua: the `rr` prelude that every spec sees (compiled into rrc as a C
-- string, see tools/embed.sh; run once per sandbox before the spec).
--
-- It defines the constructors (rr.conv2d{...}, rr.model{...}, ...). Each one
-- validates its options, stamps the caller's file:line, and returns a
-- read-only object. Problems are *collected*, not raised, so that one run
-- reports every mistake in a spec; the C side (lf_spec.c) prints them and
-- converts the objects into the structs of spec.h.
--
-- It is not the sandbox (lf_sandbox.c decides which globals exist) and it
-- knows nothing about shapes: whether a conv fits its input is checked when
-- the description is lowered to IR.
--
-- Chunk arguments: C, a table of C helpers {wrap, include, layer_ctors: the
-- layer constructors of layers.def, which this file must define}, and the spec's
-- path as given. Returns the internal table {rr, objs, errors, nerrors}
-- that C keeps in the registry.
--
-- Every constructor is wrapped by C.wrap(impl): a C function that finds the
-- spec's file:line and calls impl(file, line, options, ...). It must be C:
-- `return rr.model{...}` is a tail call, and a Lua callee would replace the
-- spec's frame (losing its line) while a C callee keeps it.

local C, spec_path = ...
-- Everything from the standard library is captured here, once: the spec
-- runs later in the same state and may reassign globals or library fields
-- (ipairs = nil, string.match = ...), which must not change how its
-- options are checked. For the same reason no string method syntax
-- (s:match) is used: it goes through the string table.
local type, next, ipairs, rawget, tostring, select = type, next, ipairs, rawget, tostring, select
local setmetatable, error = setmetatable, error
local mtype, floor, huge, maxinteger = math.type, math.floor, math.huge, math.maxinteger
local sformat, smatch, ssub, sgsub, sbyte = string.format, string.match, string.sub, string.gsub, string.byte
local tsort, tconcat, tunpack = table.sort, table.concat, table.unpack

local INT_MAX = 2147483647
local MAX_DEPTH = 64       -- nesting of layers; keeps C's recursive walk bounded
local MAX_ERRORS = 500     -- errors kept; later ones are only counted

---------------------------------------------------------------------------
-- Objects. A constructor returns an empty proxy; its validated data lives in
-- `objs`, reachable only from here and from C. So nothing a spec does after
-- construction (assigning fields, rawset, ...) can change what C reads, and
-- C can trust the types the validators established. Its keys are strong:
-- with weak keys it was an ephemeron table, whose entries reference other
-- keys (a layer's children), and the collector's ephemeron convergence is
-- quadratic in such chains: time spent inside liblua, out of the
-- instruction cap's reach (docs/DECISIONS.md). A spec runs once and the
-- memory cap bounds what it makes.
---------------------------------------------------------------------------
local objs = {}
local errors = {}
local nerrors = 0

local function copy(t)
    local c = {}
    for k, v in next, t do c[k] = v end
    return c
end

local obj_mt = {__metatable = "rr object"}
obj_mt.__index = function(p, k)
    local v = objs[p][k]
    -- tables inside data (lists of children, pairs) are handed out as copies
    if type(v) == "table" and not objs[v] then return copy(v) end
    return v
end
obj_mt.__newindex = function(p, k)
    local d = objs[p]
    error(sformat("rr.%s objects are read-only (this one was built at %s:%d); " ..
        "build a new one instead of setting '%s'", d.kind, d.file, d.line, tostring(k)), 2)
end
obj_mt.__pairs = function(p)
    return next, copy(objs[p]), nil
end
obj_mt.__tostring = function(p)
    local d = objs[p]
    return sformat("rr.%s{...} (%s:%d)", d.kind, d.file, d.line)
end

local function new_obj(cat, kind, loc, data, bad)
    data.cat, data.kind, data.file, data.line = cat, kind, loc.file, loc.line
    data.bad = bad or nil
    local p = setmetatable({}, obj_mt)
    objs[p] = data
    return p
end

---------------------------------------------------------------------------
-- Errors: one record per problem, printed by C as "file:line: ctor: msg".
---------------------------------------------------------------------------
local function report(loc, ctor, msg)
    nerrors = nerrors + 1
    if #errors < MAX_ERRORS then
        errors[#errors + 1] = {file = loc.file, line = loc.line, msg = ctor .. ": " .. msg}
    end
end

-- How a value looks in "(got ...)".
local function show(v)
    local t = type(v)
    if t == "string" then
        local s = v
        if #s > 40 then s = ssub(s, 1, 37) .. "..." end
        s = sgsub(s, '[%c"\\]', function(c)
            if c == '"' or c == "\\" then return "\\" .. c end
            return sformat("\\%d", sbyte(c))
        end)
        return '"' .. s .. '"'
    elseif t == "number" or t == "boolean" or t == "nil" then
        return tostring(v)
    elseif objs[v] then
        return "rr." .. objs[v].kind .. "{...}"
    end
    return "a " .. t
end

---------------------------------------------------------------------------
-- Validators: function(v) -> true, normalised value | false, "what it must be"
---------------------------------------------------------------------------
local function as_int(v)
    if mtype(v) == "integer" then return v end
    if mtype(v) == "float" and v == floor(v) and v > -2^53 and v < 2^53 then
        return floor(v)   -- floor of an integral float in range is an integer
    end
    return nil
end

local function int_range(lo, hi, what)
    return function(v)
        local i = as_int(v)
        if i and i >= lo and i <= hi then return true, i end
        if i and i > hi then return false, sformat("at most %d", hi) end
        return false, what
    end
end

-- Sizes have upper bounds far above any real model but low enough that
-- shapes, multiply-add counts and memory plans stay well inside 64 bits
-- (a conv of 10^6 channels or padding passed and overflowed the plan).
local WIDTH_MAX, KERNEL_MAX, PIXELS_MAX = 1 << 16, 1024, 1 << 14
local posint = int_range(1, INT_MAX, "a positive integer")
local width = int_range(1, WIDTH_MAX, "a positive integer")         -- channels, features
local ksize = int_range(1, KERNEL_MAX, "a positive integer")        -- kernel sizes, strides
local pad = int_range(0, KERNEL_MAX, "a non-negative integer")      -- padding
local pixels = int_range(1, PIXELS_MAX, "a positive integer")       -- image sizes

local function finite(v)
    return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function number(pred, what)
    return function(v)
        if finite(v) and pred(v) then return true, v + 0.0 end
        return false, what
    end
end

local positive = number(function(x) return x > 0 end, "a number > 0")
local nonneg = number(function(x) return x >= 0 end, "a number >= 0")
local prob = number(function(x) return x >= 0 and x <= 1 end, "a number in [0, 1]")
local unit_open = number(function(x) return x >= 0 and x < 1 end, "a number in [0, 1)")

local function boolean(v)
    if type(v) == "boolean" then return true, v end
    return false, "a boolean (true or false)"
end

-- A module name is one component of a parameter name ("layer1", "0",
-- "downsample"), so it cannot contain dots.
local function modname(v)
    if type(v) == "string" and smatch(v, "^[%w_]+$") and #v <= 64 then return true, v end
    return false, "a name of letters, digits and '_' (a parameter-name component, no dots)"
end

local function enum(...)
    local allowed, names = {}, {}
    for i = 1, select("#", ...) do
        local s = select(i, ...)
        allowed[s] = true
        names[#names + 1] = '"' .. s .. '"'
    end
    local what = "one of " .. tconcat(names, ", ")
    return function(v)
        if type(v) == "string" and allowed[v] then return true, v end
        return false, what
    end
end

-- A plain Lua list (not an rr object) of exactly n items (n = {lo, hi}).
local function plain_list(v, lo, hi)
    if type(v) ~= "table" or objs[v] then return nil end
    local n = 0
    for k in next, v do
        if mtype(k) ~= "integer" or k < 1 then return nil end
        n = n + 1
    end
    for i = 1, n do if rawget(v, i) == nil then return nil end end
    if n < lo or n > hi then return nil end
    return n
end

local function numbers(lo, hi, pred, what)
    return function(v)
        local n = plain_list(v, lo, hi)
        if not n then return false, what end
        local out = {}
        for i = 1, n do
            local x = rawget(v, i)
            if not finite(x) or not pred(x, i, out) then return false, what end
            out[i] = x + 0.0
        end
        return true, out
    end
end

local scale_pair = numbers(2, 2, function(x, i, t) return x > 0 and x <= 1 and (i == 1 or t[1] <= x) end,
    "a pair {lo, hi} with 0 < lo <= hi <= 1")
local ratio_pair = numbers(2, 2, function(x, i, t) return x > 0 and (i == 1 or t[1] <= x) end,
    "a pair {lo, hi} with 0 < lo <= hi")
local betas_pair = numbers(2, 2, function(x) return x >= 0 and x < 1 end,
    "a pair {beta1, beta2} of numbers in [0, 1)")
-- per-channel constants: 3 numbers, or 1 that stands for every channel
local function per_channel(pred, what)
    local check = numbers(1, 3, pred, what)
    return function(v)
        local ok, t = check(v)
        if not ok or #t == 2 then return false, what end
        if #t == 1 then t = {t[1], t[1], t[1]} end
        return true, t
    end
end
local mean3 = per_channel(function() return true end, "a list of 3 numbers (or 1, used for every channel)")
local std3 = per_channel(function(x) return x > 0 end, "a list of 3 numbers > 0 (or 1, used for every channel)")
local milestones = numbers(0, 8, function(x, i, t) return x > 0 and x <= 1 and (i == 1 or t[i - 1] < x) end,
    "a list of at most 8 increasing fractions of the epochs in (0, 1]")

local function shape3(v)
    local n = plain_list(v, 3, 3)
    if n then
        local out = {}
        for i = 1, 3 do
            local x = as_int(rawget(v, i))
            if not x or x < 1 or x > 65536 then n = nil; break end
            out[i] = x
        end
        if n then return true, out end
    end
    return false, "a list {C, H, W} of 3 positive integers"
end

local function object(cat, what)
    return function(v)
        local d = objs[v]
        if d and d.cat == cat then return true, v end
        return false, what
    end
end

---------------------------------------------------------------------------
-- Option parsing. schema = ordered list of {key, validator, default,
-- required = bool}; fields are checked in this order and unknown keys in
-- sorted order, so the error list is the same on every run.
---------------------------------------------------------------------------
local function parse(ctor, example, schema, args, loc, positional)
    local out, bad, pos = {}, false, {}
    local function err(msg) report(loc, ctor, msg); bad = true end
    if type(args) ~= "table" or objs[args] then
        err(sformat("expects a table of options, e.g. %s (got %s)", example, show(args)))
        return out, bad, pos
    end
    local known = {}
    for _, f in ipairs(schema) do
        local key, check = f[1], f[2]
        known[key] = true
        local v = rawget(args, key)
        if v == nil then
            if f.required then
                local _, what = check(nil)
                err(sformat("'%s' is required (%s)", key, what))
            else
                out[key] = f[3]
            end
        else
            local ok, val = check(v)
            if ok then out[key] = val
            else err(sformat("'%s' must be %s (got %s)", key, val, show(v))) end
        end
    end
    local unknown_s, unknown_i, other = {}, {}, 0
    for k in next, args do
        if type(k) == "string" then
            if not known[k] then unknown_s[#unknown_s + 1] = k end
        elseif mtype(k) == "integer" and k >= 1 then
            if positional then pos[k] = args[k] else unknown_i[#unknown_i + 1] = k end
        else
            other = other + 1
        end
    end
    tsort(unknown_s)
    tsort(unknown_i)
    for _, k in ipairs(unknown_s) do
        if #k > 40 then k = ssub(k, 1, 37) .. "..." end
        err(sformat("unknown key '%s'", k))
    end
    for _, k in ipairs(unknown_i) do
        err(sformat("unexpected positional value #%d (options are named, e.g. %s)", k, example))
    end
    if other > 0 then err("keys must be option names (strings)") end
    return out, bad, pos
end

-- Positional values 1..n without holes, as a list.
local function positional_list(ctor, pos, loc)
    local max = 0
    for k in next, pos do if k > max then max = k end end
    local list = {}
    for i = 1, max do
        if pos[i] == nil then
            report(loc, ctor, sformat("element #%d is nil (a hole in the list: an undefined variable?)", i))
            return list, true
        end
        list[i] = pos[i]
    end
    return list, false
end

---------------------------------------------------------------------------
-- Layers. Every layer records the parameter names it owns relative to
-- itself, in order (params: list of {name, "the conv2d at file:line"}), so
-- a container can report two layers that would share a name. The rule is
-- the one IR lowering uses: a named module adds "name." to its parameters'
-- names, an unnamed one adds nothing.
---------------------------------------------------------------------------
local rr = {}

-- Defines rr[kind]; impl(loc, options) builds the object.
local function ctor(kind, impl)
    rr[kind] = C.wrap(function(file, line, nargs, args)
        local loc = {file = file, line = line}
        if nargs > 1 then
            report(loc, kind, sformat("expects one table of options, e.g. rr.%s{...} (got %d arguments)", kind, nargs))
        end
        return impl(loc, args)
    end)
end

local function with_prefix(name, rel)
    if name then return name .. "." .. rel end
    return rel
end

local function leaf_params(d, kind, loc, names)
    local p, from = {}, sformat("the %s at %s:%d", kind, loc.file, loc.line)
    for i, n in ipairs(names) do p[i] = {with_prefix(d.name, n), from} end
    d.params, d.depth = p, 1
end

-- The layer constructors defined here, checked against layers.def at the end.
local layer_ctors = {}

local function layer(kind, example, schema, post)
    layer_ctors[kind] = true
    ctor(kind, function(loc, args)
        local d, bad = parse(kind, example, schema, args, loc, false)
        if post and not bad then bad = post(d, loc) end
        d.params = d.params or {}
        d.depth = d.depth or 1
        return new_obj("layer", kind, loc, d, bad)
    end)
end

local NAME = {"name", modname, nil}

layer("conv2d", "rr.conv2d{out=16, kernel=3}", {
    {"out", width, required = true}, {"kernel", ksize, required = true},
    {"stride", ksize, 1}, {"padding", pad, 0}, {"bias", boolean, true}, NAME,
}, function(d, loc)
    leaf_params(d, "conv2d", loc, d.bias and {"weight", "bias"} or {"weight"})
end)

for _, dims in ipairs({1, 2}) do
    local kind = "batchnorm" .. dims .. "d"
    layer(kind, "rr." .. kind .. "{name='bn'}", {
        {"eps", positive, 1e-5}, {"momentum", prob, 0.1}, NAME,
    }, function(d, loc)
        d.dims = dims
        leaf_params(d, kind, loc, {"weight", "bias", "running_mean", "running_var"})
    end)
end

layer("relu", "rr.relu{}", {NAME})
layer("leaky_relu", "rr.leaky_relu{slope=0.01}", {{"slope", nonneg, 0.01}, NAME})
layer("global_avgpool", "rr.global_avgpool{}", {NAME})
layer("flatten", "rr.flatten{}", {NAME})

for _, kind in ipairs({"avgpool2d", "maxpool2d"}) do
    layer(kind, "rr." .. kind .. "{kernel=2}", {
        {"kernel", ksize, required = true}, {"stride", ksize, nil}, {"padding", pad, 0}, NAME,
    }, function(d, loc)
        d.stride = d.stride or d.kernel
        if 2 * d.padding > d.kernel then   -- PyTorch's rule: pad <= kernel/2
            report(loc, kind, sformat("'padding' must be at most half of 'kernel' (got padding %d, kernel %d)",
                d.padding, d.kernel))
            return true
        end
    end)
end

layer("linear", "rr.linear{out=10}", {
    {"out", width, required = true}, {"bias", boolean, true}, NAME,
}, function(d, loc)
    leaf_params(d, "linear", loc, d.bias and {"weight", "bias"} or {"weight"})
end)

-- Merges the parameter names of `children` under `name`; reports clashes
-- (once per pair of layers).
local function merge_params(kind, loc, name, children)
    local p, owner, told, depth, bad = {}, {}, {}, 0, false
    for _, c in ipairs(children) do
        local cd = objs[c]
        if cd.depth > depth then depth = cd.depth end
        for _, e in ipairs(cd.params) do
            local full, from = with_prefix(name, e[1]), e[2]
            local prev = owner[full]
            if prev then
                if not told[prev .. "|" .. from] then
                    told[prev .. "|" .. from] = true
                    report(loc, kind, sformat("parameter name '%s' would be used twice (by %s and by %s); " ..
                        "give the layers different names", full, prev, from))
                end
                bad = true
            else
                owner[full] = from
                p[#p + 1] = {full, from}
            end
        end
    end
    if depth == MAX_DEPTH then  -- deeper ones were reported where they first got too deep
        report(loc, kind, sformat("layers are nested more than %d deep", MAX_DEPTH))
        bad = true
    end
    return p, depth + 1, bad
end

local function layer_check(ctor, what, v, loc)
    local d = objs[v]
    if d and d.cat == "layer" then return true end
    report(loc, ctor, sformat("%s must be a layer such as rr.conv2d{...} (got %s)", what, show(v)))
    return false
end

layer_ctors.sequential = true
ctor("sequential", function(loc, args)
    local d, bad, pos = parse("sequential", "rr.sequential{name='layer1', rr.relu{}}", {NAME}, args, loc, true)
    local list, holes = positional_list("sequential", pos, loc)
    bad = bad or holes
    local children = {}
    for i, v in ipairs(list) do
        if layer_check("sequential", sformat("element #%d", i), v, loc) then
            children[#children + 1] = v
        else
            bad = true
        end
    end
    d.children = children
    local pbad
    d.params, d.depth, pbad = merge_params("sequential", loc, d.name, children)
    return new_obj("layer", "sequential", loc, d, bad or pbad)
end)

layer_ctors.residual = true
ctor("residual", function(loc, args)
    local d, bad, pos = parse("residual", "rr.residual{body, shortcut=nil}", {
        {"body", function(v) return true, v end, nil},
        {"shortcut", function(v) return true, v end, nil}, NAME,
    }, args, loc, true)
    local list = positional_list("residual", pos, loc)
    if #list > 1 or (#list == 1 and d.body ~= nil) then
        report(loc, "residual", "give exactly one body (positionally or as body=...)")
        bad = true
    end
    d.body = d.body or list[1]
    local children = {}
    if d.body == nil then
        if type(args) == "table" and not objs[args] then
            report(loc, "residual", "'body' is required (a layer)")
        end
        bad = true
    elseif layer_check("residual", "'body'", d.body, loc) then
        children[#children + 1] = d.body
    else
        bad = true
    end
    if d.shortcut ~= nil then
        if layer_check("residual", "'shortcut'", d.shortcut, loc) then
            children[#children + 1] = d.shortcut
        else
            bad = true
        end
    end
    local pbad
    d.params, d.depth, pbad = merge_params("residual", loc, d.name, children)
    return new_obj("layer", "residual", loc, d, bad or pbad)
end)

---------------------------------------------------------------------------
-- Augmentations, head, loss, optimizer.
---------------------------------------------------------------------------
local function simple(cat, kind, example, schema, post)
    ctor(kind, function(loc, args)
        local d, bad = parse(kind, example, schema, args, loc, false)
        if post and not bad then bad = post(d, loc) end
        return new_obj(cat, kind, loc, d, bad)
    end)
end

simple("aug", "random_resized_crop", "rr.random_resized_crop{size=32}", {
    {"size", pixels, required = true}, {"scale", scale_pair, {0.08, 1.0}},
    {"ratio", ratio_pair, {3 / 4, 4 / 3}},
})
simple("aug", "hflip", "rr.hflip{p=0.5}", {{"p", prob, 0.5}})
simple("aug", "color_jitter", "rr.color_jitter{brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2}", {
    {"brightness", nonneg, 0.0}, {"contrast", nonneg, 0.0}, {"saturation", nonneg, 0.0},
    {"hue", number(function(x) return x >= 0 and x <= 0.5 end, "a number in [0, 0.5]"), 0.0},
    {"p", prob, 0.8},
})
simple("aug", "grayscale", "rr.grayscale{p=0.2}", {{"p", prob, 0.2}})
simple("aug", "normalize", "rr.normalize{mean={0.491, 0.482, 0.447}, std={0.247, 0.243, 0.262}}", {
    {"mean", mean3, required = true}, {"std", std3, required = true},
})
simple("aug", "random_crop", "rr.random_crop{size=32, padding=4}", {
    {"size", pixels, required = true}, {"padding", pad, 0},
})

simple("head", "relation_head", "rr.relation_head{aggregation='cat'}", {
    {"aggregation", enum("cat", "sum", "mean", "max"), "cat"},
    {"hidden", width, 256}, {"slope", nonneg, 0.01},
    {"bn_eps", positive, 1e-5}, {"bn_momentum", prob, 0.1},
})

simple("loss", "focal", "rr.focal{gamma=2, alpha=0.5}", {{"gamma", nonneg, 2.0}, {"alpha", prob, 0.5}})
simple("loss", "bce", "rr.bce{}", {})

simple("optim", "adam", "rr.adam{lr=1e-3}", {
    {"lr", positive, 1e-3}, {"betas", betas_pair, {0.9, 0.999}}, {"eps", positive, 1e-8},
    {"weight_decay", nonneg, 0.0},
})
simple("optim", "sgd", "rr.sgd{lr=0.1, momentum=0.9}", {
    {"lr", positive, 0.1}, {"momentum", unit_open, 0.9}, {"weight_decay", nonneg, 0.0},
    {"milestones", milestones, {0.5, 0.75}}, {"gamma", positive, 0.1},
})

---------------------------------------------------------------------------
-- Methods: what the training step learns from (BASELINES.md). Without
-- one, a model trains relational reasoning with its K, relation and loss.
-- A baseline brings its head, a named layer (its name prefixes the head's
-- parameters, as the module's key does in the reference's checkpoints);
-- the defaults are the reference's heads.
---------------------------------------------------------------------------
local function method_head(kind, d, loc, default)
    if d.head == nil then d.head = default() end
    if not objs[d.head].name then
        report(loc, kind, "'head' needs a name (it prefixes the head's parameters, e.g. name='classifier')")
        return true
    end
end

-- RotationNet: each image's view and its rotations by 90, 180 and 270
-- degrees, classified by a head with 4 outputs; cross-entropy.
simple("method", "rotation", "rr.rotation{head=rr.linear{name='classifier', out=4}}", {
    {"head", object("layer", "a layer with 4 outputs, e.g. rr.linear{name='classifier', out=4}"), nil},
}, function(d, loc)
    return method_head("rotation", d, loc, function() return rr.linear{name = "classifier", out = 4} end)
end)

-- SimCLR: two views of each image, a projection head, the reference's
-- contrastive loss at temperature t.
simple("method", "simclr", "rr.simclr{temperature=0.5}", {
    {"temperature", positive, 0.5},
    {"head", object("layer", "a layer, e.g. rr.sequential{name='head', rr.linear{name='linear1', out=256}, ...}"), nil},
}, function(d, loc)
    return method_head("simclr", d, loc, function()
        return rr.sequential{name = "head",
            rr.linear{name = "linear1", out = 256}, rr.batchnorm1d{name = "bn1"},
            rr.leaky_relu{name = "relu"}, rr.linear{name = "linear2", out = 64}}
    end)
end)

-- DeepCluster: each epoch, k-means of the backbone's (PCA-whitened)
-- features gives every image a pseudolabel; the head, whose last linear
-- layer is reset each epoch, learns them with class-weighted
-- cross-entropy. clusters: 10 x the classes in the reference.
simple("method", "deepcluster", "rr.deepcluster{clusters=100}", {
    {"clusters", int_range(2, 1 << 20, "an integer >= 2"), 100},
    {"head", object("layer", "a layer whose last linear layer has `clusters` outputs"), nil},
}, function(d, loc)
    return method_head("deepcluster", d, loc, function()
        return rr.sequential{name = "classifier",
            rr.linear{name = "linear1", out = 256}, rr.batchnorm1d{name = "bn1"},
            rr.leaky_relu{name = "relu"}, rr.linear{name = "linear2", out = d.clusters}}
    end)
end)

-- Deep InfoMax (the reference's alpha = 0: no global discriminator): a
-- local discriminator (1x1 convolutions) tells the map M after the
-- backbone's first ReLU concatenated with the image's features y from M of
-- the next image; a prior discriminator pushes y towards U[0,1) (gamma = 0
-- drops it). Both are named layers, trained by the same step.
simple("method", "dim", "rr.dim{beta=1, gamma=0.1}", {
    {"beta", positive, 1.0}, {"gamma", nonneg, 0.1},
    {"local_d", object("layer", "a layer on [2B, C+F, H, W] with 1 output channel, e.g. 1x1 convolutions"), nil},
    {"prior_d", object("layer", "a layer on [2B, F] with 1 output"), nil},
}, function(d, loc)
    if d.local_d == nil then
        d.local_d = rr.sequential{name = "local_d",
            rr.conv2d{name = "c0", out = 256, kernel = 1}, rr.relu{},
            rr.conv2d{name = "c1", out = 256, kernel = 1}, rr.relu{},
            rr.conv2d{name = "c2", out = 1, kernel = 1}}
    end
    if d.prior_d == nil then
        d.prior_d = rr.sequential{name = "prior_d",
            rr.linear{name = "l0", out = 512}, rr.relu{},
            rr.linear{name = "l1", out = 128}, rr.relu{},
            rr.linear{name = "l2", out = 1}}
    end
    for _, k in ipairs({"local_d", "prior_d"}) do
        if not objs[d[k]].name then
            report(loc, "dim", sformat("'%s' needs a name (it prefixes its parameters, e.g. name='%s')", k, k))
            return true
        end
    end
end)

---------------------------------------------------------------------------
-- The model.
---------------------------------------------------------------------------
-- Dataset names the runtime knows (runtime/ datasets); an unknown one is a
-- spec error reported here, at its line, rather than at training time.
local DATASETS = {"cifar10", "cifar100", "stl10", "tiny-imagenet", "slimagenet64", "mnist", "fashion-mnist"}

local function default_name()
    local base = sgsub(smatch(spec_path, "([^/]*)$"), "%.lua$", "")
    base = sgsub(base, "[^%w_]", "_")
    if not smatch(base, "^[%a_]") then base = "_" .. base end
    return base
end

local function aug_list(v)
    local n = plain_list(v, 0, 64)
    if not n then return false, "a list of augmentations such as {rr.hflip{}, rr.grayscale{}} (at most 64)" end
    for i = 1, n do
        local d = objs[rawget(v, i)]
        if not (d and d.cat == "aug") then
            return false, sformat("a list of augmentations (element #%d is %s)", i, show(rawget(v, i)))
        end
    end
    return true, copy(v)
end

ctor("model", function(loc, args)
    local d, bad = parse("model", "rr.model{input={3,32,32}, backbone=...}", {
        {"name", function(v)
            if type(v) == "string" and smatch(v, "^[%a_][%w_]*$") and #v <= 64 then return true, v end
            return false, "an identifier of at most 64 characters (letters, digits, '_'; it names generated files and symbols)"
        end, default_name()},
        {"input", shape3, required = true},
        {"backbone", object("layer", "a layer, e.g. rr.sequential{...}"), required = true},
        {"K", int_range(2, 4096, "an integer >= 2 (views per image)"), 4},
        {"augment", aug_list, {}},
        {"relation", object("head", "rr.relation_head{...}"), nil},
        {"loss", object("loss", "a loss: rr.focal{...} or rr.bce{}"), nil},
        {"method", object("method", "a method: rr.rotation{...}, rr.simclr{...}, rr.deepcluster{...} or rr.dim{...} (none: relational reasoning)"), nil},
        {"optimizer", object("optim", "an optimizer: rr.adam{...} or rr.sgd{...}"), nil},
        {"data", enum(tunpack(DATASETS)), "cifar10"},
        {"batch", int_range(2, 1 << 20, "an integer >= 2 (negatives need two images)"), 64},
        {"epochs", posint, 100},
        {"seed", int_range(0, maxinteger, "a non-negative integer"), 1},
    }, args, loc, false)
    if d.method ~= nil then
        for _, key in ipairs({"K", "relation", "loss"}) do
            if rawget(args, key) ~= nil then
                report(loc, "model", sformat("'%s' is an option of relational reasoning, but the model trains rr.%s{...}",
                    key, objs[d.method].kind))
                bad = true
            end
        end
    end
    -- defaults are objects too; they carry the model's line
    d.relation = d.relation or rr.relation_head{}
    d.loss = d.loss or rr.focal{}
    d.optimizer = d.optimizer or rr.adam{}
    if not bad and #d.name > 64 then
        -- the default, from the file name, names generated files too: a
        -- long one would fail only when the trainer is written
        report(loc, "model", sformat("the model's name defaults to the file's, '%s...' (%d characters), "
            .. "but may have at most 64: give it a name = \"...\"", ssub(d.name, 1, 24), #d.name))
        bad = true
    end
    if not bad then
        -- the last resizing augmentation decides the size of a view
        local size, by
        for _, a in ipairs(d.augment) do
            local ad = objs[a]
            if ad.kind == "random_resized_crop" or ad.kind == "random_crop" then size, by = ad.size, ad end
        end
        if size and (size ~= d.input[2] or size ~= d.input[3]) then
            report(loc, "model", sformat("the views are %dx%d (%s at %s:%d) but 'input' is %dx%dx%d",
                size, size, by.kind, by.file, by.line, d.input[1], d.input[2], d.input[3]))
            bad = true
        end
    end
    return new_obj("model", "model", loc, d, bad)
end)

---------------------------------------------------------------------------
-- Files: rr.include("x.lua") runs a helper file from the spec's directory
-- or its lib/ subdirectory (C checks the path and reads the file).
---------------------------------------------------------------------------
rr.include = C.include

-- The `rr` global is a read-only view: a spec cannot replace a constructor
-- by mistake, and a misspelt one gets a clear error.
local rr_proxy = setmetatable({}, {
    __metatable = "rr",
    __index = function(_, k)
        local v = rr[k]
        if v == nil then
            error(sformat("'rr.%s' does not exist (see specs/README.md for the constructors)", tostring(k)), 2)
        end
        return v
    end,
    __newindex = function(_, k)
        error(sformat("rr is read-only (cannot set 'rr.%s')", tostring(k)), 2)
    end,
    __pairs = function() return next, copy(rr), nil end,
})

-- This file and layers.def must name the same layer constructors.
do
    local listed = {}
    for _, k in ipairs(C.layer_ctors) do
        listed[k] = true
        if not layer_ctors[k] then error("layers.def lists layer constructor rr." .. k .. ", which rr.lua does not define") end
    end
    for k in next, layer_ctors do
        if not listed[k] then error("rr.lua defines layer constructor rr." .. k .. ", which layers.def does not list") end
    end
end

return {
    rr = rr_proxy,
    objs = objs,
    errors = errors,
    nerrors = function() return nerrors end,
}
