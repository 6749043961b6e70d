-- expect: tests/specs/bad_pcall_loop.lua:4: instruction limit exceeded (10^8 instructions): endless loop?
-- A pcall cannot swallow the instruction limit.
while true do
    pcall(function() while true do end end)
end
