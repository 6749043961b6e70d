-- expect: tests/specs/bad_negative.lua:4: conv2d: 'out' must be a positive integer (got -8)
-- A value out of range: a negative channel count.
local backbone = rr.sequential{
    rr.conv2d{out = -8, kernel = 3},
    rr.global_avgpool{},
}
return rr.model{input = {3, 8, 8}, backbone = backbone}
