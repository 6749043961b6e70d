-- expect: tests/specs/bad_shape_residual.lua:8: backbone.block: add: shapes [8,8,8,8] and [8,4,8,8] differ (a residual needs a projection shortcut?)
-- A shape mismatch found when lowering: a residual that changes the width
-- without a projection shortcut.
return rr.model{
    name = "bad_shape_residual",
    input = {4, 8, 8},
    backbone = rr.sequential{
        rr.residual{name = "block",
            rr.sequential{
                rr.conv2d{name = "conv", out = 8, kernel = 3, padding = 1, bias = false},
            },
        },
        rr.global_avgpool{},
    },
    K = 2,
    batch = 4,
}
