-- expect: tests/specs/bad_readonly.lua:4: rr.conv2d objects are read-only (this one was built at tests/specs/bad_readonly.lua:3); build a new one instead of setting 'stride'
-- Objects cannot be changed after they were checked.
local conv = rr.conv2d{out = 4, kernel = 3}
conv.stride = 0
