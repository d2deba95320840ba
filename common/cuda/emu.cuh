/* A CPU emulation of the CUDA features the op kernels use — thread and
 * block indices, __syncthreads, warp shuffles, dynamic shared memory,
 * float atomics — so the op sources compile with g++ -std=c++20
 * -DAIM_CUDA_EMULATE and run on the host. Every CUDA thread of a block is
 * a std::thread; blocks run one after another, so `static` stands in for
 * __shared__. Slow, and for small test shapes only: it checks a kernel's
 * logic (indexing, masks, reductions, barriers in the right places), not
 * its speed. Never part of the shipped library. */
#ifndef AIM_CUDA_EMU_CUH
#define AIM_CUDA_EMU_CUH

#ifndef AIM_CUDA_EMULATE
#error "emu.cuh is for the CPU emulation build only"
#endif

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
	unsigned x, y, z;
	constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n)

typedef int cudaError_t;
typedef void *cudaStream_t;
enum { cudaSuccess = 0, cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
inline const char *cudaGetErrorString(cudaError_t) { return "emulated"; }
template <typename F> inline cudaError_t cudaFuncSetAttribute(F, int, int) { return cudaSuccess; }

inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t)
{
	std::memset(p, v, n);
	return cudaSuccess;
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

struct aim_emu_warp {
	std::barrier<> bar;
	unsigned long long slot[32];
	explicit aim_emu_warp(int n) : bar(n) {}
};
inline thread_local std::barrier<> *aim_emu_block_bar;
inline thread_local aim_emu_warp *aim_emu_warp_now;
inline thread_local int aim_emu_lane;
inline void *aim_emu_dyn_smem;

inline void __syncthreads() { aim_emu_block_bar->arrive_and_wait(); }

/* Every lane publishes its value, then reads its partner's: the two
 * barriers make it a collective over the warp, as on the device. */
template <typename T> inline T aim_emu_exchange(T v, int src)
{
	static_assert(sizeof(T) <= 8, "shuffle of a wide type");
	aim_emu_warp *w = aim_emu_warp_now;
	std::memcpy(&w->slot[aim_emu_lane], &v, sizeof v);
	w->bar.arrive_and_wait();
	T r;
	std::memcpy(&r, &w->slot[src & 31], sizeof r);
	w->bar.arrive_and_wait();
	return r;
}
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int off)
{
	return aim_emu_exchange(v, aim_emu_lane ^ off);
}
template <typename T> inline T __shfl_sync(unsigned, T v, int src)
{
	return aim_emu_exchange(v, src);
}

inline float atomicAdd(float *p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double *p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }

template <typename F> void aim_emu_launch(dim3 grid, dim3 block, size_t smem, F &&body)
{
	std::vector<unsigned char> dyn(smem + 64);
	aim_emu_dyn_smem = dyn.data();
	const int n = (int)(block.x * block.y * block.z);
	for (unsigned bz = 0; bz < grid.z; bz++)
		for (unsigned by = 0; by < grid.y; by++)
			for (unsigned bx = 0; bx < grid.x; bx++) {
				std::barrier<> bar(n);
				std::vector<std::unique_ptr<aim_emu_warp>> warps;
				for (int w = 0; w < (n + 31) / 32; w++)
					warps.emplace_back(new aim_emu_warp(n - 32 * w < 32 ? n - 32 * w : 32));
				std::vector<std::thread> th;
				for (int t = 0; t < n; t++)
					th.emplace_back([&, t] {
						threadIdx = dim3(t % block.x, t / block.x % block.y,
								 t / (block.x * block.y));
						blockIdx = dim3(bx, by, bz);
						blockDim = block;
						gridDim = grid;
						aim_emu_block_bar = &bar;
						aim_emu_warp_now = warps[t / 32].get();
						aim_emu_lane = t % 32;
						body();
						/* an exited thread no longer counts at barriers */
						bar.arrive_and_drop();
						aim_emu_warp_now->bar.arrive_and_drop();
					});
				for (auto &x : th)
					x.join();
			}
}

#endif
