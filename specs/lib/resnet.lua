-- resnet.lua: ResNet backbones built from BasicBlocks, with the module
-- names of the PyTorch models they mirror, so that parameter names are the
-- PyTorch state-dict names (conv1.weight, bn1.*, layer1.0.conv1.weight,
-- layer2.0.downsample.0.weight, ...; METHOD.md, "Backbones").
--
--   resnet.cifar(n)          CIFAR ResNet of depth 6n+2 (n = 1, 5, 9 gives 8, 32, 56)
--   resnet.torchvision(list) torchvision layout, e.g. {3, 4, 6, 3} for ResNet-34
--
-- Both end with a global average pool (no classifier): the output is the
-- feature vector. Shapes are checked later, when rrc lowers the model.

local M = {}

local function conv3x3(name, out, stride)
    return rr.conv2d{name = name, out = out, kernel = 3, stride = stride, padding = 1, bias = false}
end

-- torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
-- The shortcut is the identity, or a 1x1 conv + BN named "downsample" (with
-- children "0" and "1", as nn.Sequential names them) where the shape changes.
function M.basic_block(name, inplanes, planes, stride)
    local shortcut = nil
    if stride ~= 1 or inplanes ~= planes then
        shortcut = rr.sequential{name = "downsample",
            rr.conv2d{name = "0", out = planes, kernel = 1, stride = stride, bias = false},
            rr.batchnorm2d{name = "1"},
        }
    end
    return rr.sequential{name = name,
        rr.residual{
            rr.sequential{
                conv3x3("conv1", planes, stride), rr.batchnorm2d{name = "bn1"}, rr.relu{},
                conv3x3("conv2", planes, 1), rr.batchnorm2d{name = "bn2"},
            },
            shortcut = shortcut,
        },
        rr.relu{},
    }
end

-- A stage "layerN" of `blocks` BasicBlocks named "0", "1", ...; only the
-- first one changes stride and width.
function M.stage(name, blocks, inplanes, planes, stride)
    local list = {name = name}
    for i = 0, blocks - 1 do
        list[#list + 1] = M.basic_block(tostring(i), i == 0 and inplanes or planes, planes, i == 0 and stride or 1)
    end
    return rr.sequential(list)
end

-- CIFAR ResNet (He et al. 2016, section 4.2) of depth 6n+2: a 3x3 stem to
-- 16 channels without max-pool, then three stages of n blocks with 16, 32,
-- 64 channels (stride 2 entering stages 2 and 3). Features: 64.
function M.cifar(n)
    assert(math.type(n) == "integer" and n >= 1, "resnet.cifar: n must be a positive integer")
    return rr.sequential{
        conv3x3("conv1", 16, 1), rr.batchnorm2d{name = "bn1"}, rr.relu{},
        M.stage("layer1", n, 16, 16, 1),
        M.stage("layer2", n, 16, 32, 2),
        M.stage("layer3", n, 32, 64, 2),
        rr.global_avgpool{},
    }
end

-- torchvision's ResNet without the final fc: 7x7/2 stem to 64 channels,
-- 3x3/2 max-pool, stages layer1..layer4 with 64, 128, 256, 512 channels.
-- Features: 512.
function M.torchvision(blocks)
    assert(#blocks == 4, "resnet.torchvision: give the block count of 4 stages")
    local widths = {64, 128, 256, 512}
    local net = {
        rr.conv2d{name = "conv1", out = 64, kernel = 7, stride = 2, padding = 3, bias = false},
        rr.batchnorm2d{name = "bn1"},
        rr.relu{},
        rr.maxpool2d{kernel = 3, stride = 2, padding = 1},
    }
    local inplanes = 64
    for s = 1, 4 do
        net[#net + 1] = M.stage("layer" .. s, blocks[s], inplanes, widths[s], s == 1 and 1 or 2)
        inplanes = widths[s]
    end
    net[#net + 1] = rr.global_avgpool{}
    return rr.sequential(net)
end

return M
