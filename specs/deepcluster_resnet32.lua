-- deepcluster_resnet32.lua: CIFAR ResNet-32 trained by DeepCluster, the
-- paper's baseline (BASELINES.md, section 3); see deepcluster_conv4.lua.
-- The head is rr.deepcluster's default, the reference's.

local augment = rr.include("augment.lua")
local resnet = rr.include("resnet.lua")

return rr.model{
    name = "deepcluster_resnet32",
    input = {3, 32, 32},
    backbone = resnet.cifar(5),
    method = rr.deepcluster{clusters = 100},
    augment = augment.crop_flip(32, 4, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
