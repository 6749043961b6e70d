-- conv4.lua: Conv-4 backbone trained with self-supervised relational
-- reasoning on CIFAR-10 (Patacchiola & Storkey 2020; METHOD.md).
--
-- Conv-4: four blocks conv3x3 (pad 1, no bias) -> BatchNorm -> ReLU -> pool,
-- channels 3 -> 8 -> 16 -> 32 -> 64; blocks 1-3 pool 2x2, block 4 pools
-- globally. 64 features, 24,648 parameters. Parameter names are those of
-- the authors' PyTorch model: backbone.layer{1..4}.conv.weight and
-- backbone.layer{1..4}.bn.{weight,bias,running_mean,running_var}.
--
-- Defaults here are for quick runs. The paper used K = 32 views per image
-- (2,048 backbone images and 63,488 pairs per step), 200 epochs and seeds
-- 1, 2, 3; the authors' minimal CPU script used K = 4, batch 64, BCE.

local augment = rr.include("augment.lua")

local function block(name, out, pool)
    return rr.sequential{name = name,
        rr.conv2d{name = "conv", out = out, kernel = 3, stride = 1, padding = 1, bias = false},
        rr.batchnorm2d{name = "bn"},
        rr.relu{},
        pool,
    }
end

return rr.model{
    name = "conv4",
    input = {3, 32, 32},
    backbone = rr.sequential{
        block("layer1", 8, rr.avgpool2d{kernel = 2, stride = 2}),
        block("layer2", 16, rr.avgpool2d{kernel = 2, stride = 2}),
        block("layer3", 32, rr.avgpool2d{kernel = 2, stride = 2}),
        block("layer4", 64, rr.global_avgpool{}),
    },
    K = 4,                       -- paper: 32
    augment = augment.relational(32, "cifar10"),
    relation = rr.relation_head{aggregation = "cat", hidden = 256, slope = 0.01},
    loss = rr.focal{gamma = 2, alpha = 0.5},
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 64,
    epochs = 100,                -- paper: 200
    seed = 1,                    -- paper: 1, 2, 3
}
