-- simclr_conv4.lua: Conv-4 trained by SimCLR (Chen et al. 2020), one of
-- the paper's baselines, as the authors' methods/simclr.py trains it
-- (BASELINES.md, section 1).
--
-- Two contrastive views of each image (the relational pipeline), one
-- train-mode pass over all 2B (BatchNorm over 2B), a projection head
-- Linear(64,256) -> BatchNorm1d -> LeakyReLU -> Linear(256,64) (checkpoint
-- key "head"), and the reference's loss at temperature 0.5: the log of the
-- mean ratio, the norm product clamped at 1e-8. Adam lr 1e-3.
-- Paper: batch 128, 200 epochs, seeds 1, 2, 3.

local augment = rr.include("augment.lua")
local conv4 = rr.include("conv4_backbone.lua")

return rr.model{
    name = "simclr_conv4",
    input = {3, 32, 32},
    backbone = conv4.backbone(),
    method = rr.simclr{
        temperature = 0.5,
        head = rr.sequential{name = "head",
            rr.linear{name = "linear1", out = 256},
            rr.batchnorm1d{name = "bn1"},
            rr.leaky_relu{name = "relu", slope = 0.01},
            rr.linear{name = "linear2", out = 64},
        },
    },
    augment = augment.contrastive(32, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
