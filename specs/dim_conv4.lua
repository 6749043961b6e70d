-- dim_conv4.lua: Conv-4 trained by Deep InfoMax (Hjelm et al. 2019), one of
-- the paper's baselines, as the authors' methods/deepinfomax.py trains it
-- (BASELINES.md, section 4) with their weights alpha = 0 (no global
-- discriminator), beta = 1, gamma = 0.1.
--
-- y = the backbone's 64 features; M = the map after its first ReLU (8
-- channels, 32x32, before the first pooling). A local discriminator (1x1
-- convolutions 72 -> 256 -> 256 -> 1) scores [M, y] against [M of the next
-- image, y] at every position (JSD estimator, softplus); a prior
-- discriminator (64 -> 512 -> 128 -> 1, sigmoid) tells U[0,1) samples from
-- y. Both are under the checkpoint key "loss_fn" and trained by the same
-- step and the same Adam (lr 1e-4), so the encoder also helps the prior
-- discriminator (the reference's quirk). Views: flip and normalise, no
-- crop; the last partial batch is dropped. The local discriminator costs
-- 172 M multiply-adds per image (2 x 1024 positions x 84,224), 156 times
-- the Conv-4 backbone's 1.1 M.
-- Paper: batch 128, 200 epochs, seeds 1, 2, 3.

local augment = rr.include("augment.lua")
local conv4 = rr.include("conv4_backbone.lua")

return rr.model{
    name = "dim_conv4",
    input = {3, 32, 32},
    backbone = conv4.backbone(),
    method = rr.dim{
        beta = 1.0,
        gamma = 0.1,
        local_d = rr.sequential{name = "local_d",
            rr.conv2d{name = "c0", out = 256, kernel = 1}, rr.relu{},
            rr.conv2d{name = "c1", out = 256, kernel = 1}, rr.relu{},
            rr.conv2d{name = "c2", out = 1, kernel = 1},
        },
        prior_d = rr.sequential{name = "prior_d",
            rr.linear{name = "l0", out = 512}, rr.relu{},
            rr.linear{name = "l1", out = 128}, rr.relu{},
            rr.linear{name = "l2", out = 1},
        },
    },
    augment = augment.flip(32, "cifar10"),
    optimizer = rr.adam{lr = 1e-4},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
