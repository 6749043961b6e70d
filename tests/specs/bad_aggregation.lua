-- expect: tests/specs/bad_aggregation.lua:6: relation_head: 'aggregation' must be one of "cat", "sum", "mean", "max" (got "concat")
-- A bad enumeration value.
return rr.model{
    input = {3, 8, 8},
    backbone = rr.global_avgpool{},
    relation = rr.relation_head{aggregation = "concat"},
}
