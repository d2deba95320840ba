#!/bin/sh
# The EXAMPLES of man/aim-retrieve.1, run on small generated features
# (aim-extract's output is stood in for by streams written in Python).
set -u
R="$BIN/aim-retrieve"
PY=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$PY" - <<'PYEOF' || exit 1
import os, sys, numpy as np
sys.path.insert(0, os.path.join(os.environ["AIM_TOP"], "tests/ref"))
from retrieve_ref import features_stream
from PIL import Image
rng = np.random.default_rng(0)
centers = rng.standard_normal((5, 32))
lab = np.arange(200) % 5
x = centers[lab][:, None, :] + 0.8 * rng.standard_normal((200, 4, 32))
os.makedirs("images", exist_ok=True)
names = ["im%03d.png" % i for i in range(200)]
for i in range(0, 200, 10):
    Image.new("RGB", (20, 20), (i, 255 - i, 0)).save("images/" + names[i])
features_stream("feats.aimt", x, names=names, labels=lab, ids=np.arange(200), per_record=64,
                classes=["a", "b", "c", "d", "e"])
features_stream("train.aimt", x[:150], names=names[:150], labels=lab[:150])
features_stream("val.aimt", x[150:], names=names[150:], labels=lab[150:])
features_stream("queries.aimt", x[::10], names=names[::10], ids=np.arange(0, 200, 10))
PYEOF

# Prepare an index once, then look up neighbours
"$R" --bank feats.aimt --save-index bank.idx || bad "save-index"
"$R" --bank bank.idx -k 5 queries.aimt >nn.tsv || bad "query the index"
[ "$(wc -l <nn.tsv)" -eq 100 ] || bad "20 queries x 5 neighbours: $(wc -l <nn.tsv) lines"
# each query (a bank entry) finds itself first, with score 1
awk -F'\t' '$2 == 1 && ($1 != $3 || $4 < 0.99999) { exit 1 }' nn.tsv || bad "self not first"

# weighted k-NN accuracy, excluding exact matches
"$R" --bank train.aimt --save-index train.idx || bad "train index"
"$R" --bank train.idx --knn --exclude-self val.aimt >knn.txt || bad "knn"
grep -Eq '^top1 [0-9.]+ top5 [0-9.]+$' knn.txt || bad "knn output: $(cat knn.txt)"

# a bank on four "machines": one process per shard, then a merge
for i in 0 1 2 3; do
	"$R" --bank bank.idx --shard $i/4 --format stream -o part$i.aimt queries.aimt || bad "shard $i"
done
"$R" --merge part0.aimt part1.aimt part2.aimt part3.aimt >merged.tsv || bad "merge"
"$R" --bank bank.idx queries.aimt >whole.tsv
cmp -s merged.tsv whole.tsv || bad "merged shards differ from the whole bank"

# diverse neighbours without near-duplicates, drawn as a contact sheet
"$R" --bank bank.idx --max-score 0.98 --diverse 0.9 --sheet sheet.png --image-root images \
	queries.aimt >div.tsv 2>/dev/null || bad "diverse + sheet"
awk -F'\t' '$4 > 0.98 { exit 1 }' div.tsv || bad "--max-score let a near-duplicate through"
"$PY" -c "from PIL import Image; im = Image.open('sheet.png'); assert im.size[0] > 100 and im.size[1] > 100" ||
	bad "sheet.png is not a picture"

# queries on a pipe
cat queries.aimt | "$R" --bank bank.idx -k 1 | cmp -s - "$(awk -F'\t' '$2 == 1' nn.tsv >first.tsv; echo first.tsv)" ||
	bad "queries on a pipe differ"

[ $fails -eq 0 ] && echo "retrieve examples: all passed"
[ $fails -eq 0 ]
