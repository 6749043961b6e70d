-- tiny.lua: the smallest useful spec, for tests: two convs on 3x8x8 images.
return rr.model{
    name = "tiny",
    input = {3, 8, 8},
    backbone = rr.sequential{
        rr.sequential{name = "layer1",
            rr.conv2d{name = "conv", out = 4, kernel = 3, padding = 1, bias = false},
            rr.batchnorm2d{name = "bn"},
            rr.relu{},
            rr.avgpool2d{kernel = 2},
        },
        rr.sequential{name = "layer2",
            rr.conv2d{name = "conv", out = 8, kernel = 3, padding = 1, bias = false},
            rr.batchnorm2d{name = "bn"},
            rr.relu{},
            rr.global_avgpool{},
        },
    },
    K = 2,
    batch = 4,
}
