#!/usr/bin/python3
"""Reference for aim-patchify: Pillow 9.4 + torchvision 0.14.

  patchify_ref.py gen DIR [odd]       write a test corpus (ImageFolder layout;
                                      odd: only the odd sizes)
  patchify_ref.py val STREAM S R P C...  check every sample of STREAM against
                                      CenterCrop(S)(Resize(R, BICUBIC)(
                                      Image.open(name).convert(mode)))
  patchify_ref.py labels STREAM ROOT  ids, names and labels equal to
                                      torchvision's ImageFolder(ROOT)
  patchify_ref.py train STREAM LOG S P C   each sample equal to the logged
                                      crop/flip/jitter applied with
                                      torchvision's functional ops
  patchify_ref.py same A B            two streams hold identical samples
  patchify_ref.py count STREAM        number of samples and their ids
  patchify_ref.py epochs STREAM N     epochs 0..N-1 each hold every id once,
                                      in differing orders
  patchify_ref.py gen-formats DIR     every mode of PPM/PGM/PBM, GIF, WebP
                                      and BMP that Pillow reads (TIFF: tiff_ref.py)
  patchify_ref.py gen-tar SRC OUT EXP WebDataset shards of SRC's images
  patchify_ref.py labels-tar STREAM EXP   labels equal the shards' KEY.cls
  patchify_ref.py gen-damaged DIR     PNGs and JPEGs damaged as real corpora
                                      are (Pillow accepts some, refuses others)
  patchify_ref.py cut SRC OUT         damaged copies (cut short, a byte flipped)
  patchify_ref.py verdicts STREAM ERR FILE...  aim-patchify keeps exactly the
                                      damaged files Pillow decodes

The stream reader below is written from DESIGN.md alone (safetensors
records, each a zstd frame) and shares no code with the C tools.
Exit status 0 when everything matches, 1 with a message otherwise.
"""
import io
import json
import warnings
import math
import os
import struct
import sys
import tarfile
import zlib

import numpy as np
import zstandard
from PIL import Image

# torchvision is imported by the commands that use it (its import costs
# seconds; the listing and counting commands need only numpy).

# Pillow warns about palette transparency given as bytes; the pixels are what
# we compare, the warning is noise here.
warnings.filterwarnings("ignore", message="Palette images with Transparency")

DTYPES = {"U8": np.uint8, "I64": np.int64, "F32": np.float32, "I32": np.int32}


