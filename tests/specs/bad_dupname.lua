-- expect: tests/specs/bad_dupname.lua:4: sequential: parameter name 'block.conv.weight' would be used twice (by the conv2d at tests/specs/bad_dupname.lua:5 and by the conv2d at tests/specs/bad_dupname.lua:6); give the layers different names
-- Two layers that would own the same parameter name.
return rr.model{input = {3, 8, 8}, backbone = rr.sequential{
    rr.sequential{name = "block",
        rr.conv2d{name = "conv", out = 4, kernel = 3},
        rr.conv2d{name = "conv", out = 4, kernel = 3},
    },
    rr.global_avgpool{},
}}
