"""Host cost per forward+backward step of an older checkout of the Python
package against this one, interleaved in one process (the host CPU changes speed
between processes), and the step time by do_bench:
    python3 python/bench/compare_host.py OLD/python OLD_KERNELS NEW_KERNELS
(old and new kernels go in one cache directory: their cache keys differ)."""
import importlib.util, os, sys, time, shutil
d = "/tmp/kall"; os.makedirs(d, exist_ok=True)
for src in (sys.argv[2], sys.argv[3]):
    for f in os.listdir(src):
        p = os.path.join(src, f)
        if os.path.isfile(p): shutil.copy(p, d)
os.environ["SWBA_KERNEL_DIR"] = d
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch
import swba as new
spec = importlib.util.spec_from_file_location("swba_old", os.path.join(sys.argv[1], "swba", "__init__.py"),
                                              submodule_search_locations=[os.path.join(sys.argv[1], "swba")])
old = importlib.util.module_from_spec(spec); sys.modules["swba_old"] = old; spec.loader.exec_module(old)
def per_call(fn, n=200):
    for _ in range(10): fn()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(n): fn()
    t = time.perf_counter() - t0; torch.cuda.synchronize()
    return t / n * 1e6
for shape, bs, ws in (((1, 2, 256, 64), 256, 16),):
    q, k, v = (torch.randn(*shape, device="cuda", dtype=torch.float16, requires_grad=True) for _ in range(3))
    dout = torch.randn_like(q)
    def step(mod):
        def f():
            for t in (q, k, v): t.grad = None
            mod.attention(q, k, v, bs, ws, 0.125).backward(dout)
        return f
    res = {"old": [], "new": []}
    for r in range(6):
        for name, mod in (("old", old), ("new", new)):
            res[name].append(per_call(step(mod)))
    print("HOST2", shape, {k: (round(min(v), 1), round(sorted(v)[len(v)//2], 1)) for k, v in res.items()}, flush=True)
    from triton.testing import do_bench
    for r in range(1):
        print("STEP", shape, {name: round(do_bench(step(mod), warmup=25, rep=200, return_mode="median") * 1e3, 1) for name, mod in (("old", old), ("new", new))}, flush=True)
