-- small_conv.lua: a small Conv-4-like spec on 16x16 images for training tests
-- (synthetic data): K = 3 views, batch 12, the paper's augmentations.
return rr.model{
    name = "small_conv",
    input = {3, 16, 16},
    backbone = rr.sequential{
        rr.sequential{name = "layer1",
            rr.conv2d{name = "conv", out = 8, kernel = 3, padding = 1, bias = false},
            rr.batchnorm2d{name = "bn"}, rr.relu{}, rr.avgpool2d{kernel = 2}},
        rr.sequential{name = "layer2",
            rr.conv2d{name = "conv", out = 16, kernel = 3, padding = 1, bias = false},
            rr.batchnorm2d{name = "bn"}, rr.relu{}, rr.global_avgpool{}},
    },
    K = 3,
    augment = {
        rr.random_resized_crop{size = 16},
        rr.hflip{p = 0.5},
        rr.color_jitter{brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2, p = 0.8},
        rr.grayscale{p = 0.2},
        rr.normalize{mean = {0.5, 0.5, 0.5}, std = {0.25, 0.25, 0.25}},
    },
    relation = rr.relation_head{hidden = 32},
    batch = 12,
    epochs = 2,
}
