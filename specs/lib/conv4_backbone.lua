-- conv4_backbone.lua: the Conv-4 backbone of the paper (and of its baselines), as
-- the authors' backbones/conv4.py builds it.
--
-- Four blocks conv3x3 (pad 1, no bias) -> BatchNorm -> ReLU -> pool,
-- channels 3 -> 8 -> 16 -> 32 -> 64; blocks 1-3 pool 2x2, block 4 pools
-- globally. 64 features, 24,648 parameters. Parameter names are those of
-- the authors' PyTorch model: backbone.layer{1..4}.conv.weight and
-- backbone.layer{1..4}.bn.{weight,bias,running_mean,running_var}.

local M = {}

local function block(name, out, pool)
    return rr.sequential{name = name,
        rr.conv2d{name = "conv", out = out, kernel = 3, stride = 1, padding = 1, bias = false},
        rr.batchnorm2d{name = "bn"},
        rr.relu{},
        pool,
    }
end

function M.backbone()
    return rr.sequential{
        block("layer1", 8, rr.avgpool2d{kernel = 2, stride = 2}),
        block("layer2", 16, rr.avgpool2d{kernel = 2, stride = 2}),
        block("layer3", 32, rr.avgpool2d{kernel = 2, stride = 2}),
        block("layer4", 64, rr.global_avgpool{}),
    }
end

return M
