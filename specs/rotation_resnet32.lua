-- rotation_resnet32.lua: CIFAR ResNet-32 trained by RotationNet, the
-- paper's baseline (BASELINES.md, section 2); see rotation_conv4.lua.

local augment = rr.include("augment.lua")
local resnet = rr.include("resnet.lua")

return rr.model{
    name = "rotation_resnet32",
    input = {3, 32, 32},
    backbone = resnet.cifar(5),
    method = rr.rotation{head = rr.linear{name = "classifier", out = 4}},
    augment = augment.crop_flip(32, 4, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
