-- expect: tests/specs/bad_binary.lua:4: 'load' is not available in a spec (sandbox)
-- Loading a binary chunk: load does not exist (and every file is loaded as text only).
local chunk = "\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\40\119\64"
local f = load(chunk, "x", "b")
return rr.model{input = {3, 8, 8}, backbone = rr.global_avgpool{}}
