-- expect: tests/specs/bad_huge_padding.lua:5: conv2d: 'padding' must be at most 1024 (got 1000000)
-- expect: tests/specs/bad_huge_padding.lua:6: conv2d: 'out' must be at most 65536 (got 1000000)
-- Sizes have upper bounds: these passed and overflowed the memory plan.
return rr.model{input = {3, 32, 32}, backbone = rr.sequential{
    rr.conv2d{out = 8, kernel = 3, padding = 1000000},
    rr.conv2d{out = 1000000, kernel = 3},
    rr.global_avgpool{},
}}
