-- expect: tests/specs/bad_shape_kernel.lua:8: backbone.conv2: conv2d: kernel 5x5 is larger than the padded input [8,4,2,2]
-- A kernel larger than what is left of the image after pooling.
return rr.model{
    name = "bad_shape_kernel",
    input = {3, 8, 8},
    backbone = rr.sequential{
        rr.conv2d{name = "conv1", out = 4, kernel = 3, stride = 4, padding = 1},
        rr.conv2d{name = "conv2", out = 4, kernel = 5},
        rr.global_avgpool{},
    },
    K = 2,
    batch = 4,
}
