-- expect: tests/specs/bad_method.lua:9: simclr: 'head' needs a name (it prefixes the head's parameters, e.g. name='classifier')
-- expect: tests/specs/bad_method.lua:10: simclr: 'temperature' must be a number > 0 (got 0)
-- expect: tests/specs/bad_method.lua:11: model: 'K' is an option of relational reasoning, but the model trains rr.rotation{...}
-- expect: tests/specs/bad_method.lua:11: model: 'loss' is an option of relational reasoning, but the model trains rr.rotation{...}
-- A baseline with relational reasoning's options, an unnamed head and a
-- zero temperature.
local unnamed = rr.linear{out = 8}
local named = rr.linear{name = "head", out = 8}
local _ = rr.simclr{head = unnamed}
local _ = rr.simclr{temperature = 0, head = named}
return rr.model{
    input = {3, 8, 8},
    backbone = rr.global_avgpool{},
    method = rr.rotation{},
    K = 8,
    loss = rr.bce{},
}
