-- broken.lua: a helper with a mistake, for bad_lib.lua.
local M = {}
function M.block(out)
    return rr.conv2d{out = out, kernel = 3, stride = 0}
end
function M.crash(t)
    return t.x.y
end
return M
