-- expect: tests/specs/bad_dump.lua:3: 'string.dump' is not available in a spec (sandbox)
-- string.dump would make binary chunks; it is removed.
local code = string.dump(function() return 1 end)
return rr.model{input = {3, 8, 8}, backbone = rr.global_avgpool{}}
