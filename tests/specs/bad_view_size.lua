-- expect: tests/specs/bad_view_size.lua:3: model: the views are 24x24 (random_resized_crop at tests/specs/bad_view_size.lua:6) but 'input' is 3x32x32
-- The augmentation pipeline must make views of the input size.
return rr.model{
    input = {3, 32, 32},
    backbone = rr.global_avgpool{},
    augment = {rr.random_resized_crop{size = 24}, rr.hflip{}},
}
