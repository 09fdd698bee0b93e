// HugeArray<T>: a fixed-size array in anonymous memory that asks the kernel for
// transparent huge pages (madvise(MADV_HUGEPAGE); THP's default mode here is
// "madvise", so without asking nothing is huge).
//
// Why: the flow table is touched at random. With 4 KiB pages a 1 M-flow table
// (~100 MiB) spans 25 000 pages, far beyond the TLB, so every lookup also pays
// a page walk; 2 MiB pages cut that to ~50 entries. bench/ shows the effect
// (BM_EstablishedUdp at 1 M flows). Falls back to ordinary pages silently when
// the kernel refuses: correctness does not depend on it.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace xnat {

// Brings the cache line at `p` in ahead of its use: a prefetch instruction,
// or (prefetch false) a real load whose value an empty asm keeps without
// using it. Which is faster depends on the CPU; see FlowTable::prefetch_flow.
inline void bring_in(const void* p, bool prefetch) {
  if (prefetch) {
    __builtin_prefetch(p);
    return;
  }
  uint32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  asm volatile("" : : "r"(v));
}

template <typename T>
class HugeArray {
  static_assert(std::is_trivially_destructible_v<T>, "elements are never destroyed one by one");

 public:
  HugeArray() = default;
  // Constructs all n elements, so every page is touched (resident) at start.
  explicit HugeArray(size_t n) : HugeArray(n, kZeroPages) {
    for (size_t i = 0; i < n; ++i) new (&data_[i]) T();
  }
  // Leaves the elements as the kernel's zero pages: for a T whose all-zero
  // bytes are a valid value, in an array used from its low end up, so that
  // memory becomes resident only as elements are first written.
  struct ZeroPages {};
  static constexpr ZeroPages kZeroPages{};
  HugeArray(size_t n, ZeroPages) : n_(n) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (n == 0) return;
    constexpr size_t kHuge = size_t{2} << 20;
    bytes_ = (n * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, bytes_, MADV_HUGEPAGE);
    data_ = static_cast<T*>(p);
  }
  ~HugeArray() {
    if (data_) munmap(data_, bytes_);
  }
  HugeArray(HugeArray&& o) noexcept { swap(o); }
  HugeArray& operator=(HugeArray&& o) noexcept {
    swap(o);
    return *this;
  }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* get() { return data_; }
  const T* get() const { return data_; }
  size_t size() const { return n_; }

 private:
  void swap(HugeArray& o) {
    std::swap(data_, o.data_);
    std::swap(n_, o.n_);
    std::swap(bytes_, o.bytes_);
  }
  T* data_ = nullptr;
  size_t n_ = 0;
  size_t bytes_ = 0;
};

// An allocator for std::vector whose large blocks (1 MiB and up) come from
// mmap with 2 MiB pages asked for, as HugeArray's do: a table looked up at
// random per packet then costs few TLB entries. Smaller blocks come from new.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr size_t kHuge = size_t{2} << 20;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  static bool huge(size_t n) { return n * sizeof(T) >= (size_t{1} << 20); }
  static size_t rounded(size_t n) { return (n * sizeof(T) + kHuge - 1) / kHuge * kHuge; }
  T* allocate(size_t n) {
    if (!huge(n)) return static_cast<T*>(::operator new(n * sizeof(T)));
    void* p = mmap(nullptr, rounded(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, rounded(n), MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (!huge(n)) return ::operator delete(p);
    munmap(p, rounded(n));
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
};

}  // namespace xnat
