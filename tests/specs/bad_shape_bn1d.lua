-- expect: tests/specs/bad_shape_bn1d.lua:8: backbone.bn: batchnorm1d: expects a [N,C] input (got [8,4,8,8])
-- BatchNorm1d on feature maps.
return rr.model{
    name = "bad_shape_bn1d",
    input = {3, 8, 8},
    backbone = rr.sequential{
        rr.conv2d{name = "conv", out = 4, kernel = 3, padding = 1},
        rr.batchnorm1d{name = "bn"},
        rr.global_avgpool{},
    },
    K = 2,
    batch = 4,
}
