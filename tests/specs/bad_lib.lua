-- expect: tests/specs/lib/broken.lua:4: conv2d: 'stride' must be a positive integer (got 0)
-- expect: tests/specs/lib/broken.lua:7: attempt to index a nil value (field 'x')
-- Errors in an included file name that file and its line.
local lib = rr.include("broken.lua")
local conv = lib.block(8)
lib.crash({})
