-- tiny_all.lua: every constructor with non-default options, for the test
-- that checks each option reaches the C structs (tests/test_spec.c).
local body = rr.sequential{
    rr.conv2d{name = "conv1", out = 6, kernel = 3, stride = 2, padding = 1, bias = true},
    rr.batchnorm2d{name = "bn1", eps = 1e-3, momentum = 0.2},
    rr.leaky_relu{slope = 0.1},
}
return rr.model{
    name = "tiny_all",
    input = {1, 16, 16},
    backbone = rr.sequential{
        rr.residual{body, shortcut = rr.conv2d{name = "proj", out = 6, kernel = 1, stride = 2, bias = false},
                    name = "block"},
        rr.maxpool2d{kernel = 3, stride = 2, padding = 1},
        rr.avgpool2d{kernel = 2},
        rr.flatten{},
        rr.linear{name = "fc", out = 5, bias = false},
        rr.batchnorm1d{name = "bn", eps = 2e-5, momentum = 0.05},
        rr.relu{},
    },
    K = 3,
    augment = {
        rr.random_crop{size = 16, padding = 2},
        rr.random_resized_crop{size = 16, scale = {0.5, 0.9}, ratio = {0.5, 2}},
        rr.hflip{p = 0.25},
        rr.color_jitter{brightness = 0.1, contrast = 0.2, saturation = 0.3, hue = 0.4, p = 0.5},
        rr.grayscale{p = 0.125},
        rr.normalize{mean = {0.25}, std = {0.5}},
    },
    relation = rr.relation_head{aggregation = "max", hidden = 32, slope = 0.2, bn_eps = 1e-4, bn_momentum = 0.3},
    loss = rr.bce{},
    optimizer = rr.sgd{lr = 0.05, momentum = 0.8, weight_decay = 5e-4, milestones = {0.3, 0.6, 0.9}, gamma = 0.2},
    data = "fashion-mnist",
    batch = 16,
    epochs = 7,
    seed = 1234567890123,
}
