"""Reference checks for aim-retrieve.

Writes features streams itself (8-byte LE header length + JSON header + data,
each record one zstd frame with checksum), runs the tool, and compares with
independent references: FAISS IndexFlatIP for exact search, and plain NumPy
for pooling, the options and the k-NN vote (the DINO evaluation recipe).

usage: retrieve_ref.py SCENARIO BIN TMPDIR     (exit 0 pass, 1 fail, 77 skip)
"""
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

try:
    import zstandard
except ImportError:
    print("python3-zstandard missing")
    sys.exit(77)

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg)


# --- streams ---------------------------------------------------------------

def to_bf16(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
          np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8"}


def record_bytes(tensors, meta=None):
    """tensors: list of (name, array) or (name, array, dtype string)."""
    header, blobs, off = {}, [], 0
    for t in tensors:
        name, arr = t[0], np.ascontiguousarray(t[1])
        dt = t[2] if len(t) > 2 else DTYPES[arr.dtype]
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_stream(path, records):
    c = zstandard.ZstdCompressor(write_checksum=True)
    with open(path, "wb") as f:
        for tensors, meta in records:
            f.write(c.compress(record_bytes(tensors, meta)))


def parse_records(data):
    out, pos = [], 0
    np_of = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8}
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        hdr = json.loads(data[pos + 8:pos + 8 + n])
        base = pos + 8 + n
        meta = hdr.pop("__metadata__", {})
        tensors, end = {}, 0
        for name, e in hdr.items():
            a, b = e["data_offsets"]
            tensors[name] = np.frombuffer(data[base + a:base + b],
                                          dtype=np_of[e["dtype"]]).reshape(e["shape"])
            end = max(end, b)
        out.append((tensors, meta))
        pos = base + end
    return out


def read_stream(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True).read()
    return parse_records(raw)


def features_stream(path, feats, names=None, ids=None, labels=None, per_record=None,
                    dtype="F32", classes=None):
    """Write feats [N, (K,) D] as records of per_record samples."""
    n = len(feats)
    per = per_record or max(n, 1)
    recs = []
    for s in range(0, max(n, 1), per):
        e = min(n, s + per)
        f = feats[s:e]
        if dtype == "F16":
            t = [("features", f.astype(np.float16))]
        elif dtype == "BF16":
            t = [("features", to_bf16(f), "BF16")]
        else:
            t = [("features", f.astype(np.float32))]
        if ids is not None:
            t.append(("id", np.asarray(ids[s:e], dtype=np.int64)))
        if labels is not None:
            t.append(("label", np.asarray(labels[s:e], dtype=np.int64)))
        meta = {}
        if names is not None:
            meta["aim.names"] = json.dumps(list(names[s:e]))
        if classes is not None and s == 0:
            meta["aim.classes"] = json.dumps(classes)
        recs.append((t, meta))
    write_stream(path, recs)


# --- running the tool --------------------------------------------------------

def run(binary, args, expect=0, stdin=None):
    p = subprocess.run([binary] + args, input=stdin, capture_output=True)
    if p.returncode != expect:
        fail("%s exited %d (wanted %d): %s" % (" ".join(args), p.returncode, expect,
                                               p.stderr.decode(errors="replace").strip()))
    return p


def parse_tsv(text):
    res = {}
    for line in text.decode().splitlines():
        q, r, n, s = line.split("\t")
        res.setdefault(q, []).append((int(r), n, float(s)))
    for q in res:
        ranks = [r for r, _, _ in res[q]]
        if ranks != list(range(1, len(ranks) + 1)):
            fail("query %s: ranks %s" % (q, ranks))
        res[q] = [(n, s) for _, n, s in res[q]]
    return res


# --- references ----------------------------------------------------------------

def pool(feats, how="mean"):
    f = feats.astype(np.float64)
    if f.ndim == 2:
        return f.astype(np.float32)
    if how == "mean":
        return f.mean(axis=1).astype(np.float32)
    if how == "max":
        return f.max(axis=1).astype(np.float32)
    return f[:, 0].astype(np.float32)


