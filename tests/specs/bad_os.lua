-- expect: tests/specs/bad_os.lua:4: 'os' is not available in a spec (sandbox)
-- Running a command: os does not exist in the sandbox.
local n = 3
os.execute("echo spec escaped the sandbox >&2")
return rr.model{input = {3, 8, 8}, backbone = rr.global_avgpool{}}
