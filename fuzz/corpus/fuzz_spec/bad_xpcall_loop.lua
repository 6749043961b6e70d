-- expect: tests/specs/bad_xpcall_loop.lua:4: instruction limit exceeded (10^8 instructions): endless loop?
-- xpcall's message handler cannot escape the instruction limit: Lua runs
-- it where the error was raised, which for the limit is inside the hook.
xpcall(function() while true do end end, function() while true do end end)
return {}