def normalize(x):
    x = x.astype(np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def faiss_search(bank, queries, k):
    import faiss
    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def compare(ours, qnames, ref_scores, ref_names, tol=1e-5, label=""):
    """Same neighbours (ties aside) and scores within tol; raw inner
    products larger than 1 are compared relative to their size (float32
    itself resolves no better)."""
    bad = 0
    for i, q in enumerate(qnames):
        got = ours.get(q, [])
        want = list(zip(ref_names[i], ref_scores[i]))
        if len(got) != len(want):
            fail("%s query %s: %d neighbours, reference %d" % (label, q, len(got), len(want)))
            bad += 1
            continue
        for j, ((gn, gs), (wn, ws)) in enumerate(zip(got, want)):
            if abs(gs - ws) > tol * max(1.0, abs(ws)):
                fail("%s query %s rank %d: score %.8f, reference %.8f (%s vs %s)"
                     % (label, q, j + 1, gs, ws, gn, wn))
                bad += 1
                break
        kth = want[-1][1]
        band = tol * max(1.0, abs(kth))
        gset = {n for n, s in got if s > kth + band}
        wset = {n for n, s in want if s > kth + band}
        if gset != wset:
            fail("%s query %s: neighbours differ beyond ties: %s vs %s"
                 % (label, q, sorted(gset ^ wset)[:4], ""))
            bad += 1
        if bad > 5:
            return
    return bad


def clustered(rng, n, k_tokens, d, nclusters, noise):
    centers = rng.standard_normal((nclusters, d)).astype(np.float32)
    lab = rng.integers(0, nclusters, n)
    shape = (n, k_tokens, d) if k_tokens else (n, d)
    x = rng.standard_normal(shape).astype(np.float32) * noise
    x += centers[lab][:, None, :] if k_tokens else centers[lab]
    return x, lab, centers


# --- scenarios -----------------------------------------------------------------

def scenario_faiss(binary, tmp):
    """Exact agreement with FAISS IndexFlatIP: random and clustered data,
    per-patch and pooled, F32/F16/BF16, cosine and raw inner product,
    bank from streams and from an index file, 1 and 2 threads."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss not installed")
        sys.exit(77)
    rng = np.random.default_rng(1)
    cases = []
    # random: bank per-patch [N,K,D] F32, queries pooled F16
    bank = rng.standard_normal((3000, 4, 64)).astype(np.float32)
    queries = rng.standard_normal((150, 64)).astype(np.float16)
    cases.append(("random", bank, queries, "F32", "F16", [], "mean"))
    # clustered: tight clusters, BF16 queries with tokens, max pooling
    cb, _, centers = clustered(rng, 2500, 3, 48, 25, 0.3)
    cq = (centers[rng.integers(0, 25, 120)][:, None, :] +
          0.3 * rng.standard_normal((120, 3, 48))).astype(np.float32)
    cases.append(("clustered-max", cb, from_bf16(to_bf16(cq)).reshape(cq.shape), "F32", "BF16",
                  ["--pool", "max"], "max"))
    # raw inner product, cls pooling
    cases.append(("ip-cls", cb, cq, "F32", "F32", ["--ip", "--pool", "cls"], "cls"))
    for name, b, q, bdt, qdt, opts, how in cases:
        bnames = ["b%05d.jpg" % i for i in range(len(b))]
        qnames = ["q%04d" % i for i in range(len(q))]
        bpath, qpath = os.path.join(tmp, name + "-bank.aimt"), os.path.join(tmp, name + "-q.aimt")
        features_stream(bpath, b, names=bnames, ids=np.arange(len(b)), per_record=700, dtype=bdt)
        features_stream(qpath, q, names=qnames, per_record=64, dtype=qdt)
        pb, pq = pool(b, how), pool(q.astype(np.float32), how)
        if "--ip" not in opts:
            pb, pq = normalize(pb), normalize(pq)
        D, I = faiss_search(pb, pq, 10)
        ref_names = [[bnames[j] for j in row] for row in I]
        for threads in ("1", "2"):
            p = run(binary, ["--bank", bpath, "-k", "10", "--threads", threads, "-q"] + opts + [qpath])
            compare(parse_tsv(p.stdout), qnames, D, ref_names, label="%s/threads %s" % (name, threads))
        # index file: same answers, and pooling/normalisation recorded in it
        ipath = os.path.join(tmp, name + ".idx")
        run(binary, ["--bank", bpath, "--save-index", ipath, "-q"] + opts)
        direct = run(binary, ["--bank", bpath, "-q"] + opts + [qpath]).stdout
        idx_opts = [o for o in opts if o == "--ip"]
        viaidx = run(binary, ["--bank", ipath, "-q"] + idx_opts + [qpath]).stdout
        if direct != viaidx:
            fail("%s: index file answers differ from the streams" % name)
    # one query: the sgemv path, k = whole bank ordering check on a small bank
    small = rng.standard_normal((40, 16)).astype(np.float32)
    sq = rng.standard_normal((1, 16)).astype(np.float32)
    features_stream(os.path.join(tmp, "small.aimt"), small)
    features_stream(os.path.join(tmp, "sq.aimt"), sq)
    D, I = faiss_search(normalize(small), normalize(sq), 40)
    p = run(binary, ["--bank", os.path.join(tmp, "small.aimt"), "-k", "40", "-q",
                     os.path.join(tmp, "sq.aimt")])
    compare(parse_tsv(p.stdout), ["0"], D, [[str(j) for j in I[0]]], label="whole bank")


def scenario_shards(binary, tmp):
    """Shards + merge equal the unsharded result, from streams and index."""
    rng = np.random.default_rng(2)
    b, lab, _ = clustered(rng, 2000, 0, 32, 10, 0.5)
    q = rng.standard_normal((77, 32)).astype(np.float32)
    bpath, qpath = os.path.join(tmp, "bank.aimt"), os.path.join(tmp, "q.aimt")
    features_stream(bpath, b, names=["img/%d.png" % i for i in range(len(b))],
                    ids=np.arange(len(b)), labels=lab, per_record=333,
                    classes=["c%d" % i for i in range(10)])
    features_stream(qpath, q, per_record=20)
    whole = run(binary, ["--bank", bpath, "-k", "7", "-q", qpath]).stdout
    for n in (1, 3, 4):
        parts = []
        for i in range(n):
            out = os.path.join(tmp, "shard%d-%d.aimt" % (i, n))
            run(binary, ["--bank", bpath, "--shard", "%d/%d" % (i, n), "-k", "7", "--format",
                         "stream", "-o", out, "-q", qpath])
            parts.append(out)
        merged = run(binary, ["--merge", "-q"] + parts).stdout
        if merged != whole:
            fail("%d shards merged differ from the whole bank" % n)
        # merged stream of shards: neighbour ids and labels are the bank's
        ms = os.path.join(tmp, "merged%d.aimt" % n)
        run(binary, ["--merge", "--format", "stream", "-o", ms, "-q"] + parts)
        recs = read_stream(ms)
        nb = np.concatenate([t["neighbors"] for t, _ in recs])
        nl = np.concatenate([t["neighbor_labels"] for t, _ in recs])
        if not np.array_equal(lab[nb], nl):
            fail("merged neighbour labels are not the bank's labels")
        if recs[0][1].get("aim.classes") != json.dumps(["c%d" % i for i in range(10)]):
            fail("merged stream lost aim.classes")
    # shard index files, each prepared on its own, merged
    parts = []
    for i in range(3):
        idx, out = os.path.join(tmp, "s%d.idx" % i), os.path.join(tmp, "s%d.aimt" % i)
        run(binary, ["--bank", bpath, "--shard", "%d/3" % i, "--save-index", idx, "-q"])
        run(binary, ["--bank", idx, "-k", "7", "--format", "stream", "-o", out, "-q", qpath])
        parts.append(out)
    if run(binary, ["--merge", "-q"] + parts).stdout != whole:
        fail("merged shard indexes differ from the whole bank")
    # a merge re-cut to fewer neighbours equals asking for fewer
    if run(binary, ["--merge", "-k", "3", "-q"] + parts).stdout != \
            run(binary, ["--bank", bpath, "-k", "3", "-q", qpath]).stdout:
        fail("merge -k 3 differs from -k 3")


def splitmix64(state):
    M = (1 << 64) - 1
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)


def dropout_keep(seed, index, K, p):
    nkeep = max(1, K - int(np.floor(p * K + 0.5)))
    state = (seed + index * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
    perm = list(range(K))
    for i in range(nkeep):
        state, r = splitmix64(state)
        j = i + r % (K - i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:nkeep]


def brute(bank, q, k, keep=lambda i, j, s: True):
    """All scores, sorted by (-score, row); keep filters candidates."""
    S = q.astype(np.float64) @ bank.astype(np.float64).T
    out = []
    for i in range(len(q)):
        order = sorted(range(len(bank)), key=lambda j: (-S[i, j], j))
        out.append([(j, S[i, j]) for j in order if keep(i, j, S[i, j])][:k])
    return out, S


def scenario_options(binary, tmp):
    rng = np.random.default_rng(3)
    # bank with near-duplicate groups: each base vector has 3 noisy copies
    base = rng.standard_normal((60, 24)).astype(np.float32)
    b = np.repeat(base, 4, axis=0) + 0.05 * rng.standard_normal((240, 24)).astype(np.float32)
    names = ["n%03d" % i for i in range(len(b))]
    bpath = os.path.join(tmp, "bank.aimt")
    features_stream(bpath, b, names=names, ids=np.arange(len(b)), per_record=50)
    nb = normalize(b)
    q = b[::17] + 0.01 * rng.standard_normal((len(b[::17]), 24)).astype(np.float32)
    qpath = os.path.join(tmp, "q.aimt")
    qnames = ["q%d" % i for i in range(len(q))]
    features_stream(qpath, q, names=qnames)
    nq = normalize(q)

    # --max-score drops near duplicates
    T = 0.95
    ref, _ = brute(nb, nq, 5, lambda i, j, s: s <= T)
    got = parse_tsv(run(binary, ["--bank", bpath, "-k", "5", "--max-score", str(T), "-q", qpath]).stdout)
    compare(got, qnames, [[s for _, s in r] for r in ref], [[names[j] for j, _ in r] for r in ref],
            label="--max-score")
    if all(s <= T for r in ref for _, s in r) and not any(
            s > T for r in brute(nb, nq, 5)[0] for _, s in r):
        fail("--max-score test data has no near-duplicates (test cannot fail)")

    # --diverse: greedy over the ranked list
    T = 0.9
    full, _ = brute(nb, nq, len(nb))
    ref = []
    for i, r in enumerate(full):
        chosen = []
        for j, s in r:
            if all(float(nb[j].astype(np.float64) @ nb[c].astype(np.float64)) <= T for c, _ in chosen):
                chosen.append((j, s))
            if len(chosen) == 5:
                break
        ref.append(chosen)
    got = parse_tsv(run(binary, ["--bank", bpath, "-k", "5", "--diverse", str(T), "-q", qpath]).stdout)
    compare(got, qnames, [[s for _, s in r] for r in ref], [[names[j] for j, _ in r] for r in ref],
            label="--diverse")
    plain = parse_tsv(run(binary, ["--bank", bpath, "-k", "5", "-q", qpath]).stdout)
    if plain == got:
        fail("--diverse changed nothing (test data too easy)")
    # diverse needing more than the first candidate window: k large, strict T
    ref = []
    for i, r in enumerate(full):
        chosen = []
        for j, s in r:
            if all(float(nb[j].astype(np.float64) @ nb[c].astype(np.float64)) <= 0.3 for c, _ in chosen):
                chosen.append((j, s))
            if len(chosen) == 20:
                break
        ref.append(chosen)
    got = parse_tsv(run(binary, ["--bank", bpath, "-k", "20", "--diverse", "0.3", "-q", qpath]).stdout)
    compare(got, qnames, [[s for _, s in r] for r in ref], [[names[j] for j, _ in r] for r in ref],
            label="--diverse 0.3")

    # --exclude-self: queries that are bank entries, by name
    qs = b[5:40:5]
    qsn = [names[i] for i in range(5, 40, 5)]
    qspath = os.path.join(tmp, "qs.aimt")
    features_stream(qspath, qs, names=qsn)
    pos = {n: i for i, n in enumerate(qsn)}
    ref, _ = brute(nb, normalize(qs), 4, lambda i, j, s: names[j] != qsn[i])
    got = parse_tsv(run(binary, ["--bank", bpath, "-k", "4", "--exclude-self", "-q", qspath]).stdout)
    compare(got, qsn, [[s for _, s in r] for r in ref], [[names[j] for j, _ in r] for r in ref],
            label="--exclude-self")
    plain = parse_tsv(run(binary, ["--bank", bpath, "-k", "4", "-q", qspath]).stdout)
    if any(plain[n][0][0] != n for n in qsn):
        fail("without --exclude-self a bank entry is not its own first neighbour")
    # by id when the queries carry no names
    features_stream(qspath, qs, ids=np.arange(5, 40, 5))
    got = parse_tsv(run(binary, ["--bank", bpath, "-k", "4", "--exclude-self", "-q", qspath]).stdout)
    compare(got, [str(i) for i in range(5, 40, 5)], [[s for _, s in r] for r in ref],
            [[names[j] for j, _ in r] for r in ref], label="--exclude-self by id")
    del pos

    # --query-dropout: per-patch queries, reference draw reimplemented
    K = 10
    qt = rng.standard_normal((9, K, 24)).astype(np.float32)
    qtpath = os.path.join(tmp, "qt.aimt")
    qtn = ["t%d" % i for i in range(len(qt))]
    features_stream(qtpath, qt, names=qtn, per_record=4)
    for p, seed in ((0.3, 7), (0.5, 123456789), (0.95, 1)):
        pooled = np.stack([qt[i][dropout_keep(seed, i, K, p)].astype(np.float64).mean(axis=0)
                           for i in range(len(qt))]).astype(np.float32)
        ref, _ = brute(nb, normalize(pooled), 6)
        got = parse_tsv(run(binary, ["--bank", bpath, "-k", "6", "--query-dropout", str(p),
                                     "--seed", str(seed), "-q", qtpath]).stdout)
        compare(got, qtn, [[s for _, s in r] for r in ref], [[names[j] for j, _ in r] for r in ref],
                label="--query-dropout %g seed %d" % (p, seed))
    nodrop = run(binary, ["--bank", bpath, "-k", "6", "-q", qtpath]).stdout
    if run(binary, ["--bank", bpath, "-k", "6", "--query-dropout", "0.5", "-q", qtpath]).stdout == nodrop:
        fail("--query-dropout 0.5 changed nothing")

    # --format stream: tensors and names
    out = os.path.join(tmp, "res.aimt")
    run(binary, ["--bank", bpath, "-k", "3", "--format", "stream", "-o", out, "-q", qpath])
    recs = read_stream(out)
    t, meta = recs[0]
    ref, _ = brute(nb, nq, 3)
    if t["neighbors"].shape != (len(q), 3) or t["scores"].dtype != np.float32:
        fail("--format stream shapes: %s" % (t["neighbors"].shape,))
    elif not np.array_equal(t["neighbors"], np.array([[j for j, _ in r] for r in ref])):
        fail("--format stream neighbour ids differ from the reference")
    if json.loads(meta["aim.names"]) != qnames:
        fail("--format stream query names")
    if json.loads(meta["aim.neighbor_names"])[0] != [names[j] for j, _ in ref[0]]:
        fail("--format stream neighbour names")

    # one query at a time on a pipe: each answer arrives before the next query
    p = subprocess.Popen([binary, "--bank", bpath, "-k", "2", "-q"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    c = zstandard.ZstdCompressor(write_checksum=True)
    for i in range(3):
        p.stdin.write(c.compress(record_bytes([("features", q[i:i + 1])],
                                              {"aim.names": json.dumps([qnames[i]])})))
        p.stdin.flush()
        lines = [p.stdout.readline() for _ in range(2)]
        if not all(l.startswith(qnames[i].encode() + b"\t") for l in lines):
            fail("pipe: answer %d was %r" % (i, lines))
    p.stdin.close()
    if p.wait(10) != 0:
        fail("pipe: exit %d" % p.returncode)


def scenario_knn(binary, tmp):
    """Weighted k-NN vote as in the DINO evaluation (k=20, T=0.07)."""
    rng = np.random.default_rng(4)
    b, lab, centers = clustered(rng, 1500, 0, 32, 12, 1.6)
    lab[::50] = -1  # unlabelled entries do not vote
    qlab = rng.integers(0, 12, 400)
    q = centers[qlab] + 1.6 * rng.standard_normal((400, 32)).astype(np.float32)
    bpath, qpath = os.path.join(tmp, "bank.aimt"), os.path.join(tmp, "q.aimt")
    features_stream(bpath, b, labels=lab, per_record=500)
    features_stream(qpath, q, labels=qlab, per_record=128)
    try:
        import torch
    except ImportError:
        torch = None
    nb, nq = normalize(b), normalize(q)
    keep = lab >= 0
    for k, T in ((20, 0.07), (5, 0.5)):
        S = nq.astype(np.float64) @ nb[keep].astype(np.float64).T
        top1 = top5 = 0
        for i in range(len(q)):
            idx = np.argsort(-S[i], kind="stable")[:k]
            votes = np.zeros(12)
            np.add.at(votes, lab[keep][idx], np.exp(S[i, idx] / T))
            order = np.argsort(-votes, kind="stable")
            top1 += order[0] == qlab[i]
            top5 += qlab[i] in order[:5] and votes[qlab[i]] > 0
        want = (100.0 * top1 / len(q), 100.0 * top5 / len(q))
        args = ["--bank", bpath, "--knn", "-q", qpath]
        if k != 20:
            args += ["-k", str(k), "--temperature", str(T)]
        p = run(binary, args)
        line = p.stdout.decode().split()
        if line[:1] != ["top1"] or len(line) != 4:
            fail("--knn output %r" % p.stdout)
            continue
        got = (float(line[1]), float(line[3]))
        if abs(got[0] - want[0]) > 0.006 or abs(got[1] - want[1]) > 0.006:
            fail("--knn k=%d T=%g: top1/top5 %s, reference %s" % (k, T, got, want))
        if want[0] in (0.0, 100.0):
            fail("--knn data too easy or too hard (top1 %g)" % want[0])
        j = json.loads(run(binary, args + ["--json"]).stdout)
        if abs(j["top1"] - want[0]) > 1e-3 or abs(j["top5"] - want[1]) > 1e-3:
            fail("--knn --json %s vs %s" % (j, want))
    if torch is not None:
        # the DINO code itself (eval_knn.knn_classifier), one batch
        T, k = 0.07, 20
        train = torch.from_numpy(nb[keep]).t()
        sim = torch.from_numpy(nq) @ train
        d, ind = sim.topk(k, largest=True, sorted=True)
        cand = torch.from_numpy(lab[keep]).view(1, -1).expand(len(q), -1)
        ret = torch.gather(cand, 1, ind)
        oh = torch.zeros(len(q) * k, 12)
        oh.scatter_(1, ret.view(-1, 1), 1)
        probs = torch.sum(torch.mul(oh.view(len(q), -1, 12), d.div_(T).exp_().view(len(q), -1, 1)), 1)
        _, pred = probs.sort(1, True)
        correct = pred.eq(torch.from_numpy(qlab).view(-1, 1))
        t1 = correct.narrow(1, 0, 1).sum().item() * 100.0 / len(q)
        got = float(run(binary, ["--bank", bpath, "--knn", "-q", qpath]).stdout.split()[1])
        if abs(got - t1) > 0.006:
            fail("--knn top1 %g, DINO code %g" % (got, t1))
    # merge of shards then vote equals the direct vote (all bank entries labelled)
    features_stream(bpath, b, labels=np.abs(lab), per_record=500)
    direct = run(binary, ["--bank", bpath, "--knn", "-q", qpath]).stdout
    parts = []
    for i in range(2):
        out = os.path.join(tmp, "k%d.aimt" % i)
        run(binary, ["--bank", bpath, "--shard", "%d/2" % i, "-k", "20", "--format", "stream",
                     "-o", out, "-q", qpath])
        parts.append(out)
    if run(binary, ["--merge", "--knn", "-q"] + parts).stdout != direct:
        fail("--merge --knn differs from --knn on the whole bank")


def scenario_sheet(binary, tmp):
    from PIL import Image
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (8, 3))
    os.makedirs(os.path.join(tmp, "img"), exist_ok=True)
    names = []
    for i, c in enumerate(colours):
        n = "img/%d.%s" % (i, "png" if i % 2 else "jpg")
        Image.new("RGB", (50 + 10 * i, 40), tuple(int(v) for v in c)).save(os.path.join(tmp, n),
                                                                           quality=100)
        names.append(n)
    b = rng.standard_normal((8, 16)).astype(np.float32)
    bpath = os.path.join(tmp, "bank.aimt")
    features_stream(bpath, b, names=names)
    qpath = os.path.join(tmp, "q.aimt")
    features_stream(qpath, b[[2, 5]], names=[names[2], names[5]])
    sheet = os.path.join(tmp, "sheet.png")
    p = run(binary, ["--bank", bpath, "-k", "3", "--sheet", sheet, "--image-root", tmp,
                     "--thumb", "32", "-q", qpath])
    got = parse_tsv(p.stdout)
    im = np.asarray(Image.open(sheet).convert("RGB")).astype(int)
    # layout: 6 px margins, cells of 32 + 6, neighbours after a further 6 px gap
    if im.shape[0] != 2 * (32 + 12 + 6) + 6 or im.shape[1] != 4 * 38 + 12:
        fail("sheet size %s" % (im.shape,))
        return
    for row, qn in enumerate([names[2], names[5]]):
        y = 6 + row * 50 + 16
        cells = [(qn, 6 + 16)] + [(n, 6 + (j + 1) * 38 + 6 + 16) for j, (n, _) in enumerate(got[qn])]
        for n, x in cells:
            want = colours[names.index(n)]
            if np.abs(im[y, x] - want).max() > 3:
                fail("sheet cell %s at (%d,%d): %s, image colour %s" % (n, x, y, im[y, x], want))
    # a missing image is drawn grey with a warning, not an error
    os.remove(os.path.join(tmp, names[3]))
    p = run(binary, ["--bank", bpath, "-k", "7", "--sheet", sheet, "--image-root", tmp, qpath])
    if b"could not be read" not in p.stderr:
        fail("missing image not reported: %r" % p.stderr)


def main():
    scenario, binary, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
    start = time.time()
    globals()["scenario_" + scenario](os.path.join(binary, "aim-retrieve"), tmp)
    print("%s: %d failures (%.1fs)" % (scenario, len(FAILS), time.time() - start))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
