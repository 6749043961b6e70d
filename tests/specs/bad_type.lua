-- expect: tests/specs/bad_type.lua:5: conv2d: 'stride' must be a positive integer (got "2")
-- A wrong type: a string where a number belongs (no silent coercion).
return rr.model{
    input = {3, 8, 8},
    backbone = rr.sequential{rr.conv2d{out = 4, kernel = 3, stride = "2"}, rr.global_avgpool{}},
}
