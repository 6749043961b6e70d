-- dim_resnet32.lua: CIFAR ResNet-32 trained by Deep InfoMax, the paper's
-- baseline (BASELINES.md, section 4); see dim_conv4.lua. M is the stem's
-- ReLU output (16 channels, 32x32), so the local discriminator starts from
-- 16 + 64 channels; the discriminators are rr.dim's defaults, the
-- reference's.

local augment = rr.include("augment.lua")
local resnet = rr.include("resnet.lua")

return rr.model{
    name = "dim_resnet32",
    input = {3, 32, 32},
    backbone = resnet.cifar(5),
    method = rr.dim{beta = 1.0, gamma = 0.1},
    augment = augment.flip(32, "cifar10"),
    optimizer = rr.adam{lr = 1e-4},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
