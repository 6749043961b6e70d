-- expect: tests/specs/bad_no_backbone.lua:3: model: 'backbone' is required (a layer, e.g. rr.sequential{...})
-- A required option left out.
return rr.model{
    input = {3, 32, 32},
    K = 4,
}
