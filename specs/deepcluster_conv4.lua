-- deepcluster_conv4.lua: Conv-4 trained by DeepCluster (Caron et al.
-- 2018), one of the paper's baselines, as the authors'
-- methods/deepcluster.py trains it (BASELINES.md, section 3).
--
-- Each epoch: eval-mode features of every training image (crop-flip
-- view), PCA whitening and L2 normalisation, k-means (k-means++, 5
-- restarts, 30 iterations) into `clusters` pseudolabels, the head's last
-- layer reset; then one pass of class-weighted cross-entropy on the
-- pseudolabels. Head Linear(64,256) -> BatchNorm1d -> LeakyReLU ->
-- Linear(256,clusters) (checkpoint key "classifier"). Adam lr 1e-3.
-- clusters: 10 x the classes (100 for CIFAR-10 and Fashion-MNIST).
-- Paper: batch 128, 200 epochs, seeds 1, 2, 3.

local augment = rr.include("augment.lua")
local conv4 = rr.include("conv4_backbone.lua")

return rr.model{
    name = "deepcluster_conv4",
    input = {3, 32, 32},
    backbone = conv4.backbone(),
    method = rr.deepcluster{
        clusters = 100,
        head = rr.sequential{name = "classifier",
            rr.linear{name = "linear1", out = 256},
            rr.batchnorm1d{name = "bn1"},
            rr.leaky_relu{name = "relu", slope = 0.01},
            rr.linear{name = "linear2", out = 100},
        },
    },
    augment = augment.crop_flip(32, 4, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    data = "cifar10",
    batch = 128,
    epochs = 100,                -- paper: 200
    seed = 1,
}
