#!/usr/bin/python3
"""Write PyTorch checkpoints and what they hold, for tests/unit/test_pth.c.

usage: make_pth_fixtures.py OUTDIR [--small]

For every case OUTDIR/manifest.txt gets one line:
  load CASE.pth CASE.expect    aim_pth_load must give exactly these tensors
  fail CASE.pth TEXT...        aim_pth_load must fail with TEXT in the message
CASE.expect lists "name<TAB>dtype<TAB>d0,d1,...<TAB>offset<TAB>nbytes" per
tensor, in the order of the state dict; CASE.bin holds the bytes, which
torch itself produced (tensor.contiguous() viewed as raw little-endian
bytes), so the C loader is compared against torch, not against itself.
--small writes only the few tiny cases committed under tests/data/pth.
"""
import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def raw_bytes(t):
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def flat_expected(state):
    """(name, tensor) in order: what the loader must produce."""
    return list(state.items())


class Fixtures:
    def __init__(self, out):
        self.out = out
        os.makedirs(out, exist_ok=True)
        self.lines = []

    def expect(self, case, pairs):
        blob = bytearray()
        with open(os.path.join(self.out, case + ".expect"), "w") as f:
            for name, t in pairs:
                b = raw_bytes(t)
                shape = ",".join(str(d) for d in t.shape)
                f.write(f"{name}\t{DTYPES[t.dtype]}\t{shape}\t{len(blob)}\t{len(b)}\n")
                blob += b
        with open(os.path.join(self.out, case + ".bin"), "wb") as f:
            f.write(blob)
        self.lines.append(f"load {case}.pth {case}.expect")

    def save(self, case, obj, pairs, **kw):
        torch.save(obj, os.path.join(self.out, case + ".pth"), **kw)
        self.expect(case, pairs)

    def fail(self, case, text):
        self.lines.append(f"fail {case}.pth {text}")

    def path(self, case):
        return os.path.join(self.out, case + ".pth")

    def finish(self):
        with open(os.path.join(self.out, "manifest.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


# ---- hand-made archives: torch's layout with a pickle we choose -------------

class Storage:
    """Pickled as torch's persistent id ('storage', cls, key, 'cpu', numel)."""
    def __init__(self, cls, key, numel):
        self.cls, self.key, self.numel = cls, key, numel


class Call:
    """Pickled as REDUCE of func(*args) without running it."""
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def write_torch_zip(path, obj, storages, prefix="archive", protocol=2, extra=()):
    buf = io.BytesIO()
    TorchLikePickler(buf, protocol=protocol).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", buf.getvalue())
        for key, data in storages.items():
            z.writestr(f"{prefix}/data/{key}", data)
        for name, data in extra:
            z.writestr(f"{prefix}/{name}", data)
        z.writestr(f"{prefix}/version", "3\n")


def rebuild(storage, offset, size, stride):
    return Call(torch._utils._rebuild_tensor_v2,
                (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict()))


def rezip(src, dst, method, drop=None, replace=None, zip64=False):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", method) as zo:
        for info in zi.infolist():
            if drop and info.filename.endswith(drop):
                continue
            data = zi.read(info.filename)
            if replace and info.filename.endswith(replace[0]):
                data = replace[1]
            if zip64:  # zip64 extra fields, as torch writes for files over 4 GiB
                with zo.open(zipfile.ZipInfo(info.filename), "w", force_zip64=True) as f:
                    f.write(data)
            else:
                zo.writestr(info.filename, data, compress_type=method)


def small_cases(fx):
    g = torch.Generator().manual_seed(1)
    # every loaded dtype, a 0-dim scalar and an empty tensor
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(2, 3, generator=g)
    sd["f16"] = torch.randn(3, generator=g).half()
    sd["bf16"] = torch.randn(2, 2, generator=g).bfloat16()
    sd["i64"] = torch.tensor([-(1 << 40), 7, 1 << 62])
    sd["i32"] = torch.tensor([[-5, 6]], dtype=torch.int32)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["scalar"] = torch.tensor(42)
    sd["empty"] = torch.zeros(0, 3)
    fx.save("dtypes", sd, flat_expected(sd))

    # views: transposed, sliced with an offset, expanded (stride 0), permuted
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    views = {"t": base[0].t(), "slice": base[1:, 1:3, 2:], "expand": base[2, 1:2].expand(3, 5),
             "perm": base.permute(2, 0, 1), "row": base[1, 2]}
    fx.save("views", views, flat_expected(views))

    # refusals that need no torch to check (the pickle is hand-made)
    write_torch_zip(fx.path("evil"), {"w": Call(os.system, ("echo pwned",))}, {})
    fx.fail("evil", "refuses pickle global '%s.system'" % os.system.__module__)


def all_cases(fx):
    small_cases(fx)
    g = torch.Generator().manual_seed(2)

    # a module's state dict: OrderedDict with _metadata, BatchNorm buffers
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    sd = m.state_dict()
    fx.save("module", sd, flat_expected(sd))

    # nn.Parameter objects pickled directly (_rebuild_parameter)
    params = {"w": torch.nn.Parameter(torch.randn(4, 2, generator=g)),
              "b": torch.nn.Parameter(torch.randn(2, generator=g), requires_grad=False)}
    fx.save("params", params, flat_expected(params))

    # checkpoint wrappers: the single dict holding tensors is the state dict
    fx.save("nested", {"model": sd, "epoch": 3, "args": {"lr": 0.1, "name": "x"}},
            flat_expected(sd))
    fx.save("nested2", {"state_dict": {"model": sd}, "step": 10}, flat_expected(sd))
    ema = {k: v * 2 if v.is_floating_point() else v for k, v in sd.items()}
    both = [("model." + k, v) for k, v in sd.items()] + [("ema." + k, v) for k, v in ema.items()]
    fx.save("two_models", {"model": sd, "ema": ema}, both)
    lists = {"layers": [torch.ones(2), {"w": torch.zeros(1, 2)}], 5: torch.arange(3)}
    fx.save("lists", lists, [("layers.0", lists["layers"][0]),
                             ("layers.1.w", lists["layers"][1]["w"]), ("5", lists[5])])

    # shared storage: several views of one storage, one tensor under two keys
    x = torch.randn(4, 6, generator=g)
    shared = {"a": x[0], "b": x[1:3, ::2], "c": x, "tied": x}
    fx.save("shared", shared, flat_expected(shared))

    # big tensor (torch stores entries uncompressed) and a deflated copy
    big = {"big": torch.randn(512, 1024, generator=g), "big_t": torch.randn(300, 700, generator=g).t(),
           "tail": torch.randn(1000, generator=g)[500:]}
    fx.save("big", big, flat_expected(big))
    rezip(fx.path("big"), fx.path("big_deflated"), zipfile.ZIP_DEFLATED)
    fx.expect("big_deflated", flat_expected(big))

    rezip(fx.path("big"), fx.path("big_zip64"), zipfile.ZIP_STORED, zip64=True)
    fx.expect("big_zip64", flat_expected(big))

    # pickle protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL
    fx.save("proto4", sd, flat_expected(sd), pickle_protocol=4)

    # big-endian archive as torch >= 2.1 marks it (byteorder file)
    be = torch.tensor([1.5, -2.0, 3.25])
    write_torch_zip(fx.path("bigendian"), {"x": rebuild(Storage(torch.FloatStorage, "0", 3), 0, [3], [1])},
                    {"0": struct.pack(">3f", 1.5, -2.0, 3.25)}, extra=[("byteorder", "big")])
    fx.expect("bigendian", [("x", be)])

    # newer torch wraps tensors with state in _rebuild_from_type_v2
    st = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    inner = (Storage(torch.FloatStorage, "0", 6), 1, (2, 2), (1, 2), False, collections.OrderedDict())
    write_torch_zip(fx.path("from_type"), {
        "t": Call(torch._tensor._rebuild_from_type_v2,
                  (torch._utils._rebuild_tensor_v2, torch.Tensor, inner, {})),
        "p": Call(torch._utils._rebuild_parameter,
                  (Call(torch._tensor._rebuild_from_type_v2,
                        (torch._utils._rebuild_tensor_v2, torch.nn.Parameter, inner, None)),
                   True, collections.OrderedDict()))}, {"0": st})
    view = torch.arange(6, dtype=torch.float32)[1:].as_strided((2, 2), (1, 2))
    fx.expect("from_type", [("t", view), ("p", view)])

    # ---- failures: each a clear message, never a crash -------------------
    torch.save({"w": torch.ones(2)}, fx.path("legacy"), _use_new_zipfile_serialization=False)
    fx.fail("legacy", "a PyTorch checkpoint in the legacy format (torch.save before torch 1.6")

    torch.save({"w": torch.ones(2, dtype=torch.float64)}, fx.path("float64"))
    fx.fail("float64", "tensor 'w' has dtype float64")

    with open(fx.path("good"), "wb") as f:
        torch.save(sd, f)  # to a file object: the prefix is "archive"
    data = open(fx.path("good"), "rb").read()
    with open(fx.path("truncated"), "wb") as f:
        f.write(data[: len(data) // 2])
    fx.fail("truncated", "not a PyTorch checkpoint")
    with open(fx.path("garbage"), "wb") as f:
        f.write(torch.randint(0, 256, (3000,), dtype=torch.uint8, generator=g).numpy().tobytes())
    fx.fail("garbage", "not a PyTorch checkpoint")
    with open(fx.path("emptyfile"), "wb"):
        pass
    fx.fail("emptyfile", "emptyfile.pth")
    fx.fail("missing", "missing.pth")

    rezip(fx.path("good"), fx.path("short_storage"), zipfile.ZIP_STORED, replace=("/data/0", b"\0" * 4))
    fx.fail("short_storage", "storage archive/data/0 holds 4 bytes")
    rezip(fx.path("good"), fx.path("no_storage"), zipfile.ZIP_STORED, drop="/data/1")
    fx.fail("no_storage", "no entry archive/data/1")
    rezip(fx.path("good"), fx.path("no_pickle"), zipfile.ZIP_STORED, drop="/data.pkl")
    fx.fail("no_pickle", "without PREFIX/data.pkl")

    # a view reaching past its storage, negative offsets, huge sizes
    write_torch_zip(fx.path("overrun"), {"w": rebuild(Storage(torch.FloatStorage, "0", 4), 1, [2, 2], [2, 1])},
                    {"0": b"\0" * 16})
    fx.fail("overrun", "tensor 'w' reaches element 1 + 4 of storage '0', which has 4")
    write_torch_zip(fx.path("huge"), {"w": rebuild(Storage(torch.FloatStorage, "0", 1 << 62), 0, [1 << 62], [1])},
                    {"0": b"\0" * 16})
    fx.fail("huge", "storage archive/data/0 holds 16 bytes")
    write_torch_zip(fx.path("negoffset"), {"w": rebuild(Storage(torch.FloatStorage, "0", 4), -1, [2], [1])},
                    {"0": b"\0" * 16})
    fx.fail("negoffset", "negative storage offset")
    write_torch_zip(fx.path("badkey"), {"w": rebuild(Storage(torch.FloatStorage, "../0", 4), 0, [2], [1])},
                    {"0": b"\0" * 16})
    fx.fail("badkey", "storage key has a character outside")
    # other ways to reach code: a refused global via STACK_GLOBAL, a builtin
    write_torch_zip(fx.path("evil4"), {"w": Call(eval, ("1",))}, {}, protocol=4)
    fx.fail("evil4", "refuses pickle global 'builtins.eval'")
    write_torch_zip(fx.path("notdict"), [rebuild(Storage(torch.FloatStorage, "0", 4), 0, [4], [1])],
                    {"0": b"\0" * 16})
    fx.fail("notdict", "top-level object is a list")
    write_torch_zip(fx.path("notensors"), {"epoch": 3}, {})
    fx.fail("notensors", "holds no tensors")
    # TorchScript archives are zips with data.pkl too
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), fx.path("script"))
    fx.fail("script", "TorchScript archive")
    hostile_cases(fx, g)


def set_declared_size(path, member, size):
    """Rewrite the uncompressed size that the local header and the central
    directory give for `member` (its data left as it is)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    data = bytearray(open(path, "rb").read())
    lh = info.header_offset
    assert data[lh:lh + 4] == b"PK\3\4"
    struct.pack_into("<I", data, lh + 22, size)
    name = member.encode()
    cd = data.rfind(b"PK\1\2", 0, len(data))
    while cd >= 0:
        nlen = struct.unpack_from("<H", data, cd + 28)[0]
        if data[cd + 46:cd + 46 + nlen] == name:
            struct.pack_into("<I", data, cd + 24, size)
            break
        cd = data.rfind(b"PK\1\2", 0, cd)
    open(path, "wb").write(bytes(data))


def hostile_cases(fx, g):
    """Files found in damaged and crafted corpora: each must fail with a
    clear message, within bounded memory, or load exactly as torch does."""
    # a deflated storage whose headers claim more bytes than its data holds:
    # the tensor reads only the first 8 bytes, the rest must still exist
    write_torch_zip(fx.path("deflate_short_base"),
                    {"w": rebuild(Storage(torch.FloatStorage, "0", 8), 0, [2], [1])},
                    {"0": struct.pack("<4f", 1, 2, 3, 4)})
    rezip(fx.path("deflate_short_base"), fx.path("deflate_short"), zipfile.ZIP_DEFLATED)
    os.remove(fx.path("deflate_short_base"))
    set_declared_size(fx.path("deflate_short"), "archive/data/0", 32)
    fx.fail("deflate_short", "archive/data/0")

    # the legacy (pre-zip) format under a name that does not say .pth
    torch.save({"w": torch.ones(2)}, os.path.join(fx.out, "legacy.bin"),
                _use_new_zipfile_serialization=False)

    # 72 KB of pickle naming one tensor 60,000 times under 30 KB names:
    # {K: [inner] * 200}, inner = [t] * 300 (memo references, no copies)
    key = "k" * 30000
    t = rebuild(Storage(torch.FloatStorage, "0", 1), 0, [1], [1])
    inner = [t] * 300
    write_torch_zip(fx.path("name_bomb"), {key: [inner] * 200}, {"0": b"\0" * 4})
    fx.fail("name_bomb", "memory")

    # 85,000 small tensors (each its own storage), as in a large state dict
    many = collections.OrderedDict((f"blocks.{i // 8}.p{i % 8}", torch.full((2,), float(i)))
                                   for i in range(85000))
    fx.save("many", many, flat_expected(many))

    # one deflated storage shared by 2,000 views
    flat = torch.randn(1 << 20, generator=g)
    views = collections.OrderedDict((f"v{i}", flat[i * 512:(i + 1) * 512]) for i in range(2000))
    torch.save(views, fx.path("shared_deflated_base"))
    rezip(fx.path("shared_deflated_base"), fx.path("shared_deflated"), zipfile.ZIP_DEFLATED)
    os.remove(fx.path("shared_deflated_base"))
    fx.expect("shared_deflated", flat_expected(views))

    # a stride-0 view over one element asking for 1 GiB
    write_torch_zip(fx.path("stride0_bomb"),
                    {"w": rebuild(Storage(torch.FloatStorage, "0", 1), 0, [1 << 28], [0])},
                    {"0": b"\0" * 4})
    fx.fail("stride0_bomb", "repeat")
    # a small stride-0 view loads (torch's expand of a 1-element tensor)
    small = {"e": torch.tensor([2.5]).expand(1000)}
    fx.save("stride0_small", small, flat_expected(small))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    fx = Fixtures(sys.argv[1])
    if "--small" in sys.argv[2:]:
        small_cases(fx)
    else:
        all_cases(fx)
    fx.finish()


if __name__ == "__main__":
    main()
