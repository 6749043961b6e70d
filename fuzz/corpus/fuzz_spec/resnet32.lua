-- resnet32.lua: CIFAR ResNet-32 (depth 6n+2 with n = 5) trained with
-- self-supervised relational reasoning on CIFAR-10 (METHOD.md).
--
-- Stem conv3x3 3->16 + BN + ReLU, three stages of 5 BasicBlocks with 16, 32,
-- 64 channels (stride 2 entering stages 2 and 3, where a conv1x1 + BN
-- "downsample" shortcut matches the shape), global average pool: 64
-- features, 466,256 parameters, 69.12 M multiply-adds per 32x32 image.
-- Parameter names follow PyTorch: backbone.conv1.weight, backbone.bn1.*,
-- backbone.layer1.0.conv1.weight, ..., backbone.layer2.0.downsample.0.weight.
--
-- Defaults here are for quick runs. The paper used K = 32 views per image
-- (K = 16 for ResNet-32 on tiny-ImageNet), 200 epochs and seeds 1, 2, 3.

local augment = rr.include("augment.lua")
local resnet = rr.include("resnet.lua")

return rr.model{
    name = "resnet32",
    input = {3, 32, 32},
    backbone = resnet.cifar(5),
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
