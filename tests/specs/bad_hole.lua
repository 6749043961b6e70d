-- expect: tests/specs/bad_hole.lua:4: sequential: element #2 is nil (a hole in the list: an undefined variable?)
-- A nil in a list of layers (here a local that was never set).
local conv, bn
local net = rr.sequential{rr.conv2d{out = 4, kernel = 3}, bn, rr.relu{}}
return rr.model{input = {3, 8, 8}, backbone = net}
