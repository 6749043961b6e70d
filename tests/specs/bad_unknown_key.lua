-- expect: tests/specs/bad_unknown_key.lua:6: conv2d: unknown key 'strid'
-- An unknown key (a typo) is an error, not something to ignore.
return rr.model{
    input = {3, 8, 8},
    backbone = rr.sequential{
        rr.conv2d{out = 4, kernel = 3, strid = 2},
        rr.global_avgpool{},
    },
}
