-- expect: tests/specs/bad_syntax.lua:5: '}' expected (to close '{' at line 3) near 'backbone'
-- A syntax error: a missing comma between two fields.
return rr.model{
    input = {3, 8, 8}
    backbone = rr.sequential{rr.global_avgpool{}},
}
