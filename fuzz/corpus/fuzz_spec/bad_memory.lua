-- expect: tests/specs/bad_memory.lua:5: memory limit exceeded (256 MiB): runaway allocation?
-- A memory bomb: a string doubling until the cap stops it.
local s = "x"
for i = 1, 64 do
    s = string.rep(s, 2)
end
return s
