-- simclr_resnet32.lua: CIFAR ResNet-32 trained by SimCLR, the paper's
-- baseline (BASELINES.md, section 1); see simclr_conv4.lua. The head is
-- rr.simclr's default, the reference's.

local augment = rr.include("augment.lua")
local resnet = rr.include("resnet.lua")

return rr.model{
    name = "simclr_resnet32",
    input = {3, 32, 32},
    backbone = resnet.cifar(5),
    method = rr.simclr{temperature = 0.5},
    augment = augment.contrastive(32, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
