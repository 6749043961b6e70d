-- augment.lua: the augmentation pipelines of self-supervised relational
-- reasoning (METHOD.md, "Augmentations") and of the baselines
-- (BASELINES.md, "Transforms"), and the per-dataset normalisation
-- constants. Used by every spec through rr.include("augment.lua").
--
-- It only builds lists of rr augmentation objects; what each step does to
-- the pixels is the runtime's business (and must match torchvision/PIL).

local M = {}

-- Per-channel mean and standard deviation of the training images, as the
-- authors' code normalises them.
M.stats = {
    cifar10  = {mean = {0.491, 0.482, 0.447}, std = {0.247, 0.243, 0.262}},
    cifar100 = {mean = {0.507, 0.487, 0.441}, std = {0.267, 0.256, 0.276}},
    stl10    = {mean = {0.5, 0.5, 0.5},       std = {0.5, 0.5, 0.5}},
}

-- One view of the unsupervised phase, in this order: crop to `size`
-- (area 8%..100%, aspect 3/4..4/3), flip, colour jitter with p = 0.8,
-- grayscale with p = 0.2, normalise with the constants of `data`.
function M.relational(size, data)
    local s = M.stats[data]
    assert(s, "augment.relational: no normalisation constants for '" .. tostring(data) .. "'")
    return {
        rr.random_resized_crop{size = size, scale = {0.08, 1.0}, ratio = {3 / 4, 4 / 3}},
        rr.hflip{p = 0.5},
        rr.color_jitter{brightness = 0.8, contrast = 0.8, saturation = 0.8, hue = 0.2, p = 0.8},
        rr.grayscale{p = 0.2},
        rr.normalize{mean = s.mean, std = s.std},
    }
end

-- SimCLR's views (BASELINES.md, "contrastive"): the same pipeline.
M.contrastive = M.relational

-- RotationNet's and the supervised baseline's view (BASELINES.md,
-- "crop-flip"): a `size` crop at a random offset of the image zero-padded
-- by `padding` on each side, flip, normalise.
function M.crop_flip(size, padding, data)
    local s = M.stats[data]
    assert(s, "augment.crop_flip: no normalisation constants for '" .. tostring(data) .. "'")
    return {
        rr.random_crop{size = size, padding = padding},
        rr.hflip{p = 0.5},
        rr.normalize{mean = s.mean, std = s.std},
    }
end

-- Deep InfoMax's view (BASELINES.md 4): flip and normalise, no crop (the
-- images must already be size x size).
function M.flip(size, data)
    local s = M.stats[data]
    assert(s, "augment.flip: no normalisation constants for '" .. tostring(data) .. "'")
    return {
        rr.hflip{p = 0.5},
        rr.normalize{mean = s.mean, std = s.std},
    }
end

return M
