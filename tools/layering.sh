#!/bin/sh
# The compiler's layering, checked on the symbols of its objects (includes
# cannot show it: every layer includes ir/ir.h). Run by `make test`:
#
#   sh tools/layering.sh BUILD
#
# proves, for the objects of the sources in compiler/ (BUILD/compiler/...):
#   - ir/ uses no symbol defined in passes/, codegen/ or frontend/;
#   - passes/ uses none defined in codegen/ or frontend/;
#   - codegen/ uses none defined in passes/ or frontend/ (the passes record
#     their decisions in the graph; codegen obeys the graph);
#   - the calls between codegen files go one way (no cycle), in the order
#     cg_util <- cg_fuse <- cg_conv <- cg_step <- cg_llvm <- cg_jit.
# Prints each violation and exits 1; prints one line and exits 0 if none.
set -u
B=${1:-build}/compiler
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0

objs() {   # the objects of the sources of directory $1
    for c in compiler/"$1"/*.c; do
        o="$B/$1/$(basename "$c" .c).o"
        [ -f "$o" ] || { echo "layering: $o is missing (build first)" >&2; exit 2; }
        echo "$o"
    done
}
defined() { for o in "$@"; do nm --defined-only -g "$o" | awk '{print $3}'; done | sort -u; }
used() { for o in "$@"; do nm -u "$o" | awk '{print $2}'; done | sort -u; }

for d in ir passes codegen frontend; do defined $(objs $d) > "$tmp/def.$d"; done

# rule LAYER BELOW...: LAYER's objects use nothing defined in BELOW
rule() {
    layer=$1
    shift
    for o in $(objs "$layer"); do
        used "$o" > "$tmp/use"
        for other in "$@"; do
            for s in $(comm -12 "$tmp/use" "$tmp/def.$other"); do
                echo "layering: $layer/$(basename "$o" .o) uses $s of $other/"
                bad=1
            done
        done
    done
}
rule ir passes codegen frontend
rule passes codegen frontend
rule codegen passes frontend

# codegen: file A calls file B -> edge "A B"; tsort finds any cycle
: > "$tmp/edges"
for a in $(objs codegen); do
    used "$a" > "$tmp/use"
    for b in $(objs codegen); do
        [ "$a" = "$b" ] && continue
        defined "$b" > "$tmp/defb"
        n=$(comm -12 "$tmp/use" "$tmp/defb" | wc -l)
        [ "$n" -gt 0 ] && echo "$(basename "$a" .o) $(basename "$b" .o)" >> "$tmp/edges"
    done
done
if ! tsort "$tmp/edges" > /dev/null 2> "$tmp/tsort"; then
    echo "layering: the codegen files call each other in a cycle:"
    sed 's/^/  /' "$tmp/tsort"
    bad=1
fi
[ $bad = 0 ] && echo "layering: ir, passes, codegen and frontend keep their layers; codegen's calls go one way ($(wc -l < "$tmp/edges") edges)"
exit $bad
