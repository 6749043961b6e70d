-- resnet34.lua: ResNet-34 (torchvision layout, without the fc layer)
-- trained with self-supervised relational reasoning on STL-10 (METHOD.md).
--
-- conv7x7/2 3->64 (pad 3) + BN + ReLU, maxpool 3x3/2 (pad 1), stages
-- layer1..layer4 of 3, 4, 6, 3 BasicBlocks with 64, 128, 256, 512 channels
-- (stride 2 and a conv1x1 + BN downsample entering layer2..layer4), global
-- average pool: 512 features, 21,284,672 parameters. Names follow
-- torchvision: backbone.conv1.weight, backbone.layer4.2.bn2.running_var, ...
--
-- Input: 3x96x96, the size of STL-10 images (the paper's ResNet-34 runs were
-- on STL-10 at 96 px and on SlimageNet64 at 64 px; for the latter set
-- input = {3, 64, 64}, the crop size to 64 and data = "slimagenet64").
--
-- Defaults here are for quick runs. The paper used K = 25 views per image
-- on STL-10, 300 epochs and seeds 1, 2, 3.

local augment = rr.include("augment.lua")
local resnet = rr.include("resnet.lua")

return rr.model{
    name = "resnet34",
    input = {3, 96, 96},
    backbone = resnet.torchvision({3, 4, 6, 3}),
    K = 4,                       -- paper: 25 on STL-10
    augment = augment.relational(96, "stl10"),
    relation = rr.relation_head{aggregation = "cat", hidden = 256, slope = 0.01},
    loss = rr.focal{gamma = 2, alpha = 0.5},
    optimizer = rr.adam{lr = 1e-3},
    data = "stl10",
    batch = 64,
    epochs = 100,                -- paper: 300 on STL-10
    seed = 1,                    -- paper: 1, 2, 3
}
