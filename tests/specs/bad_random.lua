-- expect: tests/specs/bad_random.lua:3: 'math.random' is not available in a spec (sandbox: a spec must give the same model on every run)
-- Randomness would make a spec describe a different model on every run.
local width = 8 * math.random(1, 4)
