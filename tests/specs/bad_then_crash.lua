-- expect: tests/specs/bad_then_crash.lua:4: linear: 'out' is required (a positive integer)
-- expect: tests/specs/bad_then_crash.lua:5: undefined global 'x'
-- Errors collected before a runtime error are reported too, first.
local fc = rr.linear{bias = false}
local y = x + 1
