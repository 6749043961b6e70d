-- rotation_conv4.lua: Conv-4 trained by RotationNet (Gidaris et al. 2018),
-- one of the paper's baselines, as the authors' methods/rotationnet.py
-- trains it (BASELINES.md, section 2).
--
-- Each image gets one crop-flip view; the step rotates it by 0, 90, 180
-- and 270 degrees (4B backbone images, BatchNorm over all of them) and a
-- linear classifier (checkpoint key "classifier") learns which rotation it
-- sees, with cross-entropy. Adam lr 1e-3 for backbone and classifier.
-- Paper: batch 128, 200 epochs, seeds 1, 2, 3.

local augment = rr.include("augment.lua")
local conv4 = rr.include("conv4_backbone.lua")

return rr.model{
    name = "rotation_conv4",
    input = {3, 32, 32},
    backbone = conv4.backbone(),
    method = rr.rotation{head = rr.linear{name = "classifier", out = 4}},
    augment = augment.crop_flip(32, 4, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
