-- expect: tests/specs/bad_name_from_a_file_name_longer_than_sixty_four_characters_is_refused.lua:4: model: the model's name defaults to the file's, 'bad_name_from_a_file_nam...' (70 characters), but may have at most 64: give it a name = "..."
-- The default name (the file's) is checked like a given one: it names the
-- generated files, and a long one failed only after compiling.
return rr.model{
    input = {3, 8, 8},
    backbone = rr.global_avgpool{},
}
