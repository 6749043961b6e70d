-- expect: tests/specs/bad_many.lua:9: conv2d: 'kernel' must be a positive integer (got 0)
-- expect: tests/specs/bad_many.lua:9: conv2d: unknown key 'pad'
-- expect: tests/specs/bad_many.lua:10: batchnorm2d: 'momentum' must be a number in [0, 1] (got 1.5)
-- expect: tests/specs/bad_many.lua:13: adam: 'lr' must be a number > 0 (got -0.001)
-- expect: tests/specs/bad_many.lua:14: focal: 'alpha' must be a number in [0, 1] (got 2)
-- expect: tests/specs/bad_many.lua:15: model: 'K' must be an integer >= 2 (views per image) (got 1)
-- expect: tests/specs/bad_many.lua:15: model: 'data' must be one of "cifar10", "cifar100", "stl10", "tiny-imagenet", "slimagenet64", "mnist", "fashion-mnist" (got "imagenet")
-- Several mistakes in one file: every one is reported, in order.
local conv = rr.conv2d{out = 8, kernel = 0, pad = 1}
local bn = rr.batchnorm2d{momentum = 1.5}
local net = rr.sequential{conv, bn, rr.relu{}, rr.global_avgpool{}}

local opt = rr.adam{lr = -1e-3}
local loss = rr.focal{alpha = 2}
return rr.model{
    input = {3, 8, 8},
    backbone = net,
    K = 1,
    optimizer = opt,
    loss = loss,
    data = "imagenet",
}
