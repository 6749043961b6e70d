-- expect: tests/specs/bad_io.lua:3: 'io' is not available in a spec (sandbox)
-- A file access attempt: a spec cannot read or write files.
local f = io.open("/etc/passwd", "r")
return rr.model{input = {3, 8, 8}, backbone = rr.global_avgpool{}}
