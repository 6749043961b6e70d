-- deepcluster10_conv4.lua: specs/deepcluster_conv4.lua with the 10 clusters
-- of its PyTorch goldens (tests/golden/baselines/deepcluster_*), for the
-- AOT trainer's golden test (cli_grad_aot_baselines).
local augment = rr.include("augment.lua")
local conv4 = rr.include("conv4_backbone.lua")

return rr.model{
    name = "deepcluster10_conv4",
    input = {3, 32, 32},
    backbone = conv4.backbone(),
    method = rr.deepcluster{clusters = 10},
    augment = augment.crop_flip(32, 4, "cifar10"),
    optimizer = rr.adam{lr = 1e-3},
    batch = 128,
}
