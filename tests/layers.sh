#!/bin/sh
# The library's layering: no file in common/<layer>/ includes a header that
# lives in a layer above its own. The layer order is the table in
# common/README.md (bottom first); cuda ranks with ops. Tools may include
# anything. Prints each violation with the file and the header; exit 1 if any.
set -eu
cd "$(dirname "$0")/.."
homes=$(mktemp)
trap 'rm -f "$homes"' EXIT
# "header layer" for every header of the library
find common -mindepth 2 \( -name '*.h' -o -name '*.cuh' \) | awk -F/ '{ print $NF, $2 }' >"$homes"
sources=$(find common -mindepth 2 \( -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh' \) | sort)
awk '
	FILENAME == ARGV[1] {
		if (match($0, /^\| `[a-z]+` \|/)) {
			name = substr($0, 4, RLENGTH - 6)
			rank[name] = (name == "cuda") ? rank["ops"] : ++n
		}
		next
	}
	FILENAME == ARGV[2] { home[$1] = $2; next }
	FNR == 1 {
		split(FILENAME, part, "/"); layer = part[2]; files++
		if (!(layer in rank)) { printf "%s: folder %s is not a layer in common/README.md\n", FILENAME, layer; bad = 1 }
	}
	/^[ \t]*#[ \t]*include[ \t]*"/ {
		h = $0; sub(/^[^"]*"/, "", h); sub(/".*/, "", h)
		if (h ~ /\//) { split(h, hp, "/"); hl = hp[1]; h = hp[2] } else if (h in home) hl = home[h]; else next
		if (hl in rank && layer in rank && rank[hl] > rank[layer]) {
			printf "%s: includes %s from layer %s, above %s\n", FILENAME, h, hl, layer; bad = 1
		}
	}
	END {
		if (n < 2 || files == 0) { print "layers: no layer table in common/README.md or no sources"; exit 1 }
		exit bad
	}
' common/README.md "$homes" $sources || { echo "layers: includes must only go downwards (common/README.md)"; exit 1; }
echo "layers: $(echo "$sources" | wc -l) files, includes go downwards only"
