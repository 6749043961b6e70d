-- conv4.lua: Conv-4 backbone trained with self-supervised relational
-- reasoning on CIFAR-10 (Patacchiola & Storkey 2020; METHOD.md).
--
-- Conv-4 (lib/conv4_backbone.lua): four conv-BN-ReLU-pool blocks, 64 features,
-- 24,648 parameters, named as the authors' PyTorch model names them.
--
-- Defaults here are for quick runs. The paper used K = 32 views per image
-- (2,048 backbone images and 63,488 pairs per step), 200 epochs and seeds
-- 1, 2, 3; the authors' minimal CPU script used K = 4, batch 64, BCE.

local augment = rr.include("augment.lua")
local conv4 = rr.include("conv4_backbone.lua")

return rr.model{
    name = "conv4",
    input = {3, 32, 32},
    backbone = conv4.backbone(),
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
