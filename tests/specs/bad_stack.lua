-- expect: tests/specs/bad_stack.lua:3: stack overflow
-- Unbounded recursion.
local function f(n) return 1 + f(n + 1) end
return f(1)