def read_stream(path):
    data = open(path, "rb").read()
    if data[:4] == b"\x28\xb5\x2f\xfd":
        out = bytearray()
        d = zstandard.ZstdDecompressor()
        while data:
            obj = d.decompressobj()
            out += obj.decompress(data)
            data = obj.unused_data
        data = bytes(out)
    pos, records = 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        hdr = json.loads(data[pos + 8 : pos + 8 + n])
        base = pos + 8 + n
        meta = hdr.pop("__metadata__", {})
        end = 0
        tensors = {}
        for name, v in hdr.items():
            s, e = v["data_offsets"]
            end = max(end, e)
            tensors[name] = np.frombuffer(data[base + s : base + e], dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
        records.append((tensors, meta))
        pos = base + end
    return records


def samples(path):
    """(id, label, name, patches, epoch) for every sample of a stream."""
    out = []
    for t, meta in read_stream(path):
        names = json.loads(meta["aim.names"])
        epoch = int(meta.get("aim.epoch", "0"))
        for i in range(t["patches"].shape[0]):
            out.append((int(t["id"][i]), int(t["label"][i]), names[i], t["patches"][i], epoch))
    return out


def open_image(name):
    """A file, or SHARD:MEMBER inside a tar shard."""
    shard, sep, member = name.partition(":")
    if sep and shard.endswith(".tar") and os.path.isfile(shard):
        with tarfile.open(shard) as tf:
            return Image.open(io.BytesIO(tf.extractfile(member).read()))
    return Image.open(name)


def to_patches(img, p, c):
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    S = a.shape[0]
    g = S // p
    return a.reshape(g, p, g, p, c).transpose(0, 2, 4, 1, 3).reshape(g * g, c * p * p)


def compare(name, got, want):
    if got.shape != want.shape:
        return f"{name}: shape {got.shape} != {want.shape}"
    diff = np.count_nonzero(got != want)
    if diff:
        return f"{name}: {diff} of {want.size} values differ (max abs {np.abs(got.astype(int) - want.astype(int)).max()})"
    return None


def cmd_val(*args):
    """Groups of five arguments: STREAM S R P C."""
    if len(args) == 0 or len(args) % 5:
        print("val: expected groups of STREAM S R P C")
        return 2
    status = 0
    for g in range(0, len(args), 5):
        status |= check_val(*args[g : g + 5])
    return status


def check_val(stream, S, R, p, c):
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode
    S, R, p, c = int(S), int(R), int(p), int(c)
    t = T.Compose([T.Resize(R, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(S)])
    mode = "RGB" if c == 3 else "L"
    errors, n = [], 0
    for _id, _label, name, got, _e in samples(stream):
        with open_image(name) as im:
            want = to_patches(t(im.convert(mode)), p, c)
        e = compare(name, got, want)
        if e:
            errors.append(e)
        n += 1
    for e in errors:
        print(e)
    print(f"val parity (S={S} R={R} p={p} C={c}): {n} images, {len(errors)} differ")
    return 1 if errors or n == 0 else 0


def cmd_labels(stream, root):
    from torchvision.datasets import ImageFolder
    ds = ImageFolder(root, loader=lambda p: None, allow_empty=True) if "allow_empty" in ImageFolder.__init__.__code__.co_varnames else ImageFolder(root, loader=lambda p: None)
    got = sorted((i, l, nm) for i, l, nm, _p, _e in samples(stream))
    want = [(i, l, nm) for i, (nm, l) in enumerate(ds.samples)]
    meta = read_stream(stream)[0][1]
    bad = 0
    if json.loads(meta["aim.classes"]) != ds.classes:
        print("classes differ:", meta["aim.classes"], ds.classes)
        bad = 1
    if got != want:
        print("listing differs from ImageFolder's:")
        for a, b in zip(got, want):
            if a != b:
                print("  got", a, "want", b)
                break
        print(f"  {len(got)} samples vs {len(want)}")
        bad = 1
    print(f"labels: {len(want)} samples, {len(ds.classes)} classes, {'differ' if bad else 'equal'}")
    return bad


def cmd_train(stream, log, S, p, c, pad=None):
    """Replays the logged augmentation with torchvision. With pad (aim-patchify
    --translate PAD) the crop is RandomCrop(S, padding=pad, pad_if_needed=True)'s:
    F.pad by pad zeros, the pad_if_needed growth, then F.crop at the logged
    offset moved into the padded image, which must lie inside it."""
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode
    S, p, c = int(S), int(p), int(c)
    mode = "RGB" if c == 3 else "L"
    rows = {}
    with open(log) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            rows[(int(r["epoch"]), int(r["id"]))] = r
    errors, n = [], 0
    for _id, _label, name, got, epoch in samples(stream):
        r = rows[(epoch, _id)]
        with open_image(name) as im:
            img = im.convert(mode)
        top, left, h, w = (int(r[k]) for k in ("top", "left", "height", "width"))
        if pad is None:
            img = F.resized_crop(img, top, left, h, w, [S, S], InterpolationMode.BICUBIC)
        else:
            k = int(pad)
            img = F.pad(img, k, fill=0)
            ex, ey = max(0, S - img.width), max(0, S - img.height)
            if ex:
                img = F.pad(img, [ex, 0], fill=0)
            if ey:
                img = F.pad(img, [0, ey], fill=0)
            i, j = top + k + ey, left + k + ex
            if (h, w) != (S, S) or not (0 <= i <= img.height - S and 0 <= j <= img.width - S):
                errors.append(f"{name} epoch {epoch}: window {w}x{h} at {j},{i} outside the padded {img.width}x{img.height}")
                continue
            img = F.crop(img, i, j, S, S)
        if r["flip"] == "1":
            img = F.hflip(img)
        for k in r["order"]:
            if k == "b" and float(r["brightness"]) != 1:
                img = F.adjust_brightness(img, float(r["brightness"]))
            if k == "c" and float(r["contrast"]) != 1:
                img = F.adjust_contrast(img, float(r["contrast"]))
            if k == "s" and float(r["saturation"]) != 1:
                img = F.adjust_saturation(img, float(r["saturation"]))
        e = compare(f"{name} epoch {epoch}", got, to_patches(img, p, c))
        if e:
            errors.append(e)
        n += 1
    for e in errors:
        print(e)
    print(f"train parity: {n} samples, {len(errors)} differ")
    return 1 if errors or n == 0 else 0


def cmd_count(stream):
    """Print the number of samples and the sorted ids, one line."""
    ids = sorted(i for i, _l, _n, _p, _e in samples(stream))
    print(len(ids), " ".join(map(str, ids)))
    return 0


def cmd_epochs(stream, n):
    """Every epoch 0..n-1 holds every id exactly once; return the orders."""
    by = {}
    for i, _l, _n, _p, e in samples(stream):
        by.setdefault(e, []).append(i)
    n = int(n)
    if sorted(by) != list(range(n)):
        print("epochs present:", sorted(by))
        return 1
    ref = sorted(by[0])
    for e in range(n):
        if sorted(by[e]) != ref:
            print(f"epoch {e} does not hold every id once")
            return 1
    orders = {tuple(v) for v in by.values()}
    print(f"epochs: {n} epochs of {len(ref)} samples, {len(orders)} distinct orders")
    return 0 if n == 1 or len(orders) > 1 else 1


def cmd_labels_tar(stream, expected):
    """Labels equal the KEY.cls contents listed in the expected file
    (lines 'name label')."""
    want = dict(l.split() for l in open(expected))
    got = {n: str(l) for _i, l, n, _p, _e in samples(stream)}
    if got != want:
        print("tar labels differ:", sorted(set(got.items()) ^ set(want.items()))[:5])
        return 1
    print(f"tar labels: {len(got)} equal")
    return 0


def cmd_cut(src, out):
    """Damaged copies of each image below src: cut short at several points
    (also just the last byte or two) and with a flipped byte."""
    os.makedirs(out, exist_ok=True)
    for r, _d, fs in os.walk(src):
        for f in sorted(fs):
            data = open(os.path.join(r, f), "rb").read()
            base, ext = os.path.splitext(f)
            for cut in (1, 2, 12, len(data) // 10, len(data) // 2, len(data) - 40):
                if 0 < cut < len(data):
                    open(f"{out}/{base}_cut{cut}{ext}", "wb").write(data[: len(data) - cut])
            flip = bytearray(data)
            flip[len(data) // 2] ^= 0x55
            open(f"{out}/{base}_flip{ext}", "wb").write(bytes(flip))
    return 0


def cmd_verdicts(stream, errfile, *files):
    """Every file Pillow decodes is in the stream (pixels checked by val);
    every file Pillow refuses is named on stderr and absent from it."""
    written = {n for _i, _l, n, _p, _e in samples(stream)} if os.path.getsize(stream) else set()
    err = open(errfile).read()
    bad = 0
    for f in files:
        try:
            with Image.open(f) as im:
                im.convert("RGB")
            pillow_ok = True
        except Exception:
            pillow_ok = False
        named = f"aim-patchify: {f}: " in err
        if pillow_ok != (f in written) or pillow_ok == named:
            print(f"{f}: Pillow {'decodes' if pillow_ok else 'refuses'} it, aim-patchify "
                  f"{'wrote' if f in written else 'did not write'} it{' and named it' if named else ''}")
            bad += 1
    print(f"verdicts: {len(files)} damaged files, {bad} disagree with Pillow")
    return 1 if bad else 0


def cmd_same(a, b):
    A = [(i, l, nm, pt.tobytes(), e) for i, l, nm, pt, e in samples(a)]
    B = [(i, l, nm, pt.tobytes(), e) for i, l, nm, pt, e in samples(b)]
    if A != B:
        print(f"streams differ: {len(A)} vs {len(B)} samples")
        return 1
    print(f"same: {len(A)} samples")
    return 0


# ---- corpus ------------------------------------------------------------------


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(values, depth):
    values = np.asarray(values).reshape(-1)
    if depth == 8:
        return values.astype(np.uint8).tobytes()
    if depth == 16:
        return values.astype(">u2").tobytes()
    per = 8 // depth
    out = bytearray((len(values) * depth + 7) // 8)
    for i, v in enumerate(values):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


def write_png(path, arr, depth, ctype, plte=None, trns=None, interlace=False):
    """A PNG of any bit depth and colour type, written by hand."""
    h, w = arr.shape[:2]
    raw = bytearray()
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for y in range(sub.shape[0]):
            raw += b"\0" + pack_row(sub[y], depth)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if plte is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + png_chunk(b"IEND", b"")
    open(path, "wb").write(out)


def pattern(rng, h, w, c):
    """Smooth gradients plus noise plus hard edges: every value 0..255 occurs."""
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 255.0 / max(w - 1, 1) + y * 97.0 / max(h - 1, 1))[..., None] + np.arange(c) * 60
    a = (base % 256) * 0.6 + rng.integers(0, 256, (h, w, c)) * 0.4
    a[(x // 7 + y // 5) % 3 == 0] = 255
    a[(x // 11 + y // 3) % 5 == 0] = 0
    return a.astype(np.uint8)


def cmd_gen(root, only=None):
    rng = np.random.default_rng(1234)
    d = lambda *p: os.makedirs(os.path.join(root, *p), exist_ok=True) or os.path.join(root, *p)
    jpg, png, odd = d("jpeg"), d("png"), d("odd-sizes")
    d("png", "nested", "deeper")
    d("png", "nested-x")  # sorted(os.walk): png/nested, png/nested-x, png/nested/deeper
    d("png-extra")
    if only != "odd":  # the odd sizes alone serve the tar test
        # JPEG: colour, gray, CMYK (Pillow writes the Adobe marker), progressive, 4:4:4
        Image.fromarray(pattern(rng, 450, 400, 3)).save(f"{jpg}/rgb_400x450.jpg", quality=90)
        Image.fromarray(pattern(rng, 301, 517, 3)).save(f"{jpg}/rgb_444.jpeg", quality=95, subsampling=0)
        Image.fromarray(pattern(rng, 260, 333, 3)).save(f"{jpg}/progressive.jpg", quality=85, progressive=True)
        Image.fromarray(pattern(rng, 257, 256, 1)[..., 0]).save(f"{jpg}/gray.jpg", quality=90)
        Image.fromarray(pattern(rng, 300, 280, 4), "CMYK").save(f"{jpg}/cmyk.jpg", quality=90)
        Image.fromarray(pattern(rng, 240, 250, 3)).save(f"{jpg}/UPPER.JPG", quality=80)
        Image.fromarray(pattern(rng, 233, 267, 3)).save(f"{jpg}/rgb_422_optimized.jpg", quality=75, subsampling=1, optimize=True)
        Image.fromarray(pattern(rng, 229, 231, 4), "CMYK").save(f"{jpg}/cmyk_progressive.jpg", quality=70, progressive=True)
        # PNG through Pillow: every mode it writes
        Image.fromarray(pattern(rng, 230, 270, 3)).save(f"{png}/rgb.png")
        Image.fromarray(pattern(rng, 270, 230, 4), "RGBA").save(f"{png}/rgba.png")
        Image.fromarray(pattern(rng, 225, 300, 1)[..., 0]).save(f"{png}/l.png")
        Image.fromarray(pattern(rng, 300, 226, 2), "LA").save(f"{png}/la.png")
        q = Image.fromarray(pattern(rng, 240, 260, 3)).quantize(200)
        q.save(f"{png}/p.png")
        q.save(f"{png}/nested/p_trns_int.png", transparency=3)
        q16 = Image.fromarray(pattern(rng, 231, 229, 3)).quantize(16)
        q16.save(f"{png}/nested/p4.png", bits=4)
        alpha = bytes(rng.integers(0, 256, 16).astype(np.uint8))
        q16.save(f"{png}/nested/deeper/p_trns_bytes.png", transparency=alpha)
        Image.fromarray(pattern(rng, 233, 241, 1)[..., 0] > 128).save(f"{png}/one_bit.png")
        Image.fromarray(pattern(rng, 25, 24, 3)).save(f"{png}/nested-x/between.png")
        g16 = (pattern(rng, 229, 250, 1)[..., 0].astype(np.uint16) * 3).astype(np.uint16)  # 0..765: clipping
        write_png(f"{png}/gray16.png", g16, 16, 0)
        # PNG written by hand: depths and layouts Pillow does not write
        write_png(f"{png}/rgb16.png", pattern(rng, 234, 236, 3).astype(np.uint16) * 257 + rng.integers(0, 257, (234, 236, 3)), 16, 2)
        write_png(f"{png}/rgba16.png", pattern(rng, 236, 234, 4).astype(np.uint16) * 250, 16, 6)
        write_png(f"{png}/la16.png", pattern(rng, 228, 246, 2).astype(np.uint16) * 256 + 7, 16, 4)
        write_png(f"{png}/gray2.png", pattern(rng, 230, 231, 1) // 64, 2, 0)
        write_png(f"{png}/gray4.png", pattern(rng, 232, 229, 1) // 16, 4, 0)
        write_png(f"{png}-extra/p2_short_palette.png", pattern(rng, 229, 233, 1) // 64, 2, 3, plte=[[10, 200, 30], [250, 0, 90]])
        write_png(f"{png}-extra/interlaced_rgb.png", pattern(rng, 241, 239, 3), 8, 2, interlace=True)
        write_png(f"{png}-extra/interlaced_p4.png", pattern(rng, 27, 35, 1) // 16, 4, 3, plte=rng.integers(0, 256, (16, 3)), interlace=True)
        write_png(f"{png}-extra/interlaced_gray16.png", pattern(rng, 33, 300, 1).astype(np.uint16) * 200, 16, 0, interlace=True)
        write_png(f"{png}-extra/rgb_trns.png", pattern(rng, 240, 231, 3), 8, 2, trns=b"\0\1\0\2\0\3")
        open(f"{png}/notes.txt", "w").write("not an image\n")
    # odd and extreme sizes, smaller and larger than the crop
    for h, w in [(1, 1), (1, 300), (300, 1), (2, 3), (7, 500), (500, 7), (13, 13), (224, 224), (256, 256), (255, 257), (600, 401), (1000, 30), (97, 1024)]:
        Image.fromarray(pattern(rng, h, w, 3)).save(f"{odd}/s_{h}x{w}.png")
    Image.fromarray(pattern(rng, 37, 5, 3)).save(f"{odd}/s_37x5.jpg", quality=90)
    # Fashion-MNIST-like: 28x28 grayscale
    fm = d("fm28")
    for i in range(3):
        Image.fromarray(pattern(rng, 28, 28, 1)[..., 0]).save(f"{fm}/f{i}.png")
    return 0


def write_pnm(path, magic, arr, maxval=None, comment=b""):
    """A Netpbm file written by hand: any maxval, plain or raw, with an
    optional comment in the header."""
    h, w = arr.shape[:2]
    head = magic + b"\n" + comment + b"%d %d\n" % (w, h)
    if maxval is not None:
        head += b"%d\n" % maxval
    a = np.asarray(arr).reshape(h, -1)
    if magic in (b"P1", b"P2", b"P3"):
        body = b"\n".join(b" ".join(b"%d" % v for v in row) for row in a) + b"\n"
        if magic == b"P1":
            body = b"\n".join(b"".join(b"%d" % v for v in row) for row in a) + b"\n"
    elif magic == b"P4":
        body = np.packbits(a.astype(np.uint8), axis=1).tobytes()
    else:
        body = a.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    open(path, "wb").write(head + body)


def gif_lzw(idx, bits):
    """LZW-compress indices as GIF does (a clear code first, codes widening
    as the table grows, a clear when it is full), packed in sub-blocks."""
    clear, end = 1 << bits, (1 << bits) + 1
    out, acc, nacc = bytearray(), 0, 0
    size = bits + 1
    def put(code):
        nonlocal acc, nacc
        acc |= code << nacc
        nacc += size
        while nacc >= 8:
            out.append(acc & 255)
            acc >>= 8
            nacc -= 8
    table, nxt = {}, end + 1
    put(clear)
    cur = None
    for v in bytes(idx):
        k = (cur, v) if cur is not None else None
        if cur is None:
            cur = v
        elif k in table:
            cur = table[k]
        else:
            put(cur)
            if nxt < 4096:
                table[k] = nxt
                nxt += 1
                if nxt - 1 == (1 << size) and size < 12:
                    size += 1
            else:
                put(clear)
                table, nxt, size = {}, end + 1, bits + 1
            cur = v
    put(cur)
    put(end)
    if nacc:
        out.append(acc & 255)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    return bytes([bits]) + blocks + b"\0"


def write_gif(path, idx, screen=None, at=(0, 0), gpal=None, lpal=None, trns=None, extra=b""):
    """A one-frame GIF written by hand: frame idx (h x w indices) at `at` on
    a screen of `screen` (w, h), global and/or local palettes (n x 3, n a
    power of two), a transparent index, extra bytes before the frame."""
    h, w = idx.shape
    sw, sh = screen or (w, h)
    def pal_flags(p):
        return 0 if p is None else 128 | (int(np.log2(len(p))) - 1)
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, pal_flags(gpal), 0, 0)
    if gpal is not None:
        out += bytes(np.asarray(gpal, np.uint8).reshape(-1))
    out += extra
    if trns is not None:
        out += b"!\xf9\x04\x01\x00\x00" + bytes([trns]) + b"\0"
    out += b"," + struct.pack("<HHHHB", at[0], at[1], w, h, pal_flags(lpal))
    if lpal is not None:
        out += bytes(np.asarray(lpal, np.uint8).reshape(-1))
    bits = max(2, int(idx.max()).bit_length())
    out += gif_lzw(idx.astype(np.uint8).tobytes(), bits) + b";"
    open(path, "wb").write(out)


def write_bmp(path, w, h, bits, rows, hsize=40, compression=0, palette=b"", masks=None,
              topdown=False, colors=0, offset=None, pad=True):
    """A BMP written by hand: rows are the file's pixel rows (already
    packed, in file order), padded to 4 bytes unless pad is False (or the
    data is RLE, given as one byte string in rows)."""
    if isinstance(rows, bytes):
        body = rows
    else:
        stride = ((w * bits + 31) >> 3) & ~3
        body = b"".join(r + b"\0" * (stride - len(r)) if pad else r for r in rows)
    extra = b""
    if hsize == 12:
        head = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        head = struct.pack("<IiiHHIIiiII", hsize, w, -h if topdown else h, 1, bits, compression, len(body), 2835, 2835, colors, 0)
        if masks is not None and hsize == 40:
            extra = struct.pack("<III", *masks[:3])
        tail = b""
        if hsize > 40:
            tail = struct.pack("<IIII", *(masks or (0, 0, 0, 0)))
        head += (tail + b"\0" * hsize)[: hsize - 40]
    off = 14 + len(head) + len(extra) + len(palette) if offset is None else offset
    data = head + extra + palette + body
    open(path, "wb").write(b"BM" + struct.pack("<IHHI", 14 + len(data), 0, 0, off) + data)


def bmp_pack(idx, bits):
    """Rows of indices packed MSB first at 1 or 4 bits (8: as they are)."""
    return [pack_row(r, bits) for r in idx]


def rle8(idx):
    """RLE8 of index rows (file order): runs, some absolute runs, end of line,
    end of bitmap."""
    out = bytearray()
    for r in idx:
        r = bytes(r)
        i = 0
        while i < len(r):
            j = i
            while j < len(r) and j - i < 255 and r[j] == r[i]:
                j += 1
            if j - i >= 3 or len(r) - i < 3:
                out += bytes([j - i, r[i]])
                i = j
            else:
                n = min(len(r) - i, 5)
                out += bytes([0, max(n, 3)]) + r[i:i + max(n, 3)]
                if max(n, 3) % 2:
                    out += b"\0"
                i += max(n, 3)
        out += b"\0\0"
    return bytes(out + b"\0\1")


def rle4(idx):
    """RLE4 of index rows: runs of alternating pairs, end of line, end of
    bitmap."""
    out = bytearray()
    for r in idx:
        i = 0
        while i < len(r):
            n = min(255, len(r) - i)
            hi = int(r[i])
            lo = int(r[i + 1]) if i + 1 < len(r) else 0
            k = 1
            while k < n and int(r[i + k]) == (hi if k % 2 == 0 else lo):
                k += 1
            out += bytes([k, hi << 4 | lo])
            i += k
        out += b"\0\0"
    return bytes(out + b"\0\1")


def gen_bmp(f, rng):
    rgb = pattern(rng, 61, 67, 3)
    Image.fromarray(pattern(rng, 233, 231, 3)).save(f("pil_rgb.bmp"))
    Image.fromarray(pattern(rng, 229, 235, 4), "RGBA").save(f("pil_rgba.bmp"))
    Image.fromarray(pattern(rng, 230, 231, 1)[..., 0]).save(f("pil_l.bmp"))
    Image.fromarray(pattern(rng, 231, 233, 1)[..., 0] > 120).save(f("pil_1.bmp"))
    Image.fromarray(pattern(rng, 232, 230, 3)).quantize(100).save(f("pil_p.bmp"))
    pal16 = bytes(rng.integers(0, 256, 64).astype(np.uint8))
    pal2 = bytes([200, 10, 30, 0, 5, 250, 90, 0])
    pal256 = bytes(rng.integers(0, 256, 1024).astype(np.uint8))
    i16 = (pattern(rng, 45, 53, 1)[..., 0] // 16).astype(np.uint8)
    i2 = (pattern(rng, 37, 43, 1)[..., 0] // 128).astype(np.uint8)
    i256 = pattern(rng, 39, 47, 1)[..., 0]
    write_bmp(f("p4.bmp"), 53, 45, 4, bmp_pack(i16, 4), palette=pal16)
    write_bmp(f("p1_colour.bmp"), 43, 37, 1, bmp_pack(i2, 1), palette=pal2)
    write_bmp(f("p8_topdown.bmp"), 47, 39, 8, bmp_pack(i256, 8), palette=pal256, topdown=True)
    write_bmp(f("p8_short_palette.bmp"), 47, 39, 8, bmp_pack(i256, 8), palette=pal16, colors=16)
    write_bmp(f("p4_os2.bmp"), 53, 45, 4, bmp_pack(i16, 4), hsize=12, palette=bytes(b for i in range(16) for b in pal16[4 * i:4 * i + 3]))
    write_bmp(f("p8_v5.bmp"), 47, 39, 8, bmp_pack(i256, 8), hsize=124, palette=pal256)
    write_bmp(f("p8_offset_after_header.bmp"), 47, 39, 8, bmp_pack(i256, 8), palette=pal256, offset=54)
    write_bmp(f("l4_grey_quirk.bmp"), 53, 45, 4, bmp_pack(i16, 4) + [b"\0" * 40] * 30, palette=b"".join(bytes([i, i, i, 0]) for i in range(16)))
    write_bmp(f("rgb24_os2.bmp"), 67, 61, 24, [bytes(r[:, ::-1].reshape(-1)) for r in rgb[::-1]], hsize=12)
    write_bmp(f("rgb24_nopad_last.bmp"), 67, 61, 24, [bytes(r[:, ::-1].reshape(-1)) for r in rgb[::-1]])
    open(f("rgb24_nopad_last.bmp"), "r+b").truncate(os.path.getsize(f("rgb24_nopad_last.bmp")) - 3)
    v = rgb.astype(np.uint32)
    p555 = ((v[..., 0] >> 3) << 10 | (v[..., 1] >> 3) << 5 | (v[..., 2] >> 3)).astype("<u2")
    p565 = ((v[..., 0] >> 3) << 11 | (v[..., 1] >> 2) << 5 | (v[..., 2] >> 3)).astype("<u2")
    write_bmp(f("rgb16_555.bmp"), 67, 61, 16, [r.tobytes() for r in p555])
    write_bmp(f("rgb16_565_bitfields.bmp"), 67, 61, 16, [r.tobytes() for r in p565], compression=3, masks=(0xF800, 0x7E0, 0x1F))
    write_bmp(f("rgb16_555_bitfields_v4.bmp"), 67, 61, 16, [r.tobytes() for r in p555], hsize=108, compression=3, masks=(0x7C00, 0x3E0, 0x1F, 0))
    a = rng.integers(0, 256, (61, 67)).astype(np.uint32)
    for name, m, word in [
        ("bgrx", (0xFF0000, 0xFF00, 0xFF, 0), v[..., 0] << 16 | v[..., 1] << 8 | v[..., 2]),
        ("xbgr", (0xFF000000, 0xFF0000, 0xFF00, 0), v[..., 0] << 24 | v[..., 1] << 16 | v[..., 2] << 8),
        ("abgr", (0xFF000000, 0xFF0000, 0xFF00, 0xFF), v[..., 0] << 24 | v[..., 1] << 16 | v[..., 2] << 8 | a),
        ("rgba", (0xFF, 0xFF00, 0xFF0000, 0xFF000000), a << 24 | v[..., 2] << 16 | v[..., 1] << 8 | v[..., 0]),
        ("bgra", (0xFF0000, 0xFF00, 0xFF, 0xFF000000), a << 24 | v[..., 0] << 16 | v[..., 1] << 8 | v[..., 2]),
    ]:
        write_bmp(f(f"rgb32_{name}.bmp"), 67, 61, 32, [r.astype("<u4").tobytes() for r in word], hsize=124, compression=3, masks=m)
    write_bmp(f("rgb32_raw.bmp"), 67, 61, 32, [(r | 0xAB000000).astype("<u4").tobytes() for r in v[..., 0] << 16 | v[..., 1] << 8 | v[..., 2]])
    write_bmp(f("rgb32_bitfields_40.bmp"), 67, 61, 32, [r.astype("<u4").tobytes() for r in v[..., 0] << 16 | v[..., 1] << 8 | v[..., 2]], compression=3, masks=(0xFF0000, 0xFF00, 0xFF))
    write_bmp(f("rle8.bmp"), 47, 39, 8, rle8(i256 // 40), compression=1, palette=pal256)
    write_bmp(f("rle4.bmp"), 53, 45, 4, rle4(i16 // 3), compression=2, palette=pal16)
    write_bmp(f("rle8_delta.bmp"), 20, 6, 8, b"\x05\x07\x00\x02\x09\x09\x03\x01\x04\x05\x00\x00" + b"\x14\x08\x00\x00" * 5, compression=1, palette=pal256)
    write_bmp(f("rle8_grey.bmp"), 47, 39, 8, rle8(i256), compression=1, palette=b"".join(bytes([i, i, i, 0]) for i in range(256)))
    # refused or damaged, for the verdicts
    os.makedirs(f("edge"), exist_ok=True)
    write_bmp(f("edge/bmp_2bit.bmp"), 10, 4, 2, [b"\x1b\x1b\x1b"] * 4, palette=pal16[:16])
    write_bmp(f("edge/bmp_header_56.bmp"), 10, 4, 24, [b"\x10" * 30] * 4, hsize=56)
    write_bmp(f("edge/bmp_rle_bw.bmp"), 10, 4, 8, b"\x0a\x01\x00\x00" * 4 + b"\x00\x01", compression=1, palette=bytes([0, 0, 0, 0, 255, 255, 255, 0]), colors=2)
    write_bmp(f("edge/bmp_rle_short.bmp"), 10, 4, 8, b"\x0a\x01\x00\x00" * 3 + b"\x00\x01", compression=1, palette=pal256)
    write_bmp(f("edge/bmp_rle_abs_odd4.bmp"), 10, 4, 4, b"\x00\x05\x12\x34\x56\x00" + b"\x0a\x11\x00\x00" * 4 + b"\x00\x01", compression=2, palette=pal16)
    write_bmp(f("edge/bmp_rle_delta_cut.bmp"), 10, 4, 8, b"\x0a\x01\x00\x02\x01", compression=1, palette=pal256)
    write_bmp(f("edge/bmp_bad_masks.bmp"), 10, 4, 32, [b"\x10" * 40] * 4, compression=3, masks=(0xFF, 0xFF00, 0xFF0000), hsize=40)
    write_bmp(f("edge/bmp_jpeg.bmp"), 10, 4, 24, [b"\x10" * 30] * 4, compression=4)
    write_bmp(f("edge/bmp_colors_300.bmp"), 10, 4, 8, [b"\x01" * 10] * 4, palette=pal256 + pal256[:176], colors=300)
    write_bmp(f("edge/bmp_palette_cut.bmp"), 10, 4, 8, [b"\x05" * 10] * 4, palette=pal16[:30], colors=16, offset=14 + 40 + 64)
    write_bmp(f("edge/bmp_height_0.bmp"), 10, 0, 24, [])
    write_bmp(f("edge/bmp_short.bmp"), 67, 61, 24, [bytes(r[:, ::-1].reshape(-1)) for r in rgb[::-1]][:60])


def cmd_gen_formats(root):
    """Every mode Pillow reads for PPM/PGM/PBM, GIF, WebP and BMP (TIFF:
    tiff_ref.py), written by Pillow where it writes them and by hand otherwise;
    each name says what it holds."""
    rng = np.random.default_rng(99)
    os.makedirs(root, exist_ok=True)
    f = lambda n: os.path.join(root, n)
    # ---- PNM
    rgb, grey = pattern(rng, 231, 247, 3), pattern(rng, 229, 251, 1)[..., 0]
    Image.fromarray(rgb).save(f("pil_rgb.ppm"))
    Image.fromarray(grey).save(f("pil_l.pgm"))
    Image.fromarray(grey > 100).save(f("pil_1.pbm"))
    Image.fromarray((grey.astype(np.int32) * 200)).save(f("pil_i16.pgm"))
    write_pnm(f("raw_maxval100.pgm"), b"P5", (grey.astype(int) * 100) // 255, 100)
    write_pnm(f("raw_maxval7_over.pgm"), b"P5", np.minimum(grey // 30, 9), 7)  # values above maxval
    write_pnm(f("raw_maxval1000.pgm"), b"P5", grey.astype(int) * 1000 // 255, 1000)
    write_pnm(f("raw_maxval300.ppm"), b"P6", rgb.astype(int) * 300 // 255, 300)
    write_pnm(f("raw_maxval65535.ppm"), b"P6", rgb.astype(int) * 257, 65535)
    write_pnm(f("raw_maxval15.ppm"), b"P6", rgb // 16, 15, comment=b"# a comment\n")
    write_pnm(f("plain.ppm"), b"P3", rgb[:40, :50] // 2, 127)
    write_pnm(f("plain.pgm"), b"P2", grey[:30, :60].astype(int) * 4, 1020)
    write_pnm(f("plain_255.pgm"), b"P2", grey[:33, :41], 255, comment=b"#c1\n#c2\n")
    write_pnm(f("plain.pbm"), b"P1", (grey[:35, :77] > 90).astype(int))
    write_pnm(f("raw_odd.pbm"), b"P4", (grey[:29, :13] > 90).astype(int))
    open(f("plain_comments.pgm"), "wb").write(b"P2 3 2 #x\n 10\n1 2 3#y\n\n4 5 6 trailing")
    open(f("cmyk_pillow.ppm"), "wb").write(b"P0CMYK 5 4 255\n" + bytes(rng.integers(0, 256, 80).astype(np.uint8)))
    open(f("rgba_pillow.ppm"), "wb").write(b"PyRGBA 4 5 255\n" + bytes(rng.integers(0, 256, 80).astype(np.uint8)))
    open(f("p_pillow.ppm"), "wb").write(b"PyP 6 4 255\n" + bytes(rng.integers(0, 256, 24).astype(np.uint8)))
    # ---- GIF
    q = Image.fromarray(pattern(rng, 237, 229, 3)).quantize(256)
    q.save(f("pil_p256.gif"))
    Image.fromarray(pattern(rng, 230, 240, 3)).quantize(5).save(f("pil_p5_interlaced.gif"), interlace=True)
    Image.fromarray(pattern(rng, 230, 240, 3)).quantize(17).save(f("pil_p17_flat.gif"), interlace=False)
    Image.fromarray(pattern(rng, 228, 233, 1)[..., 0]).save(f("pil_l.gif"))
    Image.fromarray(pattern(rng, 232, 231, 3)).save(f("pil_rgb.gif"))
    q.save(f("pil_trns.gif"), transparency=7)
    frames = [Image.fromarray(pattern(rng, 120, 130, 3)).quantize(64) for _ in range(3)]
    frames[0].save(f("pil_anim.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    idx = (pattern(rng, 41, 53, 1)[..., 0] // 16).astype(np.uint8)
    pal16 = rng.integers(0, 256, (16, 3))
    write_gif(f("hand_global.gif"), idx, gpal=pal16)
    write_gif(f("hand_local_over_global.gif"), idx, gpal=pal16, lpal=rng.integers(0, 256, (16, 3)))
    write_gif(f("hand_no_palette.gif"), idx * 13)
    write_gif(f("hand_grows_screen.gif"), idx, screen=(20, 10), at=(5, 7), gpal=pal16)
    write_gif(f("hand_offset_trns.gif"), idx, screen=(70, 60), at=(9, 3), gpal=pal16, trns=5)
    write_gif(f("hand_short_palette.gif"), idx, gpal=pal16[:4] if False else rng.integers(0, 256, (4, 3)))
    write_gif(f("hand_identity.gif"), idx, gpal=np.repeat(np.arange(16)[:, None], 3, 1), lpal=None)
    write_gif(f("hand_extensions.gif"), idx, gpal=pal16, extra=b"!\xfe\x03abc\x00!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00junk")
    big = (pattern(rng, 300, 310, 3)[..., 0]).astype(np.uint8)
    write_gif(f("hand_table_full.gif"), big, gpal=rng.integers(0, 256, (256, 3)))
    # ---- WebP
    Image.fromarray(pattern(rng, 233, 241, 3)).save(f("lossy_rgb.webp"), quality=80)
    Image.fromarray(pattern(rng, 239, 235, 4), "RGBA").save(f("lossy_rgba.webp"), quality=70)
    Image.fromarray(pattern(rng, 230, 229, 3)).save(f("lossless_rgb.webp"), lossless=True)
    Image.fromarray(pattern(rng, 231, 238, 4), "RGBA").save(f("lossless_rgba.webp"), lossless=True)
    Image.fromarray(pattern(rng, 227, 229, 1)[..., 0]).save(f("lossy_l.webp"))
    wf = [Image.fromarray(pattern(rng, 100, 90, 3)) for _ in range(2)]
    wf[0].save(f("anim.webp"), save_all=True, append_images=wf[1:], duration=40)
    # ---- BMP
    gen_bmp(f, rng)
    # ---- edge cases, some of which Pillow refuses (checked by verdicts)
    os.makedirs(f("edge"), exist_ok=True)
    edge = {
        "plain_half_token.pgm": b"P2 300 200 255\n77",  # the cut last token fills the image
        "plain_comment_end.ppm": b"P3 3 2 255\n1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 #end",
        "plain_short.pgm": b"P2 3 2 255\n1 2 3\n",
        "plain_short.pbm": b"P1 4 2\n0101\n10\n",
        "plain_trailing_junk.pbm": b"P1 4 2\n0101 1011 x",
        "plain_negative.pgm": b"P2 3 2 255\n1 2 3 -4 5 6\n",
        "plain_negative_i.pgm": b"P2 3 2 300\n1 2 3 -4 5 6\n",
        "plain_underscore.pgm": b"P2 3 2 255\n1 2 3 4 5 1_6\n",
        "plain_over_maxval.pgm": b"P2 3 2 100\n1 2 3 4 5 101\n",
        "plain_long_token.pgm": b"P2 3 2 255\n1 2 3 4 5 00000000006\n",
        "raw_exact.pgm": b"P5 3 2 255\n123456",
        "raw_short.pgm": b"P5 3 2 255\n12345",
        "pam.pgm": b"P7 3 2 255\n123456",
        "magic_comment.ppm": b"P6#x\n 3 2 255\n" + b"1" * 18,
        "token_comment.pgm": b"P5 3#x\n2 255\n123456",
        "maxval_0.pgm": b"P5 3 2 0\n123456",
        "size_0.pgm": b"P5 0 2 255\n123456",
        "gif_no_frame.gif": b"GIF89a\x02\x00\x02\x00\x00\x00\x00;",
        "gif_short_gce.gif": b"GIF89a\x02\x00\x02\x00\x00\x00\x00!\xf9\x02\x01\x00\x00" + open(f("hand_no_palette.gif"), "rb").read()[13:],
        "gif_empty_app.gif": b"GIF89a\x02\x00\x02\x00\x00\x00\x00!\xff\x00" + open(f("hand_no_palette.gif"), "rb").read()[13:],
        "gif_code_size_13.gif": open(f("hand_no_palette.gif"), "rb").read()[:23] + b"\x0d" + open(f("hand_no_palette.gif"), "rb").read()[24:],
        "gif_early_end.gif": open(f("hand_no_palette.gif"), "rb").read()[:24] + b"\x02\x44\x01\x00;",
        "webp_bad_chunk.webp": b"RIFF\x10\x00\x00\x00WEBPVP9 \x00\x00\x00\x00",
    }
    for name, data in edge.items():
        open(f("edge/" + name), "wb").write(data)
    return 0


def png_chunk_crc(kind, data, crc=None):
    c = zlib.crc32(kind + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", c)
def cmd_gen_damaged(out):
    """PNGs and JPEGs broken in the ways real-world corpora are: bad CRCs
    (before, in and after the image data), cut and unknown chunks, zlib
    streams that end early, late or never, text chunks past Pillow's
    limits, broken APNG sequences, markers after the last JPEG scan. Pillow
    accepts some and refuses others; verdicts checks aim-patchify agrees."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    w, h = 37, 29
    a = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))
    ihdr = png_chunk_crc(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    sig = b"\x89PNG\r\n\x1a\n"
    z = zlib.compress(raw, 9)
    idat = png_chunk_crc(b"IDAT", z)
    iend = png_chunk_crc(b"IEND", b"")
    F = {}
    F["ok"] = sig + ihdr + idat + iend
    F["idat_bad_crc"] = sig + ihdr + png_chunk_crc(b"IDAT", z, 0x12345678) + iend
    F["idat_split_bad_crc"] = sig + ihdr + png_chunk_crc(b"IDAT", z[:100], 1) + png_chunk_crc(b"IDAT", z[100:], 2) + iend
    F["ihdr_bad_crc"] = sig + png_chunk_crc(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0), 7) + idat + iend
    F["text_before_bad_crc"] = sig + ihdr + png_chunk_crc(b"tEXt", b"k\0v", 9) + idat + iend
    F["text_after_bad_crc"] = sig + ihdr + idat + png_chunk_crc(b"tEXt", b"k\0v", 9) + iend
    F["iend_bad_crc"] = sig + ihdr + idat + png_chunk_crc(b"IEND", b"", 3)
    F["no_iend"] = sig + ihdr + idat
    F["iend_cut"] = (sig + ihdr + idat + iend)[:-3]
    F["text_after_cut"] = sig + ihdr + idat + png_chunk_crc(b"tEXt", b"key\0" + b"v" * 50)[:-20]
    F["unknown_after_cut"] = sig + ihdr + idat + png_chunk_crc(b"abCd", b"x" * 50)[:-20]
    F["idat_after_cut"] = sig + ihdr + idat + png_chunk_crc(b"IDAT", b"x" * 50)[:-20]
    F["trailing_garbage"] = sig + ihdr + idat + iend + b"garbage" * 10
    F["garbage_instead_of_iend"] = sig + ihdr + idat + b"\0\0\0\0!!!!"
    F["extra_zlib_after_rows"] = sig + ihdr + png_chunk_crc(b"IDAT", zlib.compress(raw + b"\0" * 500)) + iend
    F["corrupt_zlib_after_rows"] = sig + ihdr + png_chunk_crc(b"IDAT", z[:-6] + b"\xff\xff\xff\xff\xff\xff") + iend
    F["bad_adler"] = sig + ihdr + png_chunk_crc(b"IDAT", z[:-4] + b"\0\0\0\0") + iend
    F["zlib_cut_after_rows"] = sig + ihdr + png_chunk_crc(b"IDAT", zlib.compressobj(9).compress(raw) + zlib.compressobj(9).flush(zlib.Z_SYNC_FLUSH)[:0]) + iend
    co = zlib.compressobj(9); zz = co.compress(raw) + co.flush(zlib.Z_SYNC_FLUSH)
    F["zlib_no_end"] = sig + ihdr + png_chunk_crc(b"IDAT", zz) + iend
    F["idat_interrupted"] = sig + ihdr + png_chunk_crc(b"IDAT", z[:100]) + png_chunk_crc(b"tEXt", b"a\0b") + png_chunk_crc(b"IDAT", z[100:]) + iend
    F["empty_idat_first"] = sig + ihdr + png_chunk_crc(b"IDAT", b"") + idat + iend
    F["too_much_data"] = sig + ihdr + png_chunk_crc(b"IDAT", zlib.compress(raw + raw)) + iend
    big = zlib.compress(b"x" * (2 << 20))
    F["ztxt_big_before"] = sig + ihdr + png_chunk_crc(b"zTXt", b"k\0\0" + big) + idat + iend
    F["ztxt_big_after"] = sig + ihdr + idat + png_chunk_crc(b"zTXt", b"k\0\0" + big) + iend
    F["ztxt_ok_after"] = sig + ihdr + idat + png_chunk_crc(b"zTXt", b"k\0\0" + zlib.compress(b"x" * 1000)) + iend
    F["itxt_big_after"] = sig + ihdr + idat + png_chunk_crc(b"iTXt", b"k\0\1\0\0\0" + big) + iend
    F["iccp_big"] = sig + ihdr + png_chunk_crc(b"iCCP", b"p\0\0" + big) + idat + iend
    F["ztxt_bad_method"] = sig + ihdr + png_chunk_crc(b"zTXt", b"k\0\1abc") + idat + iend
    F["ztxt_corrupt"] = sig + ihdr + png_chunk_crc(b"zTXt", b"k\0\0abc") + idat + iend
    F["bad_chunk_name_before"] = sig + ihdr + png_chunk_crc(b"a!cd", b"x") + idat + iend
    F["bad_chunk_name_after"] = sig + ihdr + idat + png_chunk_crc(b"a!cd", b"x") + iend
    F["phys_short"] = sig + ihdr + png_chunk_crc(b"pHYs", b"\0\0") + idat + iend
    F["phys_short_after"] = sig + ihdr + idat + png_chunk_crc(b"pHYs", b"\0\0") + iend
    F["srgb_empty"] = sig + ihdr + png_chunk_crc(b"sRGB", b"") + idat + iend
    F["ihdr_filter_1"] = sig + png_chunk_crc(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 1, 0)) + idat + iend
    F["ihdr_bad_mode"] = sig + png_chunk_crc(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 1, 0, 0, 0)) + idat + iend
    F["ihdr_compression_1"] = sig + png_chunk_crc(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 1, 0, 0)) + idat + iend
    F["bad_filter_byte"] = sig + ihdr + png_chunk_crc(b"IDAT", zlib.compress(b"\x07" + raw[1:])) + iend
    F["plte_in_rgb"] = sig + ihdr + png_chunk_crc(b"PLTE", b"\0" * 9) + idat + iend
    F["trns_after_idat"] = sig + ihdr + idat + png_chunk_crc(b"tRNS", b"\0\1\0\2\0\3") + iend
    F["chunk_length_huge"] = sig + ihdr + idat + struct.pack(">I", 0x7fffffff) + b"tEXt" + b"abc"
    # APNG
    actl = png_chunk_crc(b"acTL", struct.pack(">II", 2, 0))
    def fctl(seq, fw=w, fh=h, x=0, y=0):
        return png_chunk_crc(b"fcTL", struct.pack(">IIIIIHHBB", seq, fw, fh, x, y, 1, 10, 0, 0))
    def fdat(seq, data):
        return png_chunk_crc(b"fdAT", struct.pack(">I", seq) + data)
    F["apng_ok"] = sig + ihdr + actl + fctl(0) + idat + fctl(1) + fdat(2, z) + iend
    F["apng_fctl_seq_1"] = sig + ihdr + actl + fctl(1) + idat + fctl(2) + fdat(3, z) + iend
    F["apng_fdat_seq_bad"] = sig + ihdr + actl + fctl(0) + idat + fctl(1) + fdat(5, z) + iend
    F["apng_fctl_too_big"] = sig + ihdr + actl + fctl(0, w + 5) + idat + iend
    F["apng_fctl_short"] = sig + ihdr + actl + png_chunk_crc(b"fcTL", b"\0" * 10) + idat + iend
    F["apng_actl_short"] = sig + ihdr + png_chunk_crc(b"acTL", b"\0" * 4) + idat + iend
    F["apng_actl_zero"] = sig + ihdr + png_chunk_crc(b"acTL", struct.pack(">II", 0, 0)) + idat + iend
    F["apng_two_actl"] = sig + ihdr + actl + actl + fctl(0) + idat + iend
    F["apng_fdat_short"] = sig + ihdr + actl + fctl(0) + idat + fctl(1) + png_chunk_crc(b"fdAT", b"\0\0") + iend
    F["apng_no_actl_fctl_after"] = sig + ihdr + idat + fctl(3) + iend
    F["apng_fctl_after_default"] = sig + ihdr + actl + idat + fctl(0) + fdat(1, z) + iend
    F["apng_missing_frame_data"] = sig + ihdr + actl + fctl(0) + idat + fctl(1) + fctl(2) + iend
    F["apng_fdat_before_idat"] = sig + ihdr + actl + fctl(0) + fdat(1, z) + iend
    for k, v in F.items():
        open(f"{out}/{k}.png", "wb").write(v)
    # JPEG
    b = io.BytesIO(); Image.fromarray(rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)).save(b, "JPEG", quality=90); j = b.getvalue()
    b = io.BytesIO(); Image.fromarray(rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)).save(b, "JPEG", quality=90, progressive=True); jp = b.getvalue()
    J = {}
    J["ok"] = j
    J["no_eoi"] = j[:-2]
    J["garbage_before_eoi"] = j[:-2] + b"garbage\x12\x34" + j[-2:]
    J["bad_marker_before_eoi"] = j[:-2] + b"\xff\xc8\x00" + j[-2:]
    J["bogus_segment_before_eoi"] = j[:-2] + b"\xff\xfe\x00\x01" + j[-2:]
    J["dht_after_scan"] = j[:-2] + b"\xff\xc4\x00\x03\x00" + j[-2:]
    J["sof_after_scan"] = j[:-2] + b"\xff\xc0\x00\x11\x08\x00\x28\x00\x30\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01" + j[-2:]
    J["second_image"] = j[:-2] + j
    J["trailing_garbage"] = j + b"x" * 100
    J["app_after_scan"] = j[:-2] + b"\xff\xe1\x00\x04ab" + j[-2:]
    J["app_after_scan_cut"] = j[:-2] + b"\xff\xe1\x00\x40ab"
    J["p_no_eoi"] = jp[:-2]
    J["p_garbage_before_eoi"] = jp[:-2] + b"\xff\xc8\x00" + jp[-2:]
    J["rst_garbage"] = j[:-2] + b"\xff\xd3" + j[-2:]
    for k, v in J.items():
        open(f"{out}/j_{k}.jpg", "wb").write(v)
    return 0


def cmd_gen_tar(src, out, expected):
    """WebDataset shards from the JPEG and PNG files below src: two shards,
    each sample KEY.jpg or KEY.png, most with KEY.cls, some with KEY.txt,
    plus a lone text member; expected gets 'SHARD:MEMBER label' lines."""
    files = sorted(os.path.join(r, f) for r, _d, fs in os.walk(src) for f in fs if f.lower().endswith((".jpg", ".png")))
    exp = open(expected, "w")
    for s in range(2):
        shard = os.path.join(out, f"shard-{s:04d}.tar")
        with tarfile.open(shard, "w") as tf:
            def add(name, data):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            add("README", b"not a sample")
            for k, f in enumerate(files[s::2]):
                key = f"s{s}/{k:05d}"
                ext = ".jpg" if f.lower().endswith(".jpg") else ".png"
                if k % 3 == 1:
                    add(key + ".txt", b"caption")
                add(key + ext, open(f, "rb").read())
                label = -1
                if k % 4 != 3:
                    label = (k * 7 + s) % 10
                    add(key + ".cls", f"{label}\n".encode())
                exp.write(f"{shard}:{key}{ext} {label}\n")
    return 0


def main(argv):
    cmds = {"gen": cmd_gen, "val": cmd_val, "labels": cmd_labels, "train": cmd_train, "same": cmd_same, "count": cmd_count, "epochs": cmd_epochs, "labels-tar": cmd_labels_tar, "gen-tar": cmd_gen_tar, "cut": cmd_cut, "verdicts": cmd_verdicts, "gen-formats": cmd_gen_formats, "gen-damaged": cmd_gen_damaged}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__)
        return 2
    return cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
