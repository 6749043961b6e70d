-- expect: tests/specs/bad_require.lua:3: require: 'os' is not available in a spec (sandbox)
-- require only finds .lua helpers next to the spec; standard libraries outside the sandbox are refused.
local os = require("os")
return rr.model{input = {3, 8, 8}, backbone = rr.global_avgpool{}}
