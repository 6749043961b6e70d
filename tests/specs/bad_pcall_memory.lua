-- expect: tests/specs/bad_pcall_memory.lua:6: memory limit exceeded (256 MiB): runaway allocation?
-- A pcall cannot swallow the memory limit and run on.
local ok = false
while not ok do
    local s = "x"
    ok = pcall(function() for i = 1, 64 do s = string.rep(s, 2) end end)
end
return {}
