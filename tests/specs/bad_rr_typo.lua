-- expect: tests/specs/bad_rr_typo.lua:3: 'rr.conv' does not exist (see specs/README.md for the constructors)
-- A misspelt constructor.
local c = rr.conv{out = 4, kernel = 3}
