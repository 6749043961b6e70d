-- blocks.lua: a helper module for with_lib.lua (found in the spec's lib/).
local M = {}
function M.conv_bn_relu(name, out)
    return rr.sequential{name = name,
        rr.conv2d{name = "conv", out = out, kernel = 3, padding = 1, bias = false},
        rr.batchnorm2d{name = "bn"},
        rr.relu{},
    }
end
return M
