-- expect: tests/specs/bad_shape_features.lua:6: backbone: its output must be [N, features] (got [8,4,8,8]); end it with global_avgpool or flatten
-- A backbone that ends in feature maps, not feature vectors.
return rr.model{
    name = "bad_shape_features",
    input = {3, 8, 8},
    backbone = rr.sequential{
        rr.conv2d{name = "conv", out = 4, kernel = 3, padding = 1},
    },
    K = 2,
    batch = 4,
}
