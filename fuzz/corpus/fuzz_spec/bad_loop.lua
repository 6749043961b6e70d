-- expect: tests/specs/bad_loop.lua:4: instruction limit exceeded (10^8 instructions): endless loop?
-- An endless loop stops at the instruction cap.
local n = 0
while true do end
