-- expect: tests/specs/bad_shape_linear.lua:9: backbone.fc: linear: input must be [N,features] (got [8,4,8,8]); add flatten or global_avgpool first
-- A linear layer applied to images without flattening them.
return rr.model{
    name = "bad_shape_linear",
    input = {3, 8, 8},
    backbone = rr.sequential{
        rr.conv2d{name = "conv", out = 4, kernel = 3, padding = 1},
        rr.relu{},
        rr.linear{name = "fc", out = 10},
    },
    K = 2,
    batch = 4,
}
