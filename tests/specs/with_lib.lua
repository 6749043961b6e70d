-- with_lib.lua: helpers shared through rr.include and require; both give
-- the same (cached) module. Globals a spec defines itself are fine.
local blocks = rr.include("blocks.lua")
assert(require("blocks") == blocks)
function width(i) return 4 * i end
return rr.model{
    input = {3, 8, 8},
    backbone = rr.sequential{
        blocks.conv_bn_relu("layer1", width(1)),
        blocks.conv_bn_relu("layer2", width(2)),
        rr.global_avgpool{},
    },
}
