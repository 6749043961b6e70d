-- expect: tests/specs/bad_return.lua: spec must return rr.model{...} (got rr.sequential{...})
-- A spec must return the model, not a piece of it.
return rr.sequential{rr.global_avgpool{}}
