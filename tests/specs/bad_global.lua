-- expect: tests/specs/bad_global.lua:5: undefined global 'widht'
-- Reading an undefined global (a typo) is an error, not a silent nil.
local width = 8
return rr.model{input = {3, 8, 8}, backbone = rr.sequential{
    rr.conv2d{out = widht, kernel = 3},
    rr.global_avgpool{},
}}
