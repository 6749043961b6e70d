-- expect: tests/specs/bad_include.lua:3: include: '../../specs/lib/resnet.lua' is not allowed: give a relative path to a .lua file in the spec's directory or its lib/ (no '..', no absolute path)
-- rr.include reads only from the spec's directory and its lib/.
local resnet = rr.include("../../specs/lib/resnet.lua")
return rr.model{input = {3, 32, 32}, backbone = resnet.cifar(1)}
